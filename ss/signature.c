/* SPDX-License-Identifier: MIT */
/*
 * Public keys and detached signatures for fetched policies (see signature.h).
 * GnuTLS does the cryptography, loaded (tls-lib.h) when the first key is; this
 * file decides which key types and which signature algorithm go together, and
 * maps GnuTLS errors to -errno.
 */
#include "signature.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "tls-lib.h"

struct SignatureKey {
        gnutls_pubkey_t pubkey;
        gnutls_sign_algorithm_t algorithm;
        const char *algorithm_name;
};

/* GnuTLS errors of key import and verification. */
static int signature_error_to_errno(int gnutls_error)
{
        switch (gnutls_error) {
        case GNUTLS_E_SUCCESS:
                return 0;
        case GNUTLS_E_MEMORY_ERROR:
                return -ENOMEM;
        case GNUTLS_E_UNIMPLEMENTED_FEATURE:
        case GNUTLS_E_UNKNOWN_PK_ALGORITHM:
        case GNUTLS_E_ECC_UNSUPPORTED_CURVE:
                return -EOPNOTSUPP;
        default:
                /* Decoding errors, failed verification, malformed signatures. */
                return -EBADMSG;
        }
}

SignatureKey *signature_key_free(SignatureKey *k)
{
        if (!k)
                return NULL;
        if (k->pubkey)
                gnutls_pubkey_deinit(k->pubkey);
        return mfree(k);
}

int signature_key_new(SignatureKey **ret, const void *pem, size_t size)
{
        _cleanup_(signature_key_freep) SignatureKey *k = NULL;
        gnutls_datum_t datum = {.data = (unsigned char *) pem, .size = (unsigned) size};
        gnutls_ecc_curve_t curve;
        int r;

        assert(ret);
        if (!pem || size == 0 || size > SIGNATURE_KEY_FILE_MAX)
                return -EBADMSG;
        r = tls_lib_load(NULL, 0);
        if (r < 0)
                return r;
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        r = gnutls_pubkey_init(&k->pubkey);
        if (r < 0)
                return signature_error_to_errno(r);
        r = gnutls_pubkey_import(k->pubkey, &datum, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EBADMSG;

        switch (gnutls_pubkey_get_pk_algorithm(k->pubkey, NULL)) {
        case GNUTLS_PK_EDDSA_ED25519:
                k->algorithm = GNUTLS_SIGN_EDDSA_ED25519;
                k->algorithm_name = "Ed25519";
                break;
        case GNUTLS_PK_ECDSA:
                r = gnutls_pubkey_export_ecc_raw2(k->pubkey, &curve, NULL, NULL, 0);
                if (r < 0)
                        return signature_error_to_errno(r);
                if (curve != GNUTLS_ECC_CURVE_SECP256R1)
                        return -EOPNOTSUPP;
                k->algorithm = GNUTLS_SIGN_ECDSA_SHA256;
                k->algorithm_name = "ECDSA P-256 SHA-256";
                break;
        default:
                return -EOPNOTSUPP;
        }
        *ret = TAKE_PTR(k);
        return 0;
}

int signature_key_load(SignatureKey **ret, const char *path)
{
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        assert(path);
        r = read_file_bounded(path, 0, SIGNATURE_KEY_FILE_MAX, &buf, &size);
        if (r == -EBADFD)
                return -EINVAL;
        if (r < 0)
                return r;
        return signature_key_new(ret, buf, size);
}

const char *signature_key_algorithm(const SignatureKey *k)
{
        return k ? k->algorithm_name : NULL;
}

int signature_verify(const SignatureKey *k, const void *data, size_t size, const void *signature,
                     size_t signature_size)
{
        gnutls_datum_t d = {.data = (unsigned char *) data, .size = (unsigned) size};
        gnutls_datum_t s = {.data = (unsigned char *) signature, .size = (unsigned) signature_size};
        int r;

        assert(k);
        assert(data || size == 0);
        if (!signature || signature_size == 0 || signature_size > SIGNATURE_MAX)
                return -EMSGSIZE;
        if (size > UINT32_MAX)
                return -EMSGSIZE;
        r = gnutls_pubkey_verify_data2(k->pubkey, k->algorithm, 0, &d, &s);
        if (r < 0)
                return r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EBADMSG;
        return 0;
}
