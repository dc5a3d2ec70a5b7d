/* SPDX-License-Identifier: MIT */
/*
 * The state directory and whole-file replacement (see persist.h).
 */
#include "persist.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

int persist_state_dir(char **ret)
{
        const char *e = getenv("STATE_DIRECTORY");
        char *dir = NULL;

        if (e && e[0] == '/') {
                /* systemd passes a colon-separated list; ours is the first. */
                dir = strndup(e, strcspn(e, ":"));
        } else if (geteuid() == 0) {
                dir = strdup(PERSIST_STATE_DIR_SYSTEM);
        } else {
                const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

                if (x && x[0] == '/') {
                        if (asprintf(&dir, "%s/smdagent", x) < 0)
                                dir = NULL;
                } else if (home && home[0] == '/') {
                        if (asprintf(&dir, "%s/.local/state/smdagent", home) < 0)
                                dir = NULL;
                } else
                        return -ENXIO;
        }
        if (!dir)
                return -ENOMEM;
        *ret = dir;
        return 0;
}

/* mkdir -p with mode 0700 for what we create. */
static int mkdir_parents(const char *dir)
{
        _cleanup_free_ char *p = strdup(dir);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                if (*s != '/' && *s != '\0')
                        continue;
                char c = *s;

                *s = '\0';
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return -errno;
                *s = c;
                if (c == '\0')
                        break;
        }
        return 0;
}

static int write_all(int fd, const uint8_t *data, size_t size)
{
        while (size > 0) {
                ssize_t n = write(fd, data, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += n;
                size -= (size_t) n;
        }
        return 0;
}

int persist_write(const char *dir, const char *name, const void *data, size_t size)
{
        _cleanup_free_ char *tmp = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF, dir_fd = -EBADF;
        int r;

        assert(dir && name && (data || size == 0));
        r = mkdir_parents(dir);
        if (r < 0)
                return r;
        if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0 ||
            asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, size);
        if (r >= 0 && fchmod(fd, 0640) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && close(TAKE_FD(fd)) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        /* The rename is durable only once the directory is on disk too. */
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;
        if (fsync(dir_fd) < 0)
                return -errno;
        return 0;
}

int persist_read(const char *dir, const char *name, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        r = read_file_bounded(path, O_NOFOLLOW, max, ret, ret_size);
        /* A directory or socket where the file should be is just as unusable. */
        return r == -EISDIR ? -EBADFD : r;
}

int persist_clean(const char *dir, const char *name)
{
        DIR *d = opendir(dir);
        size_t len = strlen(name);
        struct dirent *de;
        int n = 0;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                /* ".name." followed by the six characters of mkostemp(). */
                if (de->d_name[0] != '.' || strncmp(de->d_name + 1, name, len) != 0 ||
                    de->d_name[1 + len] != '.' || strlen(de->d_name + 2 + len) != 6)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) == 0)
                        n++;
        }
        closedir(d);
        return n;
}
