/* SPDX-License-Identifier: MIT */
/*
 * libnghttp2, loaded on first use (dl-table.h, as GnuTLS in tls-lib.h). The
 * engine is not linked with it: a process that never speaks HTTP/2 (the agent
 * on its default policy, the client library, smdctl) never maps it (about
 * 100 KiB of resident memory). h2_lib_load() is called by what leads to an
 * nghttp2 session: making a stream of an h2 streamtype over TLS (the client
 * speaks h2 only after ALPN chose it), setting up a client session, and a
 * server connection going h2 (ALPN h2, or the h2c preface). Every other
 * nghttp2 call is on a session one of those made.
 *
 * Code that calls nghttp2 includes this header instead of <nghttp2/nghttp2.h>
 * and calls the functions by their own names: the names below are macros for
 * the resolved pointers in h2_lib, whose types are the functions' own
 * (__typeof__), so a call is checked by the compiler as before. A function
 * missing from the list is an undefined symbol at link time, not a crash.
 */
#pragma once

#include <nghttp2/nghttp2.h>
#include <stddef.h>

#include "dl-table.h"

/* Every nghttp2 function the engine calls, without its nghttp2_ prefix. */
#define H2_LIB_FUNCTIONS(X)                                  \
        X(option_del)                                        \
        X(option_new)                                        \
        X(option_set_max_send_header_block_length)           \
        X(option_set_no_auto_window_update)                  \
        X(session_callbacks_del)                             \
        X(session_callbacks_new)                             \
        X(session_callbacks_set_on_begin_headers_callback)   \
        X(session_callbacks_set_on_data_chunk_recv_callback) \
        X(session_callbacks_set_on_frame_recv_callback)      \
        X(session_callbacks_set_on_frame_send_callback)      \
        X(session_callbacks_set_on_header_callback)          \
        X(session_callbacks_set_on_stream_close_callback)    \
        X(session_client_new2)                               \
        X(session_consume)                                   \
        X(session_consume_connection)                        \
        X(session_consume_stream)                            \
        X(session_del)                                       \
        X(session_find_stream)                               \
        X(session_get_last_proc_stream_id)                   \
        X(session_get_remote_settings)                       \
        X(session_get_remote_window_size)                    \
        X(session_get_stream_remote_window_size)             \
        X(session_get_stream_user_data)                      \
        X(session_mem_recv)                                  \
        X(session_mem_send)                                  \
        X(session_resume_data)                               \
        X(session_server_new2)                               \
        X(session_set_local_window_size)                     \
        X(session_set_stream_user_data)                      \
        X(session_terminate_session)                         \
        X(session_want_read)                                 \
        X(session_want_write)                                \
        X(strerror)                                          \
        X(submit_goaway)                                     \
        X(submit_ping)                                       \
        X(submit_request)                                    \
        X(submit_response)                                   \
        X(submit_rst_stream)                                 \
        X(submit_settings)

typedef struct H2Lib {
#define H2_LIB_FIELD(name) DL_TABLE_FIELD(nghttp2_, name)
        H2_LIB_FUNCTIONS(H2_LIB_FIELD)
#undef H2_LIB_FIELD
} H2Lib;

/* The resolved functions: valid once h2_lib_load() has returned 0. */
extern H2Lib h2_lib;

/*
 * Load libnghttp2 if it is not loaded yet. 0 on success, also on every later
 * call. -ELIBACC when the library or one of its functions cannot be found;
 * err (if not NULL) then gets "HTTP/2 unavailable: " and the loader's reason,
 * e.g. "HTTP/2 unavailable: libnghttp2.so.14: cannot open shared object file:
 * No such file or directory". A failure is final for the process, with the
 * same text every time, which is also what h2_unavailable_reason() answers.
 */
int h2_lib_load(char *err, size_t errlen);

/* Why HTTP/2 is unavailable in this process; NULL while libnghttp2 loaded or was never needed. */
const char *h2_unavailable_reason(void);

/* The calls by their own names: one for each of H2_LIB_FUNCTIONS (h2-lib.c checks). */
#define nghttp2_option_del h2_lib.option_del
#define nghttp2_option_new h2_lib.option_new
#define nghttp2_option_set_max_send_header_block_length \
        h2_lib.option_set_max_send_header_block_length
#define nghttp2_option_set_no_auto_window_update h2_lib.option_set_no_auto_window_update
#define nghttp2_session_callbacks_del            h2_lib.session_callbacks_del
#define nghttp2_session_callbacks_new            h2_lib.session_callbacks_new
#define nghttp2_session_callbacks_set_on_begin_headers_callback \
        h2_lib.session_callbacks_set_on_begin_headers_callback
#define nghttp2_session_callbacks_set_on_data_chunk_recv_callback \
        h2_lib.session_callbacks_set_on_data_chunk_recv_callback
#define nghttp2_session_callbacks_set_on_frame_recv_callback \
        h2_lib.session_callbacks_set_on_frame_recv_callback
#define nghttp2_session_callbacks_set_on_frame_send_callback \
        h2_lib.session_callbacks_set_on_frame_send_callback
#define nghttp2_session_callbacks_set_on_header_callback \
        h2_lib.session_callbacks_set_on_header_callback
#define nghttp2_session_callbacks_set_on_stream_close_callback \
        h2_lib.session_callbacks_set_on_stream_close_callback
#define nghttp2_session_client_new2                   h2_lib.session_client_new2
#define nghttp2_session_consume                       h2_lib.session_consume
#define nghttp2_session_consume_connection            h2_lib.session_consume_connection
#define nghttp2_session_consume_stream                h2_lib.session_consume_stream
#define nghttp2_session_del                           h2_lib.session_del
#define nghttp2_session_find_stream                   h2_lib.session_find_stream
#define nghttp2_session_get_last_proc_stream_id       h2_lib.session_get_last_proc_stream_id
#define nghttp2_session_get_remote_settings           h2_lib.session_get_remote_settings
#define nghttp2_session_get_remote_window_size        h2_lib.session_get_remote_window_size
#define nghttp2_session_get_stream_remote_window_size h2_lib.session_get_stream_remote_window_size
#define nghttp2_session_get_stream_user_data          h2_lib.session_get_stream_user_data
#define nghttp2_session_mem_recv                      h2_lib.session_mem_recv
#define nghttp2_session_mem_send                      h2_lib.session_mem_send
#define nghttp2_session_resume_data                   h2_lib.session_resume_data
#define nghttp2_session_server_new2                   h2_lib.session_server_new2
#define nghttp2_session_set_local_window_size         h2_lib.session_set_local_window_size
#define nghttp2_session_set_stream_user_data          h2_lib.session_set_stream_user_data
#define nghttp2_session_terminate_session             h2_lib.session_terminate_session
#define nghttp2_session_want_read                     h2_lib.session_want_read
#define nghttp2_session_want_write                    h2_lib.session_want_write
#define nghttp2_strerror                              h2_lib.strerror
#define nghttp2_submit_goaway                         h2_lib.submit_goaway
#define nghttp2_submit_ping                           h2_lib.submit_ping
#define nghttp2_submit_request                        h2_lib.submit_request
#define nghttp2_submit_response                       h2_lib.submit_response
#define nghttp2_submit_rst_stream                     h2_lib.submit_rst_stream
#define nghttp2_submit_settings                       h2_lib.submit_settings
