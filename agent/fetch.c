/* SPDX-License-Identifier: MIT */
/*
 * Downloading a policy and its signature (see fetch.h).
 *
 * Everything that ends a fetch (an answer, a failure, the deadline) only
 * records the outcome and arms a deferred event; the streams, their context
 * and the done callback are dealt with from there, never from inside a
 * Secure Streams callback. Reasons start with a word saying which stage
 * failed ("network:", "tls:", "http:", "size:", "signature:"), so that a
 * reader of SYSTEM_STATE can tell them apart.
 */
#include "fetch.h"

#include <assert.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signature.h"
#include "stream.h"
#include "transport.h"

struct Fetch {
        sd_event *event;
        FetchDoneCallback done;
        void *userdata;

        bool running;
        bool finished; /* the outcome is known; teardown is pending */
        bool body_done;
        bool sig_started;
        int error;
        char reason[FETCH_REASON_MAX];

        Policy *policy; /* the fetch's own: fetch_policy and fetch_policy_sig */
        SsContext *context;
        SsStream *body_stream, *sig_stream;
        SignatureKey *key;
        char *key_path;
        char *url;
        sd_event_source *deadline, *work;

        uint8_t *body; /* NUL-terminated once complete */
        size_t body_size, body_allocated, body_max;
        uint8_t sig[SIGNATURE_MAX];
        size_t sig_size;
        uint32_t unreachable_ack; /* why the last connection attempt failed */
        bool have_unreachable;
        unsigned last_status; /* the last HTTP status that was not a success */
};

_printf_(3, 4) static void fetch_fail(Fetch *f, int error, const char *fmt, ...)
{
        va_list ap;

        if (f->finished)
                return;
        f->finished = true;
        f->error = error < 0 ? error : -EIO;
        va_start(ap, fmt);
        (void) vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
        va_end(ap);
        (void) sd_event_source_set_enabled(f->work, SD_EVENT_ONESHOT);
}

static void fetch_succeed(Fetch *f)
{
        if (f->finished)
                return;
        f->finished = true;
        f->error = 0;
        f->reason[0] = '\0';
        (void) sd_event_source_set_enabled(f->work, SD_EVENT_ONESHOT);
}

static const char *unreachable_reason(uint32_t ack)
{
        if (ack & SS_ACK_TLS_VERIFY)
                return "tls: the server certificate does not verify against the trust store";
        if (ack & SS_ACK_TLS)
                return "tls: the handshake failed";
        if (ack & SS_ACK_DNS)
                return "network: the host name does not resolve";
        if (ack & SS_ACK_TIMEOUT)
                return "network: connecting timed out";
        if (ack & SS_ACK_REFUSED)
                return "network: connection refused";
        if (ack & SS_ACK_RESET)
                return "network: connection reset";
        if (ack & SS_ACK_CONFIG)
                return "network: the endpoint cannot be set up";
        return "network: unreachable";
}

/* The reason when retries ran out or the stream went idle: the last thing that failed. */
static void fetch_fail_network(Fetch *f, const char *what)
{
        if (f->last_status)
                fetch_fail(f, -EPROTO, "http: %s: status %u", what, f->last_status);
        else if (f->have_unreachable)
                fetch_fail(f, -EHOSTUNREACH, "%s (%s)", unreachable_reason(f->unreachable_ack),
                           what);
        else
                fetch_fail(f, -EIO, "network: %s failed", what);
}

/* The body. */

static SsResult on_body_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len,
                           unsigned flags)
{
        Fetch *f = userdata;

        if (f->finished)
                return SS_OK;
        /* A retried transaction starts the body again. */
        if (flags & SS_FLAG_SOM)
                f->body_size = 0;
        if (len > f->body_max - f->body_size) {
                fetch_fail(f, -EFBIG, "size: the policy is larger than %zu bytes", f->body_max);
                return SS_DESTROY_ME;
        }
        if (f->body_size + len + 1 > f->body_allocated) {
                size_t want = MAX(f->body_allocated * 2, f->body_size + len + 1);
                uint8_t *n;

                want = MIN(MAX(want, (size_t) 4096), f->body_max + 1);
                n = realloc(f->body, want);
                if (!n) {
                        fetch_fail(f, -ENOMEM, "size: out of memory for %zu bytes", want);
                        return SS_DESTROY_ME;
                }
                f->body = n;
                f->body_allocated = want;
        }
        memcpy(f->body + f->body_size, buf, len);
        f->body_size += len;
        return SS_OK;
}

/* The signature. */

static SsResult on_sig_rx(SsStream *s, void *userdata, const uint8_t *buf, size_t len,
                          unsigned flags)
{
        Fetch *f = userdata;

        if (f->finished)
                return SS_OK;
        if (flags & SS_FLAG_SOM)
                f->sig_size = 0;
        if (len > sizeof(f->sig) - f->sig_size) {
                fetch_fail(f, -EFBIG, "signature: larger than %u bytes", SIGNATURE_MAX);
                return SS_DESTROY_ME;
        }
        memcpy(f->sig + f->sig_size, buf, len);
        f->sig_size += len;
        return SS_OK;
}

static void verify(Fetch *f)
{
        int r = signature_verify(f->key, f->body, f->body_size, f->sig, f->sig_size);

        if (r == -EMSGSIZE)
                fetch_fail(f, -EBADMSG, "signature: empty (%s.sig)", f->url);
        else if (r < 0)
                fetch_fail(f, r, "signature: does not verify with %s (%s)", f->key_path,
                           signature_key_algorithm(f->key));
        else
                fetch_succeed(f);
}

/*
 * The states of both downloads: the same handling, apart from what completes
 * each (the body waits for the signature, the signature verifies) and the texts.
 */
static SsResult on_download_state(Fetch *f, bool sig, SsState state, uint32_t ack)
{
        const char *what = sig ? "the signature" : "the policy";

        switch (state) {
        case SS_STATE_UNREACHABLE:
                f->unreachable_ack = ack;
                f->have_unreachable = true;
                f->last_status = 0;
                break;
        case SS_STATE_QOS_ACK_REMOTE:
                if (f->finished)
                        break;
                if (sig) {
                        verify(f);
                        break;
                }
                f->body_done = true;
                if (!f->body) {
                        fetch_fail(f, -ENODATA, "http: the policy is empty (status %u)",
                                   (unsigned) ack);
                        break;
                }
                f->body[f->body_size] = '\0';
                (void) sd_event_source_set_enabled(f->work, SD_EVENT_ONESHOT);
                break;
        case SS_STATE_QOS_NACK_REMOTE:
                f->last_status = ack;
                /* 503 and 429 are retried by the stream; anything else is final. */
                if (ack == 503 || ack == 429)
                        break;
                if (sig)
                        fetch_fail(f, -ENOKEY, "signature: missing (status %u for %s.sig)",
                                   (unsigned) ack, f->url);
                else
                        fetch_fail(f, -EPROTO, "http: status %u for %s", (unsigned) ack, f->url);
                break;
        case SS_STATE_ALL_RETRIES_FAILED:
                fetch_fail_network(f, what);
                break;
        case SS_STATE_TIMEOUT:
                fetch_fail(f, -ETIMEDOUT, "network: %s did not arrive in time", what);
                break;
        case SS_STATE_DESTROYING:
                if (sig)
                        f->sig_stream = NULL;
                else
                        f->body_stream = NULL;
                fetch_fail(f, -ECANCELED, "network: the download was cancelled");
                break;
        case SS_STATE_CREATING:
        case SS_STATE_DISCONNECTED:
        case SS_STATE_AUTH_FAILED:
        case SS_STATE_CONNECTED:
        case SS_STATE_CONNECTING:
        case SS_STATE_POLL:
        case SS_STATE_QOS_ACK_LOCAL:
        case SS_STATE_QOS_NACK_LOCAL:
        case SS_STATE_SERVER_TXN:
        case SS_STATE_SERVER_UPGRADE:
        case SS_STATE_EVENT_WAIT_CANCELLED:
        case SS_STATE_UPSTREAM_LINK_RETRY:
        case _SS_STATE_MAX:
        case SS_STATE_USER_BASE:
                break;
        }
        return SS_OK;
}

static SsResult on_body_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        return on_download_state(userdata, false, state, ack);
}

static SsResult on_sig_state(SsStream *s, void *userdata, SsState state, uint32_t ack)
{
        return on_download_state(userdata, true, state, ack);
}

/* The fetch's own policy. */

static bool entry_has_name(json_object *entry, const char *name)
{
        if (!name || !json_object_is_type(entry, json_type_object))
                return false;
        json_object_object_foreach(entry, key, value)
        {
                (void) value;
                return streq(key, name);
        }
        return false;
}

/* Copies the entries of section (arrays of single-key objects, or trust stores by "name"). */
static int copy_entries(json_object *from, json_object *to, const char *section,
                        const char *const *names, size_t n_names)
{
        json_object *a, *out;

        if (!json_object_object_get_ex(from, section, &a) ||
            !json_object_is_type(a, json_type_array))
                return 0;
        out = json_object_new_array();
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *e = json_object_array_get_idx(a, i), *n;
                bool wanted = false;

                for (size_t j = 0; !wanted && j < n_names; j++) {
                        if (streq(section, "trust_stores"))
                                wanted = names[j] && json_object_object_get_ex(e, "name", &n) &&
                                         streq_ptr(json_object_get_string(n), names[j]);
                        else
                                wanted = entry_has_name(e, names[j]);
                }
                if (wanted && json_object_array_add(out, json_object_get(e)) < 0) {
                        json_object_put(e);
                        json_object_put(out);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(to, section, out) < 0) {
                json_object_put(out);
                return -ENOMEM;
        }
        return 0;
}

/*
 * A policy with fetch_policy as it is and fetch_policy_sig, the same with
 * ".sig" appended to its http_url, plus the retry entry, trust store and
 * certificates they use: built from the normal form, so it parses exactly as
 * the running policy did.
 */
static int derive_policy(const Policy *p, const PolicyStreamtype *st, Policy **ret)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_(policy_unrefp) Policy *np = NULL;
        const PolicyTrustStore *t = policy_find_trust_store(p, st->tls_trust_store);
        const char *retries[] = {st->retry};
        const char *stores[] = {st->tls_trust_store};
        const char *certs[POLICY_CERTS_MAX + 3];
        json_object *root = NULL, *out = NULL, *s, *body = NULL, *sig_body = NULL, *url, *list;
        size_t n_certs = 0;
        int r;

        for (size_t i = 0; t && i < t->n_certs && i < POLICY_CERTS_MAX; i++)
                certs[n_certs++] = t->certs[i];
        certs[n_certs++] = st->client_cert;
        certs[n_certs++] = st->server_cert;
        certs[n_certs++] = st->server_key;

        r = policy_print_json(p, false, &text);
        if (r < 0)
                return r;
        root = json_tokener_parse(text);
        out = json_object_new_object();
        list = json_object_new_array();
        if (!root || !out || !list) {
                r = -ENOMEM;
                goto finish;
        }
        r = copy_entries(root, out, "retry", retries, ELEMENTSOF(retries));
        if (r >= 0)
                r = copy_entries(root, out, "certs", certs, n_certs);
        if (r >= 0)
                r = copy_entries(root, out, "trust_stores", stores, ELEMENTSOF(stores));
        if (r < 0)
                goto finish;

        if (json_object_object_get_ex(root, "s", &s))
                for (size_t i = 0; !body && i < json_object_array_length(s); i++)
                        if (entry_has_name(json_object_array_get_idx(s, i), FETCH_STREAMTYPE))
                                (void) json_object_object_get_ex(json_object_array_get_idx(s, i),
                                                                 FETCH_STREAMTYPE, &body);
        if (!body) {
                r = -ENOENT;
                goto finish;
        }
        r = json_object_deep_copy(body, &sig_body, NULL) < 0 ? -ENOMEM : 0;
        if (r < 0)
                goto finish;
        json_object_object_del(sig_body, "fetch_policy_interval_s");
        json_object_object_del(sig_body, "fetch_policy_max_size");
        {
                _cleanup_free_ char *sig_url = NULL;

                if (asprintf(&sig_url, "%s.sig",
                             json_object_object_get_ex(sig_body, "http_url", &url)
                                 ? json_object_get_string(url)
                                 : "") < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                json_object_object_add(sig_body, "http_url", json_object_new_string(sig_url));
        }
        {
                json_object *e1 = json_object_new_object(), *e2 = json_object_new_object();

                if (!e1 || !e2) {
                        json_object_put(e1);
                        json_object_put(e2);
                        r = -ENOMEM;
                        goto finish;
                }
                json_object_object_add(e1, FETCH_STREAMTYPE, json_object_get(body));
                json_object_object_add(e2, FETCH_STREAMTYPE_SIG, TAKE_PTR(sig_body));
                json_object_array_add(list, e1);
                json_object_array_add(list, e2);
                json_object_object_add(out, "s", TAKE_PTR(list));
        }

        np = policy_new();
        if (!np) {
                r = -ENOMEM;
                goto finish;
        }
        {
                const char *doc = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN);

                r = doc ? policy_add_buffer(np, "fetch", doc, strlen(doc), NULL) : -ENOMEM;
        }
        if (r >= 0)
                *ret = TAKE_PTR(np);
finish:
        json_object_put(sig_body);
        json_object_put(list);
        json_object_put(out);
        json_object_put(root);
        return r;
}

static char *streamtype_url(const PolicyStreamtype *st)
{
        char *url;

        if (st->unix_socket) {
                if (asprintf(&url, "unix:%s:/%s", strempty(st->endpoint), strempty(st->http.url)) <
                    0)
                        return NULL;
                return url;
        }
        if (asprintf(&url, "%s://%s%s%s:%u/%s", st->tls ? "https" : "http",
                     st->endpoint && strchr(st->endpoint, ':') ? "[" : "", strempty(st->endpoint),
                     st->endpoint && strchr(st->endpoint, ':') ? "]" : "", (unsigned) st->port,
                     strempty(st->http.url)) < 0)
                return NULL;
        return url;
}

/* Running. */

static void fetch_reset(Fetch *f)
{
        /* Streams first (they hold the context), then the context, then its policy. */
        f->body_stream = ss_stream_free(f->body_stream);
        f->sig_stream = ss_stream_free(f->sig_stream);
        f->context = ss_context_free(f->context);
        f->policy = policy_unref(f->policy);
        f->key = signature_key_free(f->key);
        f->key_path = mfree(f->key_path);
        f->url = mfree(f->url);
        f->body = mfree(f->body);
        f->body_size = f->body_allocated = f->sig_size = 0;
        (void) sd_event_source_set_enabled(f->deadline, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(f->work, SD_EVENT_OFF);
        f->running = f->finished = f->body_done = f->sig_started = false;
        f->have_unreachable = false;
        f->unreachable_ack = 0;
        f->last_status = 0;
}

static const SsStreamHandlers body_handlers = {.rx = on_body_rx, .state = on_body_state};
static const SsStreamHandlers sig_handlers = {.rx = on_sig_rx, .state = on_sig_state};

static int start_stream(Fetch *f, const char *streamtype, const SsStreamHandlers *h, SsStream **ret)
{
        SsStream *s = NULL;
        int r = ss_stream_new(&s, f->context, streamtype, h, f);

        if (r < 0)
                return r;
        *ret = s;
        r = ss_stream_client_connect(s);
        return r < 0 ? r : 0;
}

static int on_work(sd_event_source *es, void *userdata)
{
        Fetch *f = userdata;
        FetchResult result;
        int r;

        if (!f->finished && f->body_done && !f->sig_started) {
                if (!f->key) {
                        fetch_succeed(f);
                } else {
                        f->sig_started = true;
                        f->have_unreachable = false;
                        f->last_status = 0;
                        r = start_stream(f, FETCH_STREAMTYPE_SIG, &sig_handlers, &f->sig_stream);
                        if (r < 0)
                                fetch_fail(f, r, "signature: cannot start its download: %s",
                                           strerror(-r));
                }
        }
        if (!f->finished)
                return 0;

        /*
         * The streams go before done() runs, as it may start the next fetch;
         * while finished is set their DESTROYING records nothing.
         */
        {
                int error = f->error;
                char reason[FETCH_REASON_MAX];
                _cleanup_free_ char *url = TAKE_PTR(f->url), *body = (char *) TAKE_PTR(f->body);
                size_t size = f->body_size;
                bool verified = f->key != NULL;

                memcpy(reason, f->reason, sizeof(reason));
                fetch_reset(f);
                result = (FetchResult){
                    .error = error,
                    .reason = error < 0 ? reason : NULL,
                    .url = strempty(url),
                    .body = error < 0 ? NULL : body,
                    .size = error < 0 ? 0 : size,
                    .verified = verified,
                };
                f->done(f, &result, f->userdata);
        }
        return 0;
}

static int on_deadline(sd_event_source *es, uint64_t usec, void *userdata)
{
        Fetch *f = userdata;

        fetch_fail(f, -ETIMEDOUT, "network: no answer within %u s",
                   (unsigned) (FETCH_DEADLINE_USEC / USEC_PER_SEC));
        return 0;
}

int fetch_new(Fetch **ret, sd_event *event, FetchDoneCallback done, void *userdata)
{
        _cleanup_(fetch_freep) Fetch *f = NULL;
        int r;

        assert(ret && event && done);
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->event = sd_event_ref(event);
        f->done = done;
        f->userdata = userdata;
        r = sd_event_add_defer(event, &f->work, on_work, f);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(f->work, SD_EVENT_OFF);
        r = sd_event_add_time_relative(event, &f->deadline, CLOCK_MONOTONIC, FETCH_DEADLINE_USEC, 0,
                                       on_deadline, f);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(f->deadline, SD_EVENT_OFF);
        *ret = TAKE_PTR(f);
        return 0;
}

Fetch *fetch_free(Fetch *f)
{
        if (!f)
                return NULL;
        f->finished = true; /* the streams' DESTROYING records nothing */
        fetch_reset(f);
        sd_event_source_disable_unref(f->work);
        sd_event_source_disable_unref(f->deadline);
        sd_event_unref(f->event);
        return mfree(f);
}

bool fetch_is_running(const Fetch *f)
{
        return f && f->running;
}

int fetch_start(Fetch *f, const Policy *policy, const char *signing_key)
{
        const PolicyStreamtype *st;
        int r;

        assert(f && policy);
        if (f->running)
                return -EBUSY;
        st = policy_find_streamtype(policy, FETCH_STREAMTYPE);
        if (!st)
                return -ENOENT;

        f->running = true;
        f->body_max = st->fetch_max_size ? st->fetch_max_size : POLICY_FILE_MAX;
        f->url = streamtype_url(st);
        if (!f->url) {
                fetch_reset(f);
                return -ENOMEM;
        }
        r = sd_event_source_set_time_relative(f->deadline, FETCH_DEADLINE_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(f->deadline, SD_EVENT_ONESHOT);
        if (r < 0) {
                fetch_reset(f);
                return r;
        }

        if (signing_key) {
                f->key_path = strdup(signing_key);
                if (!f->key_path) {
                        fetch_reset(f);
                        return -ENOMEM;
                }
                r = signature_key_load(&f->key, signing_key);
                if (r < 0) {
                        const char *tls = r == -ELIBACC ? tls_unavailable_reason() : NULL;

                        fetch_fail(f, r, "signature: cannot use the signing key %s: %s",
                                   signing_key,
                                   r == -EOPNOTSUPP ? "not an Ed25519 or ECDSA P-256 key"
                                   : r == -EBADMSG  ? "not a PEM public key"
                                   : tls            ? tls
                                                    : strerror(-r));
                        return 0;
                }
        }
        r = derive_policy(policy, st, &f->policy);
        if (r >= 0)
                r = ss_context_new(&f->context, f->event, f->policy);
        if (r < 0) {
                fetch_fail(f, r, "network: cannot set up the download: %s", strerror(-r));
                return 0;
        }
        r = start_stream(f, FETCH_STREAMTYPE, &body_handlers, &f->body_stream);
        if (r < 0)
                fetch_fail(f, r, "network: cannot start the download: %s", strerror(-r));
        return 0;
}
