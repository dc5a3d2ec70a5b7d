/* SPDX-License-Identifier: MIT */
/*
 * libnghttp2 loaded on first use: see h2-lib.h. Opened once per process and
 * never closed (sessions may live until exit); dl-table.c does the loading
 * and keeps the outcome.
 */
#include "h2-lib.h"

#ifndef SS_NGHTTP2_SONAME
#error "SS_NGHTTP2_SONAME (the soname of libnghttp2) comes from ss/meson.build"
#endif

#define H2_LIB_SYMBOL(name) DL_TABLE_SYMBOL(H2Lib, nghttp2_, name)
static const DlSymbol symbols[] = {H2_LIB_FUNCTIONS(H2_LIB_SYMBOL)};
#undef H2_LIB_SYMBOL

#define H2_LIB_CHECK_NAME(name) DL_TABLE_CHECK_NAME(h2_lib, nghttp2_, name)
H2_LIB_FUNCTIONS(H2_LIB_CHECK_NAME)
#undef H2_LIB_CHECK_NAME

DL_LIBRARY_DEFINE(H2Lib, h2_lib, SS_NGHTTP2_SONAME, "HTTP/2", symbols, h2_lib_load,
                  h2_unavailable_reason)
