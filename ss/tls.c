/* SPDX-License-Identifier: MIT */
/*
 * TLS credentials per trust store (TlsContext) and the mapping of GnuTLS
 * errors to -errno. A context wraps one gnutls_certificate_credentials_t with
 * the trust list of the policy's certificates, or the system trust store when
 * a TLS streamtype names none. The system one is shared by everybody who asks
 * for it and goes away with its last user, like the others. Contexts live on
 * the event loop's thread; the live counter is only read from there too.
 * Making a context is what loads GnuTLS (tls-lib.h): every session hangs off
 * one, so no other path of the transport needs to ask.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "tls-lib.h"
#include "transport-internal.h"
#include "util.h"

struct TlsContext {
        unsigned n_ref;
        gnutls_certificate_credentials_t credentials;
        gnutls_priority_t priority;
};

/*
 * The system's default priorities (and /etc/gnutls/config), reordered where
 * GnuTLS's own order costs more than it buys; the algorithms offered stay the
 * same. Key exchange: X25519 first (GnuTLS puts SECP256R1 first, and a full
 * handshake then costs two P-256 scalar multiplications in nettle: about 0.7
 * ms of CPU against 0.3). Ciphers: AES-128-GCM first, as browsers order them
 * (GnuTLS and OpenSSL put AES-256-GCM first); with AES-NI it is about a third
 * cheaper per byte on both ends. Parsed once per context, not per connection.
 */
#define PRIORITY_ORDER                                                                            \
        "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"            \
        "+GROUP-X448:+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:+GROUP-FFDHE6144:"        \
        "+GROUP-FFDHE8192:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:" \
        "+AES-256-CCM:+AES-128-CBC:+AES-256-CBC"

static unsigned live_count;
static TlsContext *system_context;

int tls_error_to_errno(int gnutls_error, int sys_errno)
{
        switch (gnutls_error) {
        case GNUTLS_E_SUCCESS:
                return 0;
        case GNUTLS_E_AGAIN:
        case GNUTLS_E_INTERRUPTED:
                return -EAGAIN;
        case GNUTLS_E_PUSH_ERROR:
        case GNUTLS_E_PULL_ERROR:
                return sys_errno > 0 ? -sys_errno : -EIO;
        case GNUTLS_E_PREMATURE_TERMINATION:
                return -ECONNRESET;
        case GNUTLS_E_MEMORY_ERROR:
                return -ENOMEM;
        case GNUTLS_E_TIMEDOUT:
                return -ETIMEDOUT;
        case GNUTLS_E_INVALID_REQUEST:
        case GNUTLS_E_INVALID_SESSION:
                return -EINVAL;
        case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
        case GNUTLS_E_CERTIFICATE_ERROR:
                return -EKEYREJECTED;
        case GNUTLS_E_NO_CERTIFICATE_FOUND:
                return -ENOENT;
        case GNUTLS_E_FILE_ERROR:
                return -EIO;
        case GNUTLS_E_BASE64_DECODING_ERROR:
        case GNUTLS_E_BASE64_UNEXPECTED_HEADER_ERROR:
        case GNUTLS_E_ASN1_DER_ERROR:
        case GNUTLS_E_ASN1_ELEMENT_NOT_FOUND:
        case GNUTLS_E_ASN1_TAG_ERROR:
        case GNUTLS_E_ASN1_DER_OVERFLOW:
                return -EBADMSG;
        case GNUTLS_E_LARGE_PACKET:
        case GNUTLS_E_RECORD_OVERFLOW:
                return -EMSGSIZE;
        case GNUTLS_E_UNIMPLEMENTED_FEATURE:
                return -EOPNOTSUPP;
        default:
                /* Alerts, decryption failures, unexpected messages: the peer broke the protocol. */
                return -EPROTO;
        }
}

static int certificates_load(gnutls_certificate_credentials_t credentials,
                             const TlsCertificate *certs, size_t n_certs)
{
        for (size_t i = 0; i < n_certs; i++) {
                gnutls_datum_t datum = {
                    .data = (unsigned char *) certs[i].data,
                    .size = (unsigned) certs[i].size,
                };
                int r;

                if (!certs[i].data || certs[i].size == 0 || certs[i].size > UINT32_MAX)
                        return -EINVAL;
                r = gnutls_certificate_set_x509_trust_mem(
                    credentials, &datum, certs[i].pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER);
                if (r < 0)
                        return tls_error_to_errno(r, 0);
                if (r == 0) /* PEM without a certificate in it */
                        return -EBADMSG;
        }
        return 0;
}

static int context_new(TlsContext **ret, const TlsCertificate *certs, size_t n_certs)
{
        TlsContext *c;
        int r;

        r = tls_lib_load(NULL, 0);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;

        r = gnutls_certificate_allocate_credentials(&c->credentials);
        if (r < 0) {
                free(c);
                return tls_error_to_errno(r, 0);
        }

        if (n_certs > 0)
                r = certificates_load(c->credentials, certs, n_certs);
        else {
                /* Only here: given certificates must never mix with the system store. */
                r = gnutls_certificate_set_x509_system_trust(c->credentials);
                r = r < 0 ? tls_error_to_errno(r, 0) : 0;
        }
        if (r >= 0) {
                r = gnutls_priority_init2(&c->priority, PRIORITY_ORDER, NULL,
                                          GNUTLS_PRIORITY_INIT_DEF_APPEND);
                r = r < 0 ? tls_error_to_errno(r, 0) : 0;
        }
        if (r < 0) {
                gnutls_certificate_free_credentials(c->credentials);
                free(c);
                return r;
        }

        live_count++;
        *ret = c;
        return 0;
}

int tls_context_new(TlsContext **ret, const TlsCertificate *certs, size_t n_certs)
{
        if (!ret || (n_certs > 0 && !certs))
                return -EINVAL;
        if (n_certs == 0)
                return tls_context_get_system(ret);
        return context_new(ret, certs, n_certs);
}

int tls_context_get_system(TlsContext **ret)
{
        int r;

        assert(ret);
        if (!system_context) {
                r = context_new(&system_context, NULL, 0);
                if (r < 0)
                        return r;
                *ret = system_context;
                return 0;
        }
        *ret = tls_context_ref(system_context);
        return 0;
}

TlsContext *tls_context_ref(TlsContext *c)
{
        if (!c)
                return NULL;
        assert(c->n_ref > 0);
        c->n_ref++;
        return c;
}

TlsContext *tls_context_unref(TlsContext *c)
{
        if (!c)
                return NULL;
        assert(c->n_ref > 0);
        if (--c->n_ref > 0)
                return NULL;

        if (c == system_context)
                system_context = NULL;
        gnutls_certificate_free_credentials(c->credentials);
        gnutls_priority_deinit(c->priority);
        assert(live_count > 0);
        live_count--;
        return mfree(c);
}

unsigned tls_context_live_count(void)
{
        return live_count;
}

gnutls_certificate_credentials_t tls_context_get_credentials(TlsContext *c)
{
        assert(c);
        return c->credentials;
}

gnutls_priority_t tls_context_get_priority(TlsContext *c)
{
        assert(c);
        return c->priority;
}
