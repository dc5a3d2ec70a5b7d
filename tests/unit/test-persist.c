/* SPDX-License-Identifier: MIT */
/*
 * The state directory and whole-file replacement (agent/persist.c) on a real
 * file system: what a user finds on disk after each call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "persist.h"
#include "tap.h"

static char root[] = "/tmp/test-persist.XXXXXX";

static int write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");

        if (!f)
                return -errno;
        fputs(text, f);
        return fclose(f) == 0 ? 0 : -errno;
}

static int count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

static void test_state_dir(void)
{
        char *dir = NULL;

        setenv("STATE_DIRECTORY", "/var/lib/first:/var/lib/second", 1);
        is_int(persist_state_dir(&dir), 0, "STATE_DIRECTORY is used");
        is_str(dir, "/var/lib/first", "its first entry, as systemd lists several");
        free(dir);
        dir = NULL;

        setenv("STATE_DIRECTORY", "relative", 1);
        setenv("XDG_STATE_HOME", "/home/u/.state", 1);
        is_int(persist_state_dir(&dir), 0, "a relative STATE_DIRECTORY is ignored");
        is_str(dir, geteuid() == 0 ? PERSIST_STATE_DIR_SYSTEM : "/home/u/.state/smdagent",
               "root gets %s, others $XDG_STATE_HOME/smdagent", PERSIST_STATE_DIR_SYSTEM);
        free(dir);
        unsetenv("STATE_DIRECTORY");
        unsetenv("XDG_STATE_HOME");
}

static void test_write_read(void)
{
        char dir[256], path[300], *buf = NULL;
        size_t size = 0;
        struct stat st;

        snprintf(dir, sizeof(dir), "%s/a/b/state", root);
        is_int(persist_write(dir, "policy.json", "{\"v\":1}", 7), 0,
               "a file is written into a directory that does not exist yet");
        ok(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700,
           "the directory is created with mode 0700");
        snprintf(path, sizeof(path), "%s/policy.json", dir);
        ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640, "the file has mode 0640");

        is_int(persist_read(dir, "policy.json", 4096, &buf, &size), 0, "and reads back");
        ok(buf && size == 7 && memcmp(buf, "{\"v\":1}", 8) == 0,
           "the same 7 bytes, NUL-terminated");
        free(buf);
        buf = NULL;

        is_int(persist_write(dir, "policy.json", "{\"v\":2,\"x\":true}", 16), 0,
               "a second write replaces the file");
        is_int(persist_read(dir, "policy.json", 4096, &buf, &size), 0, "which reads back");
        ok(buf && size == 16 && memcmp(buf, "{\"v\":2,\"x\":true}", 16) == 0,
           "with the new content only");
        free(buf);
        buf = NULL;
        is_int(count_entries(dir), 1, "no temporary file is left behind");

        is_int(persist_write(dir, "empty", "", 0), 0, "an empty file can be written");
        is_int(persist_read(dir, "empty", 10, &buf, &size), 0, "and read");
        ok(buf && size == 0, "as zero bytes");
        free(buf);
        buf = NULL;

        is_int(persist_read(dir, "policy.json", 15, &buf, &size), -EFBIG,
               "a file over the caller's bound is refused whole");
        ok(!buf, "and nothing is returned");
        is_int(persist_read(dir, "missing", 4096, &buf, &size), -ENOENT,
               "a missing file is -ENOENT");

        snprintf(path, sizeof(path), "%s/adir", dir);
        ok(mkdir(path, 0700) == 0, "a directory where a file is expected");
        is_int(persist_read(dir, "adir", 4096, &buf, &size), -EBADFD, "is refused (-EBADFD)");

        snprintf(path, sizeof(path), "%s/link", dir);
        ok(symlink("policy.json", path) == 0, "a symlink to the file");
        ok(persist_read(dir, "link", 4096, &buf, &size) < 0 && !buf, "is not followed");
}

static void test_write_failure(void)
{
        char file[256], dir[300], *buf = NULL;
        size_t size = 0;

        snprintf(file, sizeof(file), "%s/not-a-dir", root);
        ok(write_text(file, "old") == 0, "a regular file where the state directory's parent "
                                         "would be");
        snprintf(dir, sizeof(dir), "%s/state", file);
        is_int(persist_write(dir, "policy.json", "new", 3), -ENOTDIR,
               "writing under it fails with -ENOTDIR");
        is_int(persist_read(root, "not-a-dir", 100, &buf, &size), 0, "the file is untouched");
        ok(buf && strcmp(buf, "old") == 0, "and still says old");
        free(buf);
}

static void test_clean(void)
{
        char dir[256], path[300];

        snprintf(dir, sizeof(dir), "%s/clean", root);
        ok(mkdir(dir, 0700) == 0, "a state directory after a crash");
        snprintf(path, sizeof(path), "%s/.policy.json.Ab12Cd", dir);
        write_text(path, "partial");
        snprintf(path, sizeof(path), "%s/.policy.json.toolong1", dir);
        write_text(path, "not ours");
        snprintf(path, sizeof(path), "%s/.other.json.Ab12Cd", dir);
        write_text(path, "another name's");
        snprintf(path, sizeof(path), "%s/policy.json", dir);
        write_text(path, "good");

        is_int(persist_clean(dir, "policy.json"), 1,
               "one leftover temporary file of this name is removed");
        is_int(count_entries(dir), 3, "the file itself and the other names stay");
        ok(access(path, F_OK) == 0, "policy.json is still there");
        snprintf(path, sizeof(path), "%s/missing", root);
        is_int(persist_clean(path, "policy.json"), 0, "a missing directory has nothing to clean");
}

int main(void)
{
        char cmd[300];

        tap_init();
        if (!mkdtemp(root)) {
                tap_diag("mkdtemp: %s", strerror(errno));
                return 1;
        }
        test_state_dir();
        test_write_read();
        test_write_failure();
        test_clean();
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        if (system(cmd) != 0)
                tap_diag("could not remove %s", root);
        return tap_done();
}
