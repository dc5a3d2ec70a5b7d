/* SPDX-License-Identifier: MIT */
/* smdctl stream (smdctl-stream.c). */
#pragma once

/* Runs `stream` with its arguments (argv[0] is "stream"); returns the exit status. */
int smdctl_stream(int argc, char **argv, const char *socket_path);
