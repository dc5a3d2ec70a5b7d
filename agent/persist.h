/* SPDX-License-Identifier: MIT */
/*
 * The agent's state directory and crash-safe files in it (the last good
 * fetched policy). A file is replaced whole: written to a temporary file in
 * the same directory, flushed to disk, renamed over the old one, and the
 * directory flushed, so that after a crash or power cut the name holds
 * either the old content or the new one, never a mix.
 */
#pragma once

#include <stddef.h>

#include "util.h"

#define PERSIST_STATE_DIR_SYSTEM "/var/lib/smdagent"

/*
 * The state directory: $STATE_DIRECTORY (set by systemd's StateDirectory=;
 * its first entry), /var/lib/smdagent for root, else
 * $XDG_STATE_HOME/smdagent, else $HOME/.local/state/smdagent. -ENXIO when
 * none of these can be made (no absolute $HOME either).
 */
int persist_state_dir(char **ret);

/*
 * Replaces dir/name with data: temporary file ".name.XXXXXX", fsync, rename,
 * fsync of dir. dir (and its missing parents) is created with mode 0700.
 * On failure the old file is untouched and the temporary file removed.
 */
int persist_write(const char *dir, const char *name, const void *data, size_t size);

/*
 * Reads dir/name whole, at most max bytes: 0 and a buffer to free (NUL
 * terminated, the NUL not counted); -ENOENT when there is none, -EFBIG over
 * max, or the -errno of the failed read.
 */
int persist_read(const char *dir, const char *name, size_t max, char **ret, size_t *ret_size);

/* Removes temporary files ".name.*" a crash left in dir; returns how many. */
int persist_clean(const char *dir, const char *name);
