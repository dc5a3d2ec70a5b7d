/* SPDX-License-Identifier: MIT */
/*
 * GnuTLS, loaded on first use. The engine is not linked with libgnutls: a
 * process that never opens a TLS stream (the agent on its default policy, the
 * client library, smdctl) never maps it nor the dozen libraries it pulls in
 * (about 2.4 MiB of resident memory). tls_lib_load() dlopen()s the library
 * and resolves every function the engine calls; it is called first by each
 * entry point that leads to GnuTLS (TLS contexts, server credentials,
 * signature keys), and every other GnuTLS call happens on an object one of
 * those made.
 *
 * Code that calls GnuTLS includes this header instead of <gnutls/...>, and
 * calls the functions by their own names: the names below are macros for the
 * resolved pointers in tls_lib, whose types are the functions' own
 * (__typeof__), so a call is checked by the compiler as before. A function
 * missing from the list is an undefined symbol at link time, not a crash.
 * The loading itself is dl-table.c's, shared with h2-lib.h.
 */
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stddef.h>

#include "dl-table.h"

/* Every GnuTLS function the engine calls, without its gnutls_ prefix. */
#define TLS_LIB_FUNCTIONS(X)                     \
        X(alert_get)                             \
        X(alert_get_name)                        \
        X(alpn_get_selected_protocol)            \
        X(alpn_set_protocols)                    \
        X(bye)                                   \
        X(certificate_allocate_credentials)      \
        X(certificate_free_credentials)          \
        X(certificate_get_peers)                 \
        X(certificate_set_x509_key_mem)          \
        X(certificate_set_x509_system_trust)     \
        X(certificate_set_x509_trust_mem)        \
        X(certificate_type_get)                  \
        X(certificate_verification_status_print) \
        X(credentials_set)                       \
        X(deinit)                                \
        X(error_is_fatal)                        \
        X(handshake)                             \
        X(handshake_set_timeout)                 \
        X(init)                                  \
        X(priority_deinit)                       \
        X(priority_init2)                        \
        X(priority_set)                          \
        X(pubkey_deinit)                         \
        X(pubkey_export_ecc_raw2)                \
        X(pubkey_get_pk_algorithm)               \
        X(pubkey_import)                         \
        X(pubkey_init)                           \
        X(pubkey_verify_data2)                   \
        X(record_check_pending)                  \
        X(record_get_direction)                  \
        X(record_recv)                           \
        X(record_send)                           \
        X(server_name_set)                       \
        X(session_get_verify_cert_status)        \
        X(session_set_verify_cert)               \
        X(set_default_priority)                  \
        X(strerror)                              \
        X(transport_set_errno)                   \
        X(transport_set_int2)                    \
        X(transport_set_ptr)                     \
        X(transport_set_pull_function)           \
        X(transport_set_pull_timeout_function)   \
        X(transport_set_vec_push_function)       \
        X(x509_crt_check_issuer)                 \
        X(x509_crt_deinit)                       \
        X(x509_crt_import)                       \
        X(x509_crt_init)

typedef struct TlsLib {
#define TLS_LIB_FIELD(name) DL_TABLE_FIELD(gnutls_, name)
        TLS_LIB_FUNCTIONS(TLS_LIB_FIELD)
#undef TLS_LIB_FIELD
        /* gnutls_free is a variable holding the deallocator, not a function. */
        gnutls_free_function *free;
} TlsLib;

/* The resolved functions: valid once tls_lib_load() has returned 0. */
extern TlsLib tls_lib;

/*
 * Load GnuTLS if it is not loaded yet. 0 on success, also on every later call.
 * -ELIBACC when the library or one of its functions cannot be found; err (if
 * not NULL) then gets "TLS unavailable: " and the loader's reason, e.g.
 * "TLS unavailable: libgnutls.so.30: cannot open shared object file: No such
 * file or directory". A failure is final for the process: it is not retried,
 * and every later call fails the same way with the same text, which is also
 * what tls_unavailable_reason() (transport.h) answers.
 */
int tls_lib_load(char *err, size_t errlen);

/* The calls by their own names: one for each of TLS_LIB_FUNCTIONS (tls-lib.c checks). */
#define gnutls_alert_get                             tls_lib.alert_get
#define gnutls_alert_get_name                        tls_lib.alert_get_name
#define gnutls_alpn_get_selected_protocol            tls_lib.alpn_get_selected_protocol
#define gnutls_alpn_set_protocols                    tls_lib.alpn_set_protocols
#define gnutls_bye                                   tls_lib.bye
#define gnutls_certificate_allocate_credentials      tls_lib.certificate_allocate_credentials
#define gnutls_certificate_free_credentials          tls_lib.certificate_free_credentials
#define gnutls_certificate_get_peers                 tls_lib.certificate_get_peers
#define gnutls_certificate_set_x509_key_mem          tls_lib.certificate_set_x509_key_mem
#define gnutls_certificate_set_x509_system_trust     tls_lib.certificate_set_x509_system_trust
#define gnutls_certificate_set_x509_trust_mem        tls_lib.certificate_set_x509_trust_mem
#define gnutls_certificate_type_get                  tls_lib.certificate_type_get
#define gnutls_certificate_verification_status_print tls_lib.certificate_verification_status_print
#define gnutls_credentials_set                       tls_lib.credentials_set
#define gnutls_deinit                                tls_lib.deinit
#define gnutls_error_is_fatal                        tls_lib.error_is_fatal
#define gnutls_handshake                             tls_lib.handshake
#define gnutls_handshake_set_timeout                 tls_lib.handshake_set_timeout
#define gnutls_init                                  tls_lib.init
#define gnutls_priority_deinit                       tls_lib.priority_deinit
#define gnutls_priority_init2                        tls_lib.priority_init2
#define gnutls_priority_set                          tls_lib.priority_set
#define gnutls_pubkey_deinit                         tls_lib.pubkey_deinit
#define gnutls_pubkey_export_ecc_raw2                tls_lib.pubkey_export_ecc_raw2
#define gnutls_pubkey_get_pk_algorithm               tls_lib.pubkey_get_pk_algorithm
#define gnutls_pubkey_import                         tls_lib.pubkey_import
#define gnutls_pubkey_init                           tls_lib.pubkey_init
#define gnutls_pubkey_verify_data2                   tls_lib.pubkey_verify_data2
#define gnutls_record_check_pending                  tls_lib.record_check_pending
#define gnutls_record_get_direction                  tls_lib.record_get_direction
#define gnutls_record_recv                           tls_lib.record_recv
#define gnutls_record_send                           tls_lib.record_send
#define gnutls_server_name_set                       tls_lib.server_name_set
#define gnutls_session_get_verify_cert_status        tls_lib.session_get_verify_cert_status
#define gnutls_session_set_verify_cert               tls_lib.session_set_verify_cert
#define gnutls_set_default_priority                  tls_lib.set_default_priority
#define gnutls_strerror                              tls_lib.strerror
#define gnutls_transport_set_errno                   tls_lib.transport_set_errno
/* gnutls_transport_set_int() is a macro of gnutls.h for this one. */
#define gnutls_transport_set_int2                  tls_lib.transport_set_int2
#define gnutls_transport_set_ptr                   tls_lib.transport_set_ptr
#define gnutls_transport_set_pull_function         tls_lib.transport_set_pull_function
#define gnutls_transport_set_pull_timeout_function tls_lib.transport_set_pull_timeout_function
#define gnutls_transport_set_vec_push_function     tls_lib.transport_set_vec_push_function
#define gnutls_x509_crt_check_issuer               tls_lib.x509_crt_check_issuer
#define gnutls_x509_crt_deinit                     tls_lib.x509_crt_deinit
#define gnutls_x509_crt_import                     tls_lib.x509_crt_import
#define gnutls_x509_crt_init                       tls_lib.x509_crt_init
/* As gnutls.h's own macro: free through the library's deallocator, then NULL. */
#undef gnutls_free
#define gnutls_free(p) ((*tls_lib.free)((void *) (p)), (p) = NULL)
