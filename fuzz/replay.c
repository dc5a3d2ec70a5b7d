/* SPDX-License-Identifier: MIT */
/*
 * Runs a fuzz target over every file of its seed corpus, as a TAP test, so the
 * corpus is replayed in every build (normal, sanitizers, valgrind) without
 * libFuzzer. A crash or sanitizer report fails the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char **argv)
{
        char *names[4096];
        size_t n = 0;
        DIR *d;
        struct dirent *de;

        tap_init();
        if (argc < 2) {
                ok(0, "usage: replay CORPUS-DIR");
                return tap_done();
        }
        d = opendir(argv[1]);
        if (!d) {
                ok(0, "open corpus %s", argv[1]);
                return tap_done();
        }
        while ((de = readdir(d)) && n < 4096)
                if (de->d_name[0] != '.')
                        names[n++] = strdup(de->d_name);
        closedir(d);
        qsort(names, n, sizeof(names[0]), name_cmp);
        ok(n > 0, "corpus %s has seeds", argv[1]);
        for (size_t i = 0; i < n; i++) {
                char path[4096];
                FILE *f;
                uint8_t *buf;
                long len;

                snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]);
                f = fopen(path, "rb");
                if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0) {
                        ok(0, "read %s", names[i]);
                        if (f)
                                fclose(f);
                        free(names[i]);
                        continue;
                }
                rewind(f);
                buf = malloc(len ? (size_t) len : 1);
                if (buf && fread(buf, 1, (size_t) len, f) == (size_t) len) {
                        LLVMFuzzerTestOneInput(buf, (size_t) len);
                        ok(1, "seed %s (%ld bytes) runs clean", names[i], len);
                } else {
                        ok(0, "read %s", names[i]);
                }
                free(buf);
                fclose(f);
                free(names[i]);
        }
        return tap_done();
}
