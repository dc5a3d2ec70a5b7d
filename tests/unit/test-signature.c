/* SPDX-License-Identifier: MIT */
/*
 * Detached policy signatures (ss/signature.c) with keys made by certtool, as
 * smdagent.policy(5) tells a vendor to make them, and signatures made the way
 * the man page says (openssl pkeyutl / openssl dgst) and by GnuTLS itself:
 * valid Ed25519 and ECDSA P-256 signatures verify; another key, a changed
 * document, a truncated or extended signature, an empty or oversized one, and
 * a signature with another hash do not; RSA and P-384 keys and files that are
 * not public keys are refused when loading.
 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "signature.h"
#include "tap.h"
#include "util.h"

static char work[] = "/tmp/test-signature-XXXXXX";

static const char document[] =
    "{\"release\":\"42\",\"s\":[{\"x\":{\"endpoint\":\"example.org\"}}]}\n";

static char *path(const char *name)
{
        static char buf[8][256];
        static unsigned next;
        char *p = buf[next++ % ELEMENTSOF(buf)];

        snprintf(p, sizeof(buf[0]), "%s/%s", work, name);
        return p;
}

/* Runs argv with stdout and stderr to /dev/null; true when it exited 0. */
static bool run(const char *const *argv)
{
        pid_t pid;
        int status;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return false;
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

                if (fd >= 0) {
                        (void) dup2(fd, 1);
                        (void) dup2(fd, 2);
                }
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) != pid)
                return false;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool have(const char *program)
{
        const char *argv[] = {"sh", "-c", NULL, NULL};
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "command -v %s", program);
        argv[2] = cmd;
        return run(argv);
}

static bool write_file(const char *p, const void *data, size_t size)
{
        FILE *f = fopen(p, "we");
        bool good;

        if (!f)
                return false;
        good = fwrite(data, 1, size, f) == size;
        return fclose(f) == 0 && good;
}

static uint8_t *read_file(const char *p, size_t *ret_size)
{
        FILE *f = fopen(p, "re");
        uint8_t *buf = malloc(65536);
        size_t n = 0;

        if (f && buf)
                n = fread(buf, 1, 65536, f);
        if (f)
                fclose(f);
        if (!f || !buf || n == 0) {
                free(buf);
                return NULL;
        }
        *ret_size = n;
        return buf;
}

/* certtool --generate-privkey with extra arguments, then --pubkey-info into name.pub. */
static bool make_key(const char *name, const char *type, const char *extra)
{
        char key[256], pub[256];
        const char *gen[] = {
            "certtool", "--generate-privkey", "--key-type", type, "--outfile", key, extra, NULL};
        const char *info[] = {"certtool", "--load-privkey", key, "--pubkey-info", "--outfile", pub,
                              NULL};

        snprintf(key, sizeof(key), "%s", path(name));
        strncat(key, ".key", sizeof(key) - strlen(key) - 1);
        snprintf(pub, sizeof(pub), "%s", path(name));
        strncat(pub, ".pub", sizeof(pub) - strlen(pub) - 1);
        return run(gen) && run(info);
}

/* Signs data with name.key through GnuTLS; the signature is returned (free it). */
static uint8_t *gnutls_sign(const char *name, gnutls_sign_algorithm_t algorithm, const void *data,
                            size_t size, size_t *ret_size)
{
        char key[256];
        size_t key_size = 0;
        _cleanup_free_ uint8_t *pem = NULL;
        gnutls_privkey_t privkey = NULL;
        gnutls_datum_t k, d = {.data = (unsigned char *) data, .size = (unsigned) size}, sig = {};
        uint8_t *out = NULL;

        snprintf(key, sizeof(key), "%s.key", path(name));
        pem = read_file(key, &key_size);
        if (!pem)
                return NULL;
        k = (gnutls_datum_t){.data = pem, .size = (unsigned) key_size};
        if (gnutls_privkey_init(&privkey) < 0)
                return NULL;
        if (gnutls_privkey_import_x509_raw(privkey, &k, GNUTLS_X509_FMT_PEM, NULL, 0) >= 0 &&
            gnutls_privkey_sign_data2(privkey, algorithm, 0, &d, &sig) >= 0) {
                out = malloc(sig.size);
                if (out) {
                        memcpy(out, sig.data, sig.size);
                        *ret_size = sig.size;
                }
        }
        gnutls_free(sig.data);
        gnutls_privkey_deinit(privkey);
        return out;
}

static SignatureKey *load(const char *name)
{
        SignatureKey *k = NULL;
        char pub[256];
        int r;

        snprintf(pub, sizeof(pub), "%s.pub", path(name));
        r = signature_key_load(&k, pub);
        is_int(r, 0, "the %s public key made by certtool loads", name);
        return k;
}

static void test_ed25519(void)
{
        _cleanup_(signature_key_freep) SignatureKey *k = load("ed");
        _cleanup_(signature_key_freep) SignatureKey *other = load("ed2");
        _cleanup_free_ uint8_t *sig = NULL;
        char tampered[sizeof(document)];
        size_t n = 0;

        if (!k || !other)
                return;
        is_str(signature_key_algorithm(k), "Ed25519", "the key is Ed25519");
        sig = gnutls_sign("ed", GNUTLS_SIGN_EDDSA_ED25519, document, strlen(document), &n);
        ok(sig && n == 64, "an Ed25519 signature is 64 bytes");
        if (!sig)
                return;
        is_int(signature_verify(k, document, strlen(document), sig, n), 0,
               "a valid Ed25519 signature verifies");
        is_int(signature_verify(other, document, strlen(document), sig, n), -EBADMSG,
               "Ed25519: another key refuses it");
        memcpy(tampered, document, sizeof(document));
        tampered[12] = '3';
        is_int(signature_verify(k, tampered, strlen(tampered), sig, n), -EBADMSG,
               "Ed25519: a changed document fails");
        is_int(signature_verify(k, document, strlen(document) - 1, sig, n), -EBADMSG,
               "Ed25519: a document without its last byte fails");
        is_int(signature_verify(k, document, strlen(document), sig, n - 1), -EBADMSG,
               "Ed25519: a truncated signature fails");
        is_int(signature_verify(k, document, strlen(document), sig, 32), -EBADMSG,
               "Ed25519: half a signature fails");
        is_int(signature_verify(k, document, strlen(document), sig, 0), -EMSGSIZE,
               "Ed25519: an empty signature fails");
        sig[10] ^= 1;
        is_int(signature_verify(k, document, strlen(document), sig, n), -EBADMSG,
               "Ed25519: a flipped bit in the signature fails");
}

static void test_ecdsa(void)
{
        _cleanup_(signature_key_freep) SignatureKey *k = load("ec");
        _cleanup_(signature_key_freep) SignatureKey *ed = load("ed");
        _cleanup_free_ uint8_t *sig = NULL, *sig384 = NULL, *sig_ed = NULL;
        uint8_t big[SIGNATURE_MAX + 1];
        size_t n = 0, n384 = 0, n_ed = 0;

        if (!k || !ed)
                return;
        is_str(signature_key_algorithm(k), "ECDSA P-256 SHA-256", "the key is ECDSA P-256");
        sig = gnutls_sign("ec", GNUTLS_SIGN_ECDSA_SHA256, document, strlen(document), &n);
        ok(sig != NULL, "GnuTLS signs with the P-256 key");
        if (!sig)
                return;
        is_int(signature_verify(k, document, strlen(document), sig, n), 0,
               "a valid ECDSA P-256 SHA-256 signature verifies");
        is_int(signature_verify(k, document, strlen(document), sig, n - 3), -EBADMSG,
               "ECDSA: a truncated signature fails");
        is_int(signature_verify(k, "{}", 2, sig, n), -EBADMSG, "ECDSA: another document fails");
        memset(big, 0x30, sizeof(big));
        is_int(signature_verify(k, document, strlen(document), big, sizeof(big)), -EMSGSIZE,
               "ECDSA: a signature over SIGNATURE_MAX is refused by its size");

        /* The wrong algorithm: the right key, but SHA-384; an Ed25519 signature on an EC key. */
        sig384 = gnutls_sign("ec", GNUTLS_SIGN_ECDSA_SHA384, document, strlen(document), &n384);
        ok(sig384 != NULL, "GnuTLS signs with SHA-384");
        if (sig384)
                is_int(signature_verify(k, document, strlen(document), sig384, n384), -EBADMSG,
                       "ECDSA: a signature over SHA-384 instead of SHA-256 fails");
        sig_ed = gnutls_sign("ed", GNUTLS_SIGN_EDDSA_ED25519, document, strlen(document), &n_ed);
        if (sig_ed) {
                is_int(signature_verify(k, document, strlen(document), sig_ed, n_ed), -EBADMSG,
                       "an Ed25519 signature fails against an ECDSA key");
                is_int(signature_verify(ed, document, strlen(document), sig, n), -EBADMSG,
                       "an ECDSA signature fails against an Ed25519 key");
        }
}

/* The commands of smdagent.policy(5), run as written there. */
static void test_openssl(void)
{
        const char *ed_sign[] = {"openssl", "pkeyutl", "-sign", "-rawin", "-inkey", NULL,
                                 "-in",     NULL,      "-out",  NULL,     NULL};
        const char *ec_sign[] = {"openssl", "dgst", "-sha256", "-sign", NULL,
                                 "-out",    NULL,   NULL,      NULL};
        _cleanup_(signature_key_freep) SignatureKey *ed = load("ed");
        _cleanup_(signature_key_freep) SignatureKey *ec = load("ec");
        char key_ed[256], key_ec[256], doc[256], sig_ed[256], sig_ec[256];
        _cleanup_free_ uint8_t *s1 = NULL, *s2 = NULL;
        size_t n1 = 0, n2 = 0;

        if (!have("openssl")) {
                tap_skip("openssl signatures", "openssl is not installed");
                return;
        }
        if (!ed || !ec)
                return;
        snprintf(key_ed, sizeof(key_ed), "%s", path("ed.key"));
        snprintf(key_ec, sizeof(key_ec), "%s", path("ec.key"));
        snprintf(doc, sizeof(doc), "%s", path("policy.json"));
        snprintf(sig_ed, sizeof(sig_ed), "%s", path("policy.json.ed.sig"));
        snprintf(sig_ec, sizeof(sig_ec), "%s", path("policy.json.ec.sig"));
        ok(write_file(doc, document, strlen(document)), "write the document");
        ed_sign[5] = key_ed;
        ed_sign[7] = doc;
        ed_sign[9] = sig_ed;
        ec_sign[4] = key_ec;
        ec_sign[6] = sig_ec;
        ec_sign[7] = doc;
        ok(run(ed_sign), "openssl pkeyutl -sign -rawin signs with the certtool Ed25519 key");
        ok(run(ec_sign), "openssl dgst -sha256 -sign signs with the certtool P-256 key");
        s1 = read_file(sig_ed, &n1);
        s2 = read_file(sig_ec, &n2);
        ok(s1 && s2, "both signature files exist");
        if (!s1 || !s2)
                return;
        is_int(signature_verify(ed, document, strlen(document), s1, n1), 0,
               "the openssl Ed25519 signature verifies");
        is_int(signature_verify(ec, document, strlen(document), s2, n2), 0,
               "the openssl ECDSA signature verifies");
}

static void test_refused_keys(void)
{
        SignatureKey *k = NULL;
        static const char not_pem[] =
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        char pub[256];

        snprintf(pub, sizeof(pub), "%s.pub", path("rsa"));
        is_int(signature_key_load(&k, pub), -EOPNOTSUPP, "an RSA key is refused");
        snprintf(pub, sizeof(pub), "%s.pub", path("p384"));
        is_int(signature_key_load(&k, pub), -EOPNOTSUPP, "an ECDSA P-384 key is refused");
        snprintf(pub, sizeof(pub), "%s.key", path("ed"));
        is_int(signature_key_load(&k, pub), -EBADMSG, "a private key file is not a public key");
        is_int(signature_key_new(&k, not_pem, strlen(not_pem)), -EBADMSG,
               "a PEM block without a key is refused");
        is_int(signature_key_new(&k, "hello", 5), -EBADMSG, "text is refused");
        is_int(signature_key_load(&k, path("missing.pub")), -ENOENT, "a missing file is ENOENT");
        is_int(signature_key_load(&k, work), -EISDIR, "a directory is refused");
        ok(k == NULL, "nothing was returned by the failures");
}

int main(void)
{
        const char *rm[] = {"rm", "-rf", work, NULL};

        tap_init();
        if (!have("certtool"))
                tap_skip_all("certtool (gnutls-bin) is not installed");
        if (!mkdtemp(work))
                tap_skip_all("cannot create a temporary directory");
        ok(make_key("ed", "ed25519", NULL), "certtool makes an Ed25519 key");
        ok(make_key("ed2", "ed25519", NULL), "certtool makes a second Ed25519 key");
        ok(make_key("ec", "ecdsa", "--curve=secp256r1"), "certtool makes an ECDSA P-256 key");
        ok(make_key("p384", "ecdsa", "--curve=secp384r1"), "certtool makes an ECDSA P-384 key");
        ok(make_key("rsa", "rsa", "--bits=2048"), "certtool makes an RSA key");

        test_ed25519();
        test_ecdsa();
        test_openssl();
        test_refused_keys();

        (void) run(rm);
        return tap_done();
}
