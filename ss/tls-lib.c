/* SPDX-License-Identifier: MIT */
/*
 * GnuTLS loaded on first use: see tls-lib.h. The library is opened once per
 * process and never closed (its sessions and credentials may live until exit);
 * dl-table.c does the loading and keeps the outcome.
 */
#include "tls-lib.h"
#include "transport.h"

#ifndef SS_GNUTLS_SONAME
#error "SS_GNUTLS_SONAME (the soname of libgnutls) comes from ss/meson.build"
#endif

#define TLS_LIB_SYMBOL(name) DL_TABLE_SYMBOL(TlsLib, gnutls_, name)
static const DlSymbol symbols[] = {
    TLS_LIB_FUNCTIONS(TLS_LIB_SYMBOL)
    /* gnutls_free is a variable holding the deallocator: its address. */
    DL_TABLE_SYMBOL(TlsLib, gnutls_, free)};
#undef TLS_LIB_SYMBOL

#define TLS_LIB_CHECK_NAME(name) DL_TABLE_CHECK_NAME(tls_lib, gnutls_, name)
TLS_LIB_FUNCTIONS(TLS_LIB_CHECK_NAME)
#undef TLS_LIB_CHECK_NAME

DL_LIBRARY_DEFINE(TlsLib, tls_lib, SS_GNUTLS_SONAME, "TLS", symbols, tls_lib_load,
                  tls_unavailable_reason)
