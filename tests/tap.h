/* SPDX-License-Identifier: MIT */
/*
 * A small TAP 13 producer for our tests. Output goes to stdout only, line
 * buffered. A failed check prints where it failed and both values. A program
 * that made no check fails. Skips turn into failures when CI=true, because CI
 * must never pass by not testing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void tap_init(void);
/* Print the plan and return the exit status for main(). */
int tap_done(void);
/* Skip the whole program (or fail it under CI); exits. */
_Noreturn void tap_skip_all(const char *why);
void tap_skip(const char *name, const char *why);
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool tap_in_ci(void);

bool tap_check(bool cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool tap_check_int(long long a, long long b, const char *op, const char *file, int line,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
bool tap_check_str(const char *a, const char *b, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
bool tap_check_mem(const void *a, size_t alen, const void *b, size_t blen, const char *file,
                   int line, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

#define ok(cond, ...) tap_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(a, b, ...) \
        tap_check_int((long long) (a), (long long) (b), "==", __FILE__, __LINE__, __VA_ARGS__)
#define cmp_int(a, op, b, ...) \
        tap_check_int((long long) (a), (long long) (b), #op, __FILE__, __LINE__, __VA_ARGS__)
#define is_str(a, b, ...) tap_check_str((a), (b), __FILE__, __LINE__, __VA_ARGS__)
#define is_mem(a, alen, b, blen, ...) \
        tap_check_mem((a), (alen), (b), (blen), __FILE__, __LINE__, __VA_ARGS__)
