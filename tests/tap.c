/* SPDX-License-Identifier: MIT */
/*
 * TAP producer: see tap.h. Deliberately tiny; the TAP stream is what meson
 * reads, so every line it prints follows TAP 13 exactly.
 */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned tap_count;
static unsigned tap_failed;

bool tap_in_ci(void)
{
        const char *ci = getenv("CI");
        return ci && strcmp(ci, "true") == 0;
}

void tap_init(void)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("TAP version 13\n");
}

/* Test names may not contain '#': it would start a directive. */
__attribute__((format(printf, 1, 0))) static void print_name(const char *fmt, va_list ap)
{
        char buf[512];

        vsnprintf(buf, sizeof(buf), fmt, ap);
        for (char *p = buf; *p; p++)
                if (*p == '#' || *p == '\n')
                        *p = ' ';
        fputs(buf, stdout);
}

__attribute__((format(printf, 2, 0))) static bool report(bool cond, const char *fmt, va_list ap)
{
        tap_count++;
        if (!cond)
                tap_failed++;
        printf("%sok %u - ", cond ? "" : "not ", tap_count);
        print_name(fmt, ap);
        putchar('\n');
        return cond;
}

bool tap_check(bool cond, const char *file, int line, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        report(cond, fmt, ap);
        va_end(ap);
        if (!cond)
                printf("# failed at %s:%d\n", file, line);
        return cond;
}

bool tap_check_int(long long a, long long b, const char *op, const char *file, int line,
                   const char *fmt, ...)
{
        bool cond;
        va_list ap;

        if (strcmp(op, "==") == 0)
                cond = a == b;
        else if (strcmp(op, "!=") == 0)
                cond = a != b;
        else if (strcmp(op, "<") == 0)
                cond = a < b;
        else if (strcmp(op, "<=") == 0)
                cond = a <= b;
        else if (strcmp(op, ">") == 0)
                cond = a > b;
        else if (strcmp(op, ">=") == 0)
                cond = a >= b;
        else
                cond = false;
        va_start(ap, fmt);
        report(cond, fmt, ap);
        va_end(ap);
        if (!cond)
                printf("# failed at %s:%d: %lld %s %lld\n", file, line, a, op, b);
        return cond;
}

/* Each line of a (possibly multi-line) value as a diagnostic, so TAP stays valid. */
static void diag_value(const char *label, const char *v)
{
        if (!v) {
                printf("#   %s (null)\n", label);
                return;
        }
        printf("#   %s '", label);
        for (; *v; v++) {
                putchar(*v);
                if (*v == '\n')
                        printf("#             ");
        }
        printf("'\n");
}

bool tap_check_str(const char *a, const char *b, const char *file, int line, const char *fmt, ...)
{
        bool cond = (a && b) ? strcmp(a, b) == 0 : a == b;
        va_list ap;

        va_start(ap, fmt);
        report(cond, fmt, ap);
        va_end(ap);
        if (!cond) {
                printf("# failed at %s:%d:\n", file, line);
                diag_value("got:     ", a);
                diag_value("expected:", b);
        }
        return cond;
}

static void dump_mem(const char *what, const void *p, size_t len)
{
        const unsigned char *b = p;

        printf("#   %s (%zu bytes):", what, len);
        for (size_t i = 0; i < len && i < 32; i++)
                printf(" %02x", b[i]);
        printf("%s\n", len > 32 ? " ..." : "");
}

bool tap_check_mem(const void *a, size_t alen, const void *b, size_t blen, const char *file,
                   int line, const char *fmt, ...)
{
        bool cond = alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
        va_list ap;

        va_start(ap, fmt);
        report(cond, fmt, ap);
        va_end(ap);
        if (!cond) {
                printf("# failed at %s:%d\n", file, line);
                dump_mem("got", a, alen);
                dump_mem("expected", b, blen);
        }
        return cond;
}

void tap_diag(const char *fmt, ...)
{
        char buf[1024];
        va_list ap;
        char *line, *save = NULL;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                printf("# %s\n", line);
}

void tap_skip(const char *name, const char *why)
{
        tap_count++;
        if (tap_in_ci()) {
                tap_failed++;
                printf("not ok %u - %s (skipped, but CI=true forbids skipping: %s)\n", tap_count,
                       name, why);
                return;
        }
        printf("ok %u - %s # SKIP %s\n", tap_count, name, why);
}

_Noreturn void tap_skip_all(const char *why)
{
        if (tap_in_ci()) {
                printf("not ok %u - whole test skipped, but CI=true forbids skipping: %s\n",
                       ++tap_count, why);
                printf("1..%u\n", tap_count);
                fflush(stdout);
                exit(1);
        }
        if (tap_count == 0) {
                printf("1..0 # SKIP %s\n", why);
                fflush(stdout);
                exit(0);
        }
        tap_skip("rest of the program", why);
        exit(tap_done());
}

int tap_done(void)
{
        if (tap_count == 0) {
                printf("not ok 1 - the test made no checks\n1..1\n");
                fflush(stdout);
                return 1;
        }
        printf("1..%u\n", tap_count);
        if (tap_failed)
                printf("# %u of %u checks failed\n", tap_failed, tap_count);
        fflush(stdout);
        return tap_failed ? 1 : 0;
}
