/* SPDX-License-Identifier: MIT */
/*
 * What the parts of the transport (transport.c, resolver.c, tls.c) share with
 * each other and with their tests, and nobody else needs: resolver queries,
 * the TLS credentials behind a TlsContext and the one GnuTLS error mapping.
 */
#pragma once

#include <gnutls/gnutls.h>
#include <netdb.h>

#include "transport.h"

/* Queries waiting for the worker thread; one more is refused with -EBUSY. */
#define RESOLVER_QUEUE_MAX 256

typedef struct ResolverQuery ResolverQuery;

/*
 * The outcome of one query, called from the event loop. gai_error is 0 or an
 * EAI_* code (sys_errno is errno for EAI_SYSTEM); result is valid only during
 * the call. The query is freed by the resolver when the callback returns.
 */
typedef void (*ResolverCallback)(int gai_error, int sys_errno, const struct addrinfo *result,
                                 void *userdata);

/*
 * Queue getaddrinfo(host, port) (SOCK_STREAM, any family) for the worker. The
 * callback is never called from inside this call. -EBUSY when the queue is
 * full. The returned handle stays valid until the callback or a cancel.
 */
int resolver_query(Resolver *r, const char *host, uint16_t port, ResolverCallback callback,
                   void *userdata, ResolverQuery **ret);
/* Drop a query that has not been delivered: its callback is never called. */
ResolverQuery *resolver_query_cancel(ResolverQuery *q);
/* Queries started and neither delivered nor cancelled (for tests). */
unsigned resolver_query_count(Resolver *r);

/* A new reference to the shared context of the system trust store. */
int tls_context_get_system(TlsContext **ret);
gnutls_certificate_credentials_t tls_context_get_credentials(TlsContext *c);
gnutls_priority_t tls_context_get_priority(TlsContext *c);

/*
 * The only mapping of GNUTLS_E_* to -errno. sys_errno is errno as it was after
 * the failed call, used for GNUTLS_E_PUSH_ERROR and GNUTLS_E_PULL_ERROR.
 */
int tls_error_to_errno(int gnutls_error, int sys_errno);
