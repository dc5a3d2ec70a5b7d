/* SPDX-License-Identifier: MIT */
/*
 * GnuTLS loaded on first use: see tls-lib.h. The library is opened once per
 * process and never closed (its sessions and credentials may live until exit);
 * RTLD_LOCAL keeps its symbols, and those of the libraries it brings, out of
 * the global namespace. The outcome, success or the loader's reason for
 * failing, is decided once (pthread_once) and kept.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tls-lib.h"
#include "transport.h"

#ifndef SS_GNUTLS_SONAME
#error "SS_GNUTLS_SONAME (the soname of libgnutls) comes from ss/meson.build"
#endif

#define ERROR_MAX 512

TlsLib tls_lib;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result;
static char load_error[ERROR_MAX];

static void load_fail(void *handle, const char *reason)
{
        snprintf(load_error, sizeof(load_error), "TLS unavailable: %s",
                 reason ? reason : SS_GNUTLS_SONAME ": unknown error");
        if (handle)
                (void) dlclose(handle);
        memset(&tls_lib, 0, sizeof(tls_lib));
        load_result = -ELIBACC;
}

static void load(void)
{
        void *handle;

        handle = dlopen(SS_GNUTLS_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
                load_fail(NULL, dlerror());
                return;
        }

#define TLS_LIB_RESOLVE(name)                                                     \
        tls_lib.name = (__typeof__(tls_lib.name)) dlsym(handle, "gnutls_" #name); \
        if (!tls_lib.name) {                                                      \
                load_fail(handle, dlerror());                                     \
                return;                                                           \
        }
        TLS_LIB_FUNCTIONS(TLS_LIB_RESOLVE)
#undef TLS_LIB_RESOLVE

        tls_lib.free = (gnutls_free_function *) dlsym(handle, "gnutls_free");
        if (!tls_lib.free || !*tls_lib.free) {
                load_fail(handle, dlerror());
                return;
        }
        load_result = 0;
}

int tls_lib_load(char *err, size_t errlen)
{
        (void) pthread_once(&load_once, load);
        if (load_result < 0 && err && errlen > 0)
                snprintf(err, errlen, "%s", load_error);
        return load_result;
}

const char *tls_unavailable_reason(void)
{
        return load_error[0] ? load_error : NULL;
}
