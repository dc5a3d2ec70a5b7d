/* SPDX-License-Identifier: MIT */
/*
 * Detached signatures of fetched policies: a public key (PEM, as written by
 * "certtool --pubkey-info" or "openssl pkey -pubout") and the check of a
 * signature over a document with it, through GnuTLS.
 *
 * Two key types are accepted, each with one signature algorithm, so that a
 * key can never be used with a weaker algorithm than its owner meant:
 * Ed25519 (pure EdDSA over the document; the signature is the 64 raw bytes)
 * and ECDSA on P-256 with SHA-256 (the signature is the DER-encoded
 * Ecdsa-Sig-Value, as "openssl dgst -sha256 -sign" writes it). Anything
 * else (RSA, other curves) is refused when the key is loaded.
 *
 * Nothing here logs; errors are -errno (see each function).
 */
#pragma once

#include <stddef.h>

#include "util.h"

#define SIGNATURE_KEY_FILE_MAX (64u * 1024u) /* bytes of a PEM public key file */
#define SIGNATURE_MAX          512u          /* bytes of a detached signature */

typedef struct SignatureKey SignatureKey;

/*
 * Loads a PEM public key from memory. -EBADMSG: not a PEM public key;
 * -EOPNOTSUPP: a key type other than Ed25519 or ECDSA P-256; -ENOMEM;
 * -ELIBACC: GnuTLS cannot be loaded (tls_unavailable_reason() says why).
 */
int signature_key_new(SignatureKey **ret, const void *pem, size_t size);
/* The same from a file: also the -errno of a failed read, -EFBIG over SIGNATURE_KEY_FILE_MAX. */
int signature_key_load(SignatureKey **ret, const char *path);
SignatureKey *signature_key_free(SignatureKey *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(SignatureKey *, signature_key_free);

/* "Ed25519" or "ECDSA P-256 SHA-256", for messages. */
const char *signature_key_algorithm(const SignatureKey *k);

/*
 * Checks signature over data. 0: valid. -EBADMSG: it does not verify (a
 * wrong key, a changed document, a truncated or malformed signature, another
 * algorithm); -EMSGSIZE: empty or over SIGNATURE_MAX; -ENOMEM.
 */
int signature_verify(const SignatureKey *k, const void *data, size_t size, const void *signature,
                     size_t signature_size);
