/* SPDX-License-Identifier: MIT */
/*
 * Reading small files whole, with a bound: certificates, keys, persisted
 * policies. One implementation so that every reader refuses the same things
 * (non-regular files, files over the bound, files that grow while read).
 */
#pragma once

#include <stddef.h>

/*
 * Read the regular file at path (opened with O_RDONLY|O_CLOEXEC|O_NOCTTY plus
 * extra_flags, e.g. O_NOFOLLOW) into a NUL-terminated buffer to free().
 * Returns 0, -EFBIG when it holds more than max bytes, -EISDIR for a
 * directory, -EBADFD for another kind of file, or the -errno of open/read.
 */
int read_file_bounded(const char *path, int extra_flags, size_t max, char **ret, size_t *ret_size);
