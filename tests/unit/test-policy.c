/* SPDX-License-Identifier: MIT */
/*
 * The policy parser as a user sees it: golden policies printed back in normal
 * form (and that normal form parsing back to itself), a drop-in directory
 * merged over the builtin, every invalid policy of tests/policy/invalid with
 * its exact error messages, the limits, and what a reload compares.
 *
 * Usage: test-policy DATADIR (the tests/policy directory).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "message.h"
#include "policy.h"
#include "tap.h"
#include "util.h"

static char *read_data(const char *path, size_t *ret_size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char *buf;
        size_t size = 0, alloc = 4096;

        if (fd < 0)
                return NULL;
        buf = malloc(alloc);
        for (;;) {
                ssize_t n;

                if (size + 1 >= alloc)
                        buf = realloc(buf, alloc *= 2);
                n = read(fd, buf + size, alloc - size - 1);
                if (n <= 0)
                        break;
                size += (size_t) n;
        }
        buf[size] = '\0';
        if (ret_size)
                *ret_size = size;
        return buf;
}

static char *read_text(const char *path)
{
        return read_data(path, NULL);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sorted names in dir ending in suffix; NULL-terminated. */
static char **list_dir(const char *dir, const char *suffix)
{
        DIR *d = opendir(dir);
        char **names = calloc(1, sizeof(char *));
        size_t n = 0;
        struct dirent *de;

        while (d && (de = readdir(d))) {
                size_t len = strlen(de->d_name);

                if (len <= strlen(suffix) || !streq(de->d_name + len - strlen(suffix), suffix))
                        continue;
                names = realloc(names, (n + 2) * sizeof(char *));
                names[n++] = strdup(de->d_name);
                names[n] = NULL;
        }
        if (d)
                closedir(d);
        qsort(names, n, sizeof(char *), name_cmp);
        return names;
}

static void strv_freep(char ***v)
{
        for (char **s = *v; s && *s; s++)
                free(*s);
        free(*v);
}

static char *errors_join(const PolicyErrors *errors)
{
        char *s = strdup("");

        for (size_t i = 0; i < errors->n_messages; i++) {
                char *t = NULL;

                if (asprintf(&t, "%s%s\n", s, errors->messages[i]) < 0)
                        abort();
                free(s);
                s = t;
        }
        return s;
}

static char *notes_join(const Policy *p)
{
        char *s = strdup("");

        for (size_t i = 0; i < policy_n_notes(p); i++) {
                char *t = NULL;

                if (asprintf(&t, "%s%s\n", s, policy_note_at(p, i)) < 0)
                        abort();
                free(s);
                s = t;
        }
        return s;
}

/* The normal form parses back to a policy that prints the same and compares equal. */
static void check_round_trip(const Policy *p, const char *text, const char *name)
{
        _cleanup_(policy_freep) Policy *again = policy_new();
        _cleanup_free_ char *text2 = NULL;
        PolicyErrors errors = {};
        bool all_equal = true;

        is_int(policy_add_buffer(again, "normal", text, strlen(text), &errors), 0,
               "%s: the normal form parses", name);
        for (size_t i = 0; i < errors.n_messages; i++)
                tap_diag("%s", errors.messages[i]);
        policy_errors_clear(&errors);
        is_int(policy_print_json(again, false, &text2), 0, "%s: the normal form prints", name);
        is_str(text2, text, "%s: the normal form is stable", name);
        for (size_t i = 0; i < policy_n_streamtypes(p); i++) {
                const PolicyStreamtype *st = policy_streamtype_at(p, i);

                if (!policy_streamtype_equal(p, st, again,
                                             policy_find_streamtype(again, st->name))) {
                        tap_diag("streamtype %s differs after a round trip", st->name);
                        all_equal = false;
                }
        }
        ok(all_equal, "%s: every streamtype compares equal after a round trip", name);
}

static void test_golden(void)
{
        _cleanup_(strv_freep) char **names = list_dir("valid", ".json");
        size_t n = 0;

        for (char **name = names; *name; name++, n++) {
                _cleanup_(policy_freep) Policy *p = policy_new();
                _cleanup_free_ char *path = NULL, *expected_path = NULL, *notes_path = NULL,
                                    *expected = NULL, *text = NULL, *notes = NULL,
                                    *expected_notes = NULL;
                PolicyErrors errors = {};

                (void) asprintf(&path, "valid/%s", *name);
                (void) asprintf(&expected_path, "valid/%.*s.expected", (int) (strlen(*name) - 5),
                                *name);
                (void) asprintf(&notes_path, "valid/%.*s.notes", (int) (strlen(*name) - 5), *name);
                is_int(policy_add_file(p, path, &errors), 0, "%s parses", *name);
                is_int(errors.n_messages, 0, "%s: no errors", *name);
                for (size_t i = 0; i < errors.n_messages; i++)
                        tap_diag("%s", errors.messages[i]);
                policy_errors_clear(&errors);
                is_int(policy_print_json(p, false, &text), 0, "%s prints", *name);
                expected = read_text(expected_path);
                ok(expected, "%s exists", expected_path);
                is_str(text, expected, "%s: normal form as expected", *name);
                if (text)
                        check_round_trip(p, text, *name);

                notes = notes_join(p);
                expected_notes = read_text(notes_path);
                is_str(notes, expected_notes ?: "", "%s: notes as expected", *name);
        }
        cmp_int(n, >=, 6, "at least six golden policies");
}

static void test_merge(void)
{
        const char *const dirs[] = {"/nonexistent/policy.d", "valid/merge.d", NULL};
        const PolicyLoadOptions opts = {.directories = dirs};
        _cleanup_(policy_freep) Policy *p = NULL, *base_only = NULL, *builtin = policy_new();
        _cleanup_free_ char *text = NULL, *expected = NULL, *notes = NULL, *expected_notes = NULL;
        PolicyErrors errors = {};
        const PolicySmd *smd;

        is_int(policy_load(&p, &opts, &errors), 0, "merge: the drop-in directory loads");
        is_int(errors.n_messages, 0, "merge: no errors");
        is_int(policy_print_json(p, true, &text), 0, "merge: prints with sources");
        expected = read_text("valid/merge.expected");
        is_str(text, expected, "merge: normal form with sources as expected");
        notes = notes_join(p);
        expected_notes = read_text("valid/merge.notes");
        is_str(notes, expected_notes ?: "", "merge: notes as expected");

        is_int(policy_n_sources(p), 3, "merge: builtin and two files");
        is_str(policy_source_at(p, 0), "builtin", "merge: builtin first");
        is_str(policy_find_streamtype(p, "keep")->source, "valid/merge.d/10-base.json",
               "merge: an entry remembers its source");
        is_str(policy_find_streamtype(p, "captive_portal_detect")->source,
               "valid/merge.d/20-override.json", "merge: a later file replaces a streamtype");
        is_str(policy_find_retry(p, "default")->source, "valid/merge.d/20-override.json",
               "merge: a later file replaces a retry entry");
        is_str(policy_get_release(p), "10", "merge: release from the first file that sets it");
        is_str(policy_get_product(p), "merged", "merge: product from the second file");
        smd = policy_get_smd(p);
        ok(smd->has_queue_max_messages && smd->queue_max_messages == 100,
           "merge: an smd limit set only by an earlier file stays");
        is_int(smd->ttl_ms, 1500, "merge: an smd limit set again is replaced");
        is_int(smd->n_access, 1, "merge: the access list is replaced as a whole");

        /* What a reload keeps: build the policy as it was before 20-override.json. */
        base_only = policy_new();
        is_int(policy_add_builtin(base_only, NULL), 0, "reload: builtin");
        is_int(policy_add_file(base_only, "valid/merge.d/10-base.json", NULL), 0,
               "reload: first file");
        ok(policy_streamtype_equal(base_only, policy_find_streamtype(base_only, "keep"), p,
                                   policy_find_streamtype(p, "keep")),
           "reload: an untouched streamtype is equal");
        ok(!policy_streamtype_equal(base_only, policy_find_streamtype(base_only, "probe"), p,
                                    policy_find_streamtype(p, "probe")),
           "reload: a replaced streamtype differs");
        ok(!policy_streamtype_equal(base_only,
                                    policy_find_streamtype(base_only, "captive_portal_detect"), p,
                                    policy_find_streamtype(p, "captive_portal_detect")),
           "reload: a streamtype whose retry entry changed differs");
        is_int(policy_add_builtin(builtin, NULL), 0, "builtin alone");
        ok(policy_streamtype_equal(
               builtin, policy_find_streamtype(builtin, "captive_portal_detect"), base_only,
               policy_find_streamtype(base_only, "captive_portal_detect")),
           "reload: same streamtype in two policies is equal");
        ok(!policy_streamtype_equal(
               builtin, policy_find_streamtype(builtin, "captive_portal_detect"), builtin, NULL),
           "reload: a streamtype that went away differs");
        policy_errors_clear(&errors);
}

static void test_invalid(void)
{
        _cleanup_(strv_freep) char **names = list_dir("invalid", ".json");
        _cleanup_(policy_freep) Policy *p = policy_new();
        _cleanup_free_ char *before = NULL;
        size_t n = 0;

        is_int(policy_add_builtin(p, NULL), 0, "builtin parses");
        is_int(policy_print_json(p, true, &before), 0, "builtin prints");

        for (char **name = names; *name; name++, n++) {
                _cleanup_free_ char *path = NULL, *error_path = NULL, *data = NULL,
                                    *expected = NULL, *got = NULL, *after = NULL;
                PolicyErrors errors = {};
                size_t size = 0;
                int r;

                (void) asprintf(&path, "invalid/%s", *name);
                (void) asprintf(&error_path, "invalid/%.*s.error", (int) (strlen(*name) - 5),
                                *name);
                data = read_data(path, &size);
                expected = read_text(error_path);
                ok(data && expected, "%s and its .error exist", *name);
                /* The source name is the file name, so messages do not depend on the checkout. */
                r = policy_add_buffer(p, *name, data ?: "", size, &errors);
                cmp_int(r, <, 0, "%s is refused", *name);
                got = errors_join(&errors);
                is_str(got, expected ?: "", "%s: errors as expected", *name);
                policy_errors_clear(&errors);
                is_int(policy_print_json(p, true, &after), 0, "%s: prints after", *name);
                is_str(after, before, "%s: the policy is unchanged", *name);
        }
        cmp_int(n, >=, 40, "at least 40 invalid policies");
}

/* Builds {"s": [{"s0": {}}, ...]} with n streamtypes named prefix0... */
static char *many_streamtypes(const char *prefix, size_t n)
{
        char *s = strdup("{\"s\": [");

        for (size_t i = 0; i < n; i++) {
                char *t = NULL;

                (void) asprintf(&t, "%s%s{\"%s%zu\": {\"endpoint\": \"h\"}}", s, i ? ", " : "",
                                prefix, i);
                free(s);
                s = t;
        }
        s = realloc(s, strlen(s) + 4);
        strcat(s, "]}");
        return s;
}

static void check_one_error(const char *data, size_t size, int expect_r, const char *expected,
                            const char *name)
{
        _cleanup_(policy_freep) Policy *p = policy_new();
        PolicyErrors errors = {};
        _cleanup_free_ char *got = NULL;

        is_int(policy_add_buffer(p, "gen.json", data, size, &errors), expect_r, "%s: refused",
               name);
        got = errors_join(&errors);
        is_str(got, expected, "%s: message", name);
        is_int(policy_n_streamtypes(p), 0, "%s: nothing merged", name);
        policy_errors_clear(&errors);
}

static void test_limits(void)
{
        _cleanup_free_ char *big = malloc(POLICY_FILE_MAX + 1), *st257 = NULL, *st200a = NULL,
                            *st200b = NULL, *deep = NULL, *retries = NULL, *longcert = NULL,
                            *text = NULL;
        _cleanup_(policy_freep) Policy *p = policy_new();
        PolicyErrors errors = {};

        memset(big, ' ', POLICY_FILE_MAX + 1);
        big[0] = '{';
        big[POLICY_FILE_MAX] = '}';
        check_one_error(big, POLICY_FILE_MAX + 1, -EFBIG,
                        "gen.json: too large (262145 bytes, limit 262144)\n", "file size");
        big[POLICY_FILE_MAX - 1] = '}';
        {
                _cleanup_(policy_freep) Policy *q = policy_new();

                is_int(policy_add_buffer(q, "gen.json", big, POLICY_FILE_MAX, NULL), 0,
                       "a file of exactly the limit is fine");
        }

        st257 = many_streamtypes("s", 257);
        check_one_error(st257, strlen(st257), -EBADMSG,
                        "gen.json: s: too many streamtypes (257, limit 256)\n", "257 streamtypes");

        st200a = many_streamtypes("a", 200);
        st200b = many_streamtypes("b", 200);
        is_int(policy_add_buffer(p, "a.json", st200a, strlen(st200a), NULL), 0, "200 streamtypes");
        is_int(policy_add_buffer(p, "b.json", st200b, strlen(st200b), &errors), -EBADMSG,
               "200 more streamtypes are too many for the effective policy");
        is_str(errors.n_messages ? errors.messages[0] : "",
               "b.json: too many streamtypes in the effective policy (limit 256)",
               "effective limit message");
        is_int(policy_n_streamtypes(p), 200, "the first 200 stay");
        policy_errors_clear(&errors);
        is_int(policy_add_buffer(p, "a2.json", st200a, strlen(st200a), NULL), 0,
               "replacing the same 200 streamtypes is fine");

        deep = strdup("{\"s\": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}");
        check_one_error(deep, strlen(deep), -EBADMSG,
                        "gen.json: invalid JSON at line 1: nesting too deep\n", "nesting depth");

        retries = strdup("{\"retry\": [");
        for (int i = 0; i < 65; i++) {
                char *t = NULL;

                (void) asprintf(&t, "%s%s{\"r%d\": {\"backoff\": [1]}}", retries, i ? "," : "", i);
                free(retries);
                retries = t;
        }
        retries = realloc(retries, strlen(retries) + 4);
        strcat(retries, "]}");
        check_one_error(retries, strlen(retries), -EBADMSG,
                        "gen.json: retry: too many retry entries (65, limit 64)\n", "65 retries");

        longcert = malloc(POLICY_CERT_MAX + 64);
        strcpy(longcert, "{\"certs\": [{\"c\": \"");
        memset(longcert + strlen(longcert), 'A', POLICY_CERT_MAX + 4);
        strcpy(longcert + 18 + POLICY_CERT_MAX + 4, "\"}]}");
        check_one_error(longcert, strlen(longcert), -EBADMSG,
                        "gen.json: certs[0].c: string too long (16388 bytes, limit 16384)\n",
                        "cert size");

        /* Errors beyond the cap are summarised. */
        text = strdup("{");
        for (int i = 0; i < 150; i++) {
                char *t = NULL;

                (void) asprintf(&t, "%s%s\"k%d\": 1", text, i ? "," : "", i);
                free(text);
                text = t;
        }
        text = realloc(text, strlen(text) + 2);
        strcat(text, "}");
        {
                _cleanup_(policy_freep) Policy *q = policy_new();

                is_int(policy_add_buffer(q, "gen.json", text, strlen(text), &errors), -EBADMSG,
                       "150 unknown keys");
                is_int(errors.n_messages, POLICY_ERRORS_MAX + 1, "errors are capped");
                is_str(errors.messages[POLICY_ERRORS_MAX], "gen.json: too many errors, giving up",
                       "the cap says so");
                policy_errors_clear(&errors);
        }
}

static void test_api(void)
{
        _cleanup_(policy_freep) Policy *p = policy_new();
        const PolicyStreamtype *st;
        const PolicyRetry *retry;
        const PolicySmd *smd;
        const PolicyCert *cert;
        PolicyErrors errors = {};

        is_int(policy_add_builtin(p, NULL), 0, "builtin");
        st = policy_find_streamtype(p, "captive_portal_detect");
        ok(st, "builtin has captive_portal_detect");
        is_str(st->endpoint, "connectivitycheck.gstatic.com", "cpd endpoint");
        is_int(st->port, 80, "cpd port");
        is_int(st->http.expect, 204, "cpd expects 204");
        ok(st->http.fail_redirect && st->opportunistic && !st->tls, "cpd flags");
        is_int(st->timeout_ms, 5000, "cpd timeout");
        retry = policy_streamtype_retry(p, st);
        ok(retry && streq(retry->name, "default"), "cpd uses retry default");
        is_int(retry->n_backoff, 5, "default backoff has five delays");
        is_int(retry->backoff_ms[4], 10000, "last delay");
        is_int(retry->conceal, 5, "conceal");
        is_int(retry->jitter_percent, 20, "jitter");
        is_int(retry->valid_ping_s, 30, "svalidping");
        is_int(retry->valid_hangup_s, 35, "svalidhup");
        ok(!policy_find_streamtype(p, "nope"), "unknown streamtype is NULL");
        ok(!policy_find_streamtype(NULL, "x"), "NULL policy is NULL");
        is_int(policy_get_schema_version(p), 1, "schema version");
        ok(policy_free(NULL) == NULL, "policy_free(NULL)");

        is_int(policy_add_file(p, "valid/h2.json", NULL), 0, "h2 on top of builtin");
        st = policy_find_streamtype(p, "default_store");
        ok(st->tls && st->tls_system_trust && !st->tls_trust_store,
           "tls without a trust store uses the system store");
        is_int(st->port, 443, "tls h2 defaults to 443");
        st = policy_find_streamtype(p, "api");
        ok(!st->tls_system_trust, "an explicit trust store is not the system store");
        is_int(st->http.n_resp_map, 2, "resp map entries");
        is_int(st->http.resp_map[1].code, 531, "resp map code");
        is_int(st->http.resp_map[1].value, 2, "resp map value");
        cert = policy_find_cert(p, "test_ca");
        ok(cert && cert->der && cert->der[0] == 0x30 && cert->der_size > 100, "cert is DER");

        is_int(policy_add_file(p, "valid/raw-unix-smd.json", NULL), 0, "raw-unix-smd");
        st = policy_find_streamtype(p, "local_raw");
        ok(st->unix_socket && streq(st->endpoint, "/run/example/raw.sock"), "unix socket path");
        ok(st->has_allow && st->allow.n_names == 2 && streq(st->allow.names[1], "@netdev"),
           "allow list kept as written");
        st = policy_find_streamtype(p, "listener");
        ok(st->has_allow && st->allow.n_names == 0, "an empty allow list means nobody");
        st = policy_find_streamtype(p, "v6");
        is_str(st->endpoint, "2001:db8::1", "IPv6 URL host");
        is_int(st->port, 8080, "IPv6 URL port");
        is_str(st->http.url, "status", "IPv6 URL path");
        smd = policy_get_smd(p);
        is_int(smd->n_access, 3, "three access rules");
        is_int(smd->access[0].classes,
               SMD_CLASS_NETWORK | SMD_CLASS_SYSTEM_STATE | SMD_CLASS_METRICS, "rule 0 classes");
        ok(smd->access[0].has_publish && smd->access[0].has_subscribe, "rule 0 has both lists");
        ok(smd->access[1].has_publish && !smd->access[1].has_subscribe, "rule 1 publish only");
        is_str(smd->access[2].subscribe.names[1], "@100", "principals are kept as strings");
        is_int(smd->queue_max_bytes, 262144, "queue_max_bytes");

        {
                static const char slashes[] =
                    "{\"s\": [{\"a\": {\"endpoint\": \"https://h//x\"}}, "
                    "{\"b\": {\"http_url\": \"///y\", \"endpoint\": \"+/s\", \"port\": 9}}]}";

                is_int(policy_add_buffer(p, "slashes", slashes, strlen(slashes), NULL), 0,
                       "slashes parse");
                is_str(policy_find_streamtype(p, "a")->http.url, "x",
                       "leading slashes of a URL path are dropped");
                is_str(policy_find_streamtype(p, "b")->http.url, "y",
                       "leading slashes of http_url are dropped");
                is_int(policy_find_streamtype(p, "b")->port, 0, "a unix socket has no port");
        }
        is_int(policy_check_file("valid/ws.json", &errors), 0, "check: valid file");
        is_int(policy_check_file("invalid/retry-unknown.json", &errors), -EBADMSG,
               "check: invalid file");
        is_int(errors.n_messages, 1, "check: one error");
        is_str(errors.messages[0],
               "invalid/retry-unknown.json: s[0].cpd.retry: unknown retry \"fast\"",
               "check: the error names the file and path");
        policy_errors_clear(&errors);
        is_int(policy_check_file("/nonexistent.json", &errors), -ENOENT, "check: missing file");
        is_str(errors.messages[0], "/nonexistent.json: cannot open: No such file or directory",
               "check: missing file message");
        policy_errors_clear(&errors);
        is_int(policy_add_file(p, "valid", &errors), -EISDIR, "a directory is not a file");
        policy_errors_clear(&errors);
        is_int(policy_add_buffer(NULL, "x", "", 0, NULL), -EINVAL, "NULL policy is -EINVAL");
}

static void test_load(void)
{
        const char *const no_dirs[] = {NULL};
        const char *const bad_paths[] = {"valid/h1.json", "invalid/retry-unknown.json",
                                         "valid/ws.json", NULL};
        const char *const good_paths[] = {"valid/h1.json", "valid/merge.d", NULL};
        const char *const missing[] = {"missing.json", NULL};
        Policy *p = (Policy *) 0x1;
        PolicyErrors errors = {};
        PolicyLoadOptions opts = {.directories = no_dirs, .paths = bad_paths};

        is_int(policy_load(&p, &opts, &errors), -EBADMSG, "load: an invalid file fails the load");
        ok(p == (Policy *) 0x1, "load: nothing returned on failure");
        is_int(errors.n_messages, 1, "load: stops at the invalid file");
        policy_errors_clear(&errors);

        opts.paths = missing;
        is_int(policy_load(&p, &opts, &errors), -ENOENT, "load: a missing explicit path fails");
        policy_errors_clear(&errors);

        opts.paths = good_paths;
        is_int(policy_load(&p, &opts, &errors), 0, "load: files and directories as paths");
        ok(p != (Policy *) 0x1 && policy_find_streamtype(p, "mintest") &&
               policy_find_streamtype(p, "keep"),
           "load: both paths merged");
        p = policy_free(p);

        opts = (PolicyLoadOptions){.no_builtin = true, .directories = no_dirs};
        is_int(policy_load(&p, &opts, &errors), 0, "load: nothing at all");
        is_int(policy_n_streamtypes(p), 0, "load: empty without the builtin");
        is_int(policy_n_notes(p), 2, "load: both optional streamtypes noted as absent");
        is_str(policy_note_at(p, 1), "no streamtype \"fetch_policy\": policy fetching is off",
               "load: fetch_policy note");
        p = policy_free(p);
}

int main(int argc, char **argv)
{
        tap_init();
        if (argc < 2 || chdir(argv[1]) < 0)
                tap_skip_all("usage: test-policy DATADIR");

        test_golden();
        test_merge();
        test_invalid();
        test_limits();
        test_api();
        test_load();
        return tap_done();
}
