/* SPDX-License-Identifier: MIT */
/*
 * Server streamtypes the agent hosts itself: every "server": true streamtype
 * of the agent's policy without an "allow" rule (those with one are opened by
 * clients through the socket, see proxy.c). Each answers GET and HEAD with a
 * status document of the agent in JSON, anything else with 405. They start
 * with the agent (before it drops privileges, so low ports work) and are
 * started again on every policy change.
 */
#pragma once

typedef struct Manager Manager;
typedef struct Hosted Hosted;

int hosted_new(Hosted **ret, Manager *m);
Hosted *hosted_free(Hosted *h);
/* (Re)starts the server streams of the current policy; failures are logged, never fatal. */
void hosted_start(Hosted *h);
/* After a policy change: started again when they were started. */
void hosted_policy_changed(Hosted *h);
/* Server streams listening now. */
unsigned hosted_n_listening(const Hosted *h);
