/* SPDX-License-Identifier: MIT */
/*
 * Server streamtypes the agent hosts itself: every "server": true streamtype
 * of the agent's policy without an "allow" rule (those with one are opened by
 * clients through the socket, see proxy.c). Each answers GET and HEAD with a
 * status document of the agent in JSON, anything else with 405. They start
 * with the agent (before it drops privileges, so low ports work); a policy
 * change restarts those whose streamtype changed (policy_streamtype_equal())
 * and leaves the others, and their connections, running.
 */
#pragma once

typedef struct Manager Manager;
typedef struct Hosted Hosted;

int hosted_new(Hosted **ret, Manager *m);
Hosted *hosted_free(Hosted *h);
/* (Re)starts the server streams of the current policy; failures are logged, never fatal. */
void hosted_start(Hosted *h);
/* After a policy change (when started): the changed ones restart, new ones start. */
void hosted_policy_changed(Hosted *h);
/* Server streams listening now. */
unsigned hosted_n_listening(const Hosted *h);
