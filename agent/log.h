/* SPDX-License-Identifier: MIT */
/*
 * Agent logging: to stderr, with <N> priority prefixes when stderr is the
 * journal (JOURNAL_STREAM matches it), plain "level: text" otherwise. Only the
 * agent logs; the libraries return errors and let the agent decide.
 */
#pragma once

#include <errno.h>
#include <syslog.h>

#include "util.h"

void log_setup(void);
int log_set_level_from_string(const char *s);
void log_set_level(int level);
int log_get_level(void);

/* Logs at priority; returns -abs(error) (or 0 when error is 0), so callers can
 * `return log_error_errno(r, ...)`. %m prints strerror(error). */
int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
    _printf_(5, 6);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...)            log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)             log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)           log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...)          log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)            log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)
