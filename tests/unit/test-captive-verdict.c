/* SPDX-License-Identifier: MIT */
/*
 * Captive portal detection, the pure parts: every verdict rule, Secure
 * Streams states read as probe outcomes, Location resolution, the ranking of two families, the cpd
 * message (fields, null families, escaping, the 384-byte bound), the cpdcheck trigger, and RFC 8908
 * documents valid and invalid.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cpd-message.h"
#include "portal-api.h"
#include "probe-ss.h"
#include "probe.h"
#include "result.h"
#include "tap.h"
#include "util.h"

static ProbeVerdict verdict_http(uint16_t status, const char *location, uint16_t expect)
{
        ProbeOutcome o = {
            .kind = PROBE_OUTCOME_HTTP,
            .status = status,
            .location = location,
            .url = "http://connectivitycheck.gstatic.com/generate_204",
        };
        ProbeVerdict v;

        probe_outcome_verdict(&o, expect, &v);
        return v;
}

static void test_http_rules(void)
{
        static const uint16_t redirects[] = {300, 301, 302, 303, 307, 308};
        static const uint16_t others[] = {200, 201, 203, 206, 400, 403, 404, 429, 500, 503, 511};
        ProbeVerdict v;

        v = verdict_http(204, NULL, 204);
        is_int(v.result, CAPTIVE_RESULT_OK, "204 with http_expect 204 is OK");
        is_str(v.portal, "", "OK has no portal");
        v = verdict_http(204, "http://ignored/", 204);
        is_str(v.portal, "", "a Location on the expected answer is ignored");

        for (size_t i = 0; i < ELEMENTSOF(redirects); i++) {
                v = verdict_http(redirects[i], "https://portal.example/login?x=1", 204);
                is_int(v.result, CAPTIVE_RESULT_CAPTIVE, "%u redirect is Captive", redirects[i]);
                is_str(v.portal, "https://portal.example/login?x=1",
                       "%u redirect gives its Location as the portal", redirects[i]);
        }
        v = verdict_http(302, NULL, 204);
        is_int(v.result, CAPTIVE_RESULT_CAPTIVE, "a redirect without Location is Captive");
        is_str(v.portal, "", "and has no portal");
        v = verdict_http(302, "", 204);
        is_str(v.portal, "", "an empty Location gives no portal");
        v = verdict_http(302, "/login", 204);
        is_str(v.portal, "http://connectivitycheck.gstatic.com/login",
               "a relative Location is resolved against the probe URL");

        for (size_t i = 0; i < ELEMENTSOF(others); i++) {
                v = verdict_http(others[i], "http://somewhere/", 204);
                is_int(v.result, CAPTIVE_RESULT_CAPTIVE, "answer %u is Captive", others[i]);
                is_str(v.portal, "", "answer %u gives no portal (not a redirect)", others[i]);
        }

        v = verdict_http(200, NULL, 200);
        is_int(v.result, CAPTIVE_RESULT_OK, "http_expect 200 makes 200 OK");
        v = verdict_http(204, NULL, 200);
        is_int(v.result, CAPTIVE_RESULT_CAPTIVE, "and 204 then is another answer: Captive");
}

static void test_long_location(void)
{
        char url[CAPTIVE_URL_MAX + 16];
        ProbeVerdict v;

        memcpy(url, "http://p/", 9);
        memset(url + 9, 'a', CAPTIVE_URL_MAX - 9);
        url[CAPTIVE_URL_MAX] = '\0';
        v = verdict_http(302, url, 204);
        is_int(strlen(v.portal), CAPTIVE_URL_MAX, "a Location of exactly CAPTIVE_URL_MAX is kept");
        url[CAPTIVE_URL_MAX] = 'a';
        url[CAPTIVE_URL_MAX + 1] = '\0';
        v = verdict_http(302, url, 204);
        is_int(v.result, CAPTIVE_RESULT_CAPTIVE, "a too long Location is still Captive");
        is_str(v.portal, "", "but its URL is dropped, not cut");
        v = verdict_http(302, "http://p/a\r\nb", 204);
        is_str(v.portal, "", "a Location with control bytes is dropped");
}

static void test_failure_rules(void)
{
        static const struct {
                ProbeFailure failure;
                CaptiveResult result;
        } table[] = {
            {PROBE_FAILURE_DNS, CAPTIVE_RESULT_NO_INTERNET},
            {PROBE_FAILURE_REFUSED, CAPTIVE_RESULT_NO_INTERNET},
            {PROBE_FAILURE_RESET, CAPTIVE_RESULT_NO_INTERNET},
            {PROBE_FAILURE_TLS, CAPTIVE_RESULT_NO_INTERNET},
            {PROBE_FAILURE_TIMEOUT, CAPTIVE_RESULT_NO_INTERNET},
            {PROBE_FAILURE_LOCAL, CAPTIVE_RESULT_UNKNOWN},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                ProbeOutcome o = {.kind = PROBE_OUTCOME_FAILURE, .failure = table[i].failure};
                ProbeVerdict v;

                probe_outcome_verdict(&o, 204, &v);
                is_int(v.result, table[i].result, "failure %s gives %s",
                       probe_failure_to_string(table[i].failure),
                       captive_result_to_string(table[i].result));
                is_str(v.portal, "", "failure %s has no portal",
                       probe_failure_to_string(table[i].failure));
        }
}

static void test_api_rules(void)
{
        PortalApi api = {.captive = true, .user_portal_url = (char *) "https://portal.example/"};
        ProbeOutcome o = {.kind = PROBE_OUTCOME_API, .api = &api};
        ProbeVerdict v;

        probe_outcome_verdict(&o, 204, &v);
        is_int(v.result, CAPTIVE_RESULT_CAPTIVE, "API captive true is Captive");
        is_str(v.portal, "https://portal.example/", "with user-portal-url as the portal");
        ok(!v.has_seconds_remaining, "no seconds-remaining when the document has none");

        api = (PortalApi){.captive = false,
                          .user_portal_url = (char *) "https://portal.example/",
                          .has_seconds_remaining = true,
                          .seconds_remaining = 3600};
        probe_outcome_verdict(&o, 204, &v);
        is_int(v.result, CAPTIVE_RESULT_OK, "API captive false is OK");
        is_str(v.portal, "", "an OK verdict names no portal");
        ok(v.has_seconds_remaining && v.seconds_remaining == 3600,
           "seconds-remaining is carried into the verdict");

        api = (PortalApi){.captive = true};
        probe_outcome_verdict(&o, 204, &v);
        is_int(v.result, CAPTIVE_RESULT_CAPTIVE, "API captive true without a URL is Captive");
        is_str(v.portal, "", "with no portal");
}

static void test_location_resolve(void)
{
        static const struct {
                const char *base, *location, *expect;
        } table[] = {
            {"http://a.example/x/y?q=1#f", "https://b.example/p", "https://b.example/p"},
            {"http://a.example/x/y?q=1#f", "//b.example/p", "http://b.example/p"},
            {"http://a.example:8080/x/y?q=1", "/login", "http://a.example:8080/login"},
            {"http://a.example/x/y?q=1#f", "?r=2", "http://a.example/x/y?r=2"},
            {"http://a.example/x/y?q=1#f", "#g", "http://a.example/x/y?q=1#g"},
            {"http://a.example/x/y?q=1", "login", "http://a.example/x/login"},
            {"http://a.example", "login", "http://a.example/login"},
            {"http://a.example?q", "login", "http://a.example/login"},
            {NULL, "/login", "/login"},
            {"not a url", "/login", "/login"},
            {"mailto:x@y", "/login", "/login"},
            {"http://a.example/", "HTTPS://B/", "HTTPS://B/"},
        };
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                int r = probe_location_resolve(table[i].base, table[i].location, buf, sizeof(buf));

                is_int(r, (int) strlen(table[i].expect), "resolve %s against %s: length",
                       table[i].location, table[i].base ? table[i].base : "(none)");
                if (r >= 0)
                        is_str(buf, table[i].expect, "resolve %s against %s", table[i].location,
                               table[i].base ? table[i].base : "(none)");
        }
        is_int(probe_location_resolve("http://a/", "", buf, sizeof(buf)), -EINVAL,
               "an empty Location is refused");
        is_int(probe_location_resolve("http://a/", "/a\tb", buf, sizeof(buf)), -EINVAL,
               "a Location with a control byte is refused");
        is_int(probe_location_resolve("http://a.example/", "/0123456789", buf, 20), -ENAMETOOLONG,
               "a result larger than the buffer is refused");
}

static void test_ranking(void)
{
        static const CaptiveResult rank[] = {CAPTIVE_RESULT_UNKNOWN, CAPTIVE_RESULT_NO_INTERNET,
                                             CAPTIVE_RESULT_CAPTIVE, CAPTIVE_RESULT_OK};
        CaptiveResult r;

        for (size_t i = 0; i < ELEMENTSOF(rank); i++)
                for (size_t j = 0; j < ELEMENTSOF(rank); j++)
                        is_int(captive_result_best(rank[i], rank[j]), rank[MAX(i, j)],
                               "best of %s and %s", captive_result_to_string(rank[i]),
                               captive_result_to_string(rank[j]));
        is_str(captive_result_to_string(CAPTIVE_RESULT_OK), "OK", "OK is spelled OK");
        is_str(captive_result_to_string(CAPTIVE_RESULT_CAPTIVE), "Captive", "Captive spelling");
        is_str(captive_result_to_string(CAPTIVE_RESULT_NO_INTERNET), "No internet",
               "No internet spelling");
        ok(captive_result_from_string("No internet", &r) == 0 && r == CAPTIVE_RESULT_NO_INTERNET,
           "a published spelling parses back");
        is_int(captive_result_from_string("captive", &r), -EINVAL, "spellings are exact");
}

/* The message must be one JSON object; returns it (caller puts it) or NULL. */
static json_object *parse_message(const char *msg)
{
        json_object *o = json_tokener_parse(msg);

        if (o && !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static const char *member_string(json_object *o, const char *key)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static void test_message_fields(void)
{
        char buf[CPD_MESSAGE_MAX + 1];
        CaptiveStatus s = {
            .result = CAPTIVE_RESULT_OK,
            .ipv4 = CAPTIVE_RESULT_OK,
            .ipv6 = CAPTIVE_RESULT_UNKNOWN,
            .checked_usec = 123456789,
        };
        int n;

        n = cpd_message_format(&s, buf);
        is_str(buf,
               "{\"type\":\"cpd\",\"result\":\"OK\",\"ipv4\":\"OK\",\"ipv6\":null,"
               "\"checked_us\":123456789}",
               "an OK message names both families, null for the unchecked one");
        is_int(n, strlen(buf), "the length returned is the message length");

        s = (CaptiveStatus){.result = CAPTIVE_RESULT_CAPTIVE,
                            .ipv4 = CAPTIVE_RESULT_CAPTIVE,
                            .ipv6 = CAPTIVE_RESULT_NO_INTERNET,
                            .portal = "http://portal.example/login",
                            .checked_usec = 1};
        cpd_message_format(&s, buf);
        is_str(buf,
               "{\"type\":\"cpd\",\"result\":\"Captive\",\"ipv4\":\"Captive\","
               "\"ipv6\":\"No internet\",\"portal\":\"http://portal.example/login\","
               "\"checked_us\":1}",
               "a Captive message has the portal");

        s = (CaptiveStatus){.result = CAPTIVE_RESULT_NO_INTERNET,
                            .ipv4 = CAPTIVE_RESULT_UNKNOWN,
                            .ipv6 = CAPTIVE_RESULT_UNKNOWN,
                            .portal = "http://stale/"};
        cpd_message_format(&s, buf);
        is_str(buf,
               "{\"type\":\"cpd\",\"result\":\"No internet\",\"ipv4\":null,\"ipv6\":null,"
               "\"checked_us\":0}",
               "a portal is only published with Captive");

        s = (CaptiveStatus){.result = CAPTIVE_RESULT_OK,
                            .ipv6 = CAPTIVE_RESULT_OK,
                            .has_seconds_remaining = true,
                            .seconds_remaining = 600,
                            .checked_usec = 5};
        cpd_message_format(&s, buf);
        is_str(buf,
               "{\"type\":\"cpd\",\"result\":\"OK\",\"ipv4\":null,\"ipv6\":\"OK\","
               "\"seconds_remaining\":600,\"checked_us\":5}",
               "seconds_remaining is published when known");

        s.result = CAPTIVE_RESULT_UNKNOWN;
        is_int(cpd_message_format(&s, buf), -EINVAL, "UNKNOWN is never published");
}

static void test_message_escaping(void)
{
        char buf[CPD_MESSAGE_MAX + 1];
        CaptiveStatus s = {.result = CAPTIVE_RESULT_CAPTIVE, .ipv4 = CAPTIVE_RESULT_CAPTIVE};
        json_object *o;

        s.portal = "http://p/\"q\"\\\x01\x1f\x7f/\xc3\xa9/\xff\xc3(/\xe2\x82";
        cpd_message_format(&s, buf);
        ok(strstr(buf, "\"portal\":\"http://p/\\\"q\\\"\\\\\\u0001\\u001f\\u007f/\xc3\xa9/"
                       "%FF%C3(/%E2%82\""),
           "quotes, backslashes and controls are escaped, valid UTF-8 kept, bad bytes "
           "percent-encoded");
        o = parse_message(buf);
        ok(o, "the escaped message is valid JSON");
        is_str(o ? member_string(o, "portal") : NULL,
               "http://p/\"q\"\\\x01\x1f\x7f/\xc3\xa9/%FF%C3(/%E2%82",
               "and the URL reads back as escaped");
        if (o)
                json_object_put(o);

        /* Overlong, surrogate and beyond-U+10FFFF forms are not valid UTF-8. */
        s.portal = "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80";
        cpd_message_format(&s, buf);
        ok(strstr(buf, "\"portal\":\"%C0%AF%ED%A0%80%F4%90%80%80\""),
           "overlong, surrogate and out-of-range sequences are percent-encoded");
}

static void test_message_bounds(void)
{
        char url[CAPTIVE_URL_MAX + 1], buf[CPD_MESSAGE_MAX + 1];
        CaptiveStatus s = {
            .result = CAPTIVE_RESULT_CAPTIVE,
            .ipv4 = CAPTIVE_RESULT_NO_INTERNET,
            .ipv6 = CAPTIVE_RESULT_NO_INTERNET,
            .has_seconds_remaining = true,
            .seconds_remaining = UINT64_MAX,
            .checked_usec = UINT64_MAX,
            .portal = url,
        };
        size_t fits = 0;
        int n;

        /* Find the longest plain URL that still fits, then one byte more. */
        for (size_t len = 10; len < CPD_MESSAGE_MAX; len++) {
                memset(url, 'a', len);
                url[len] = '\0';
                n = cpd_message_format(&s, buf);
                ok(n > 0 && n <= CPD_MESSAGE_MAX && (size_t) n == strlen(buf),
                   "URL of %zu bytes: message within %d bytes", len, CPD_MESSAGE_MAX);
                if (strstr(buf, "\"portal\""))
                        fits = len;
        }
        cmp_int(fits, >=, 200, "a URL of at least 200 bytes fits the worst-case message");
        memset(url, 'a', fits);
        url[fits] = '\0';
        n = cpd_message_format(&s, buf);
        ok(strstr(buf, "\"portal\""), "the longest fitting URL is published");
        url[fits] = 'a';
        url[fits + 1] = '\0';
        n = cpd_message_format(&s, buf);
        ok(!strstr(buf, "\"portal\""), "one byte more and the portal is left out, not cut");
        ok(strstr(buf, "\"checked_us\":18446744073709551615}"), "the rest of the message is whole");

        /* Escaping counts: 60 quotes need 120 bytes. */
        memset(url, '"', 150);
        url[150] = '\0';
        n = cpd_message_format(&s, buf);
        ok(n <= CPD_MESSAGE_MAX && !strstr(buf, "\"portal\""),
           "the escaped length decides whether the URL fits");

        memset(url, 'b', CAPTIVE_URL_MAX);
        url[CAPTIVE_URL_MAX] = '\0';
        n = cpd_message_format(&s, buf);
        ok(n <= CPD_MESSAGE_MAX, "a maximal URL still gives a bounded message");
}

static void test_json_string(void)
{
        char small[8];
        size_t n;

        n = cpd_json_string("abcdefghij", small, sizeof(small));
        is_int(n, 12, "the length needed is returned");
        is_str(small, "\"abcdef", "and a short buffer is NUL-terminated");
        n = cpd_json_string("", small, sizeof(small));
        is_str(small, "\"\"", "an empty string is two quotes");
}

static void test_trigger_message(void)
{
        static const char *const yes[] = {
            "{\"trigger\":\"cpdcheck\"}",
            "{ \"trigger\" : \"cpdcheck\" , \"src\" : \"wlan0\" }",
            "{\"src\":1,\"trigger\":\"cpdcheck\"}",
        };
        static const char *const no[] = {
            "",
            "{}",
            "[\"cpdcheck\"]",
            "{\"trigger\":\"cpdcheckx\"}",
            "{\"trigger\":\"CPDCHECK\"}",
            "{\"trigger\":1}",
            "{\"trigger\":\"cpdcheck\"",
            "{\"type\":\"cpd\",\"result\":\"OK\"}",
            "\"cpdcheck\"",
        };
        char big[SMD_PAYLOAD_MAX + 8];

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                ok(cpd_message_is_check_trigger(yes[i], strlen(yes[i])), "trigger: %s", yes[i]);
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                ok(!cpd_message_is_check_trigger(no[i], strlen(no[i])), "not a trigger: '%s'",
                   no[i]);
        ok(!cpd_message_is_check_trigger("{\"trigger\":\"cpdcheck\"}\0", 23),
           "a payload with a NUL byte is not a trigger");
        memset(big, ' ', sizeof(big));
        memcpy(big, "{\"trigger\":\"cpdcheck\"}", 22);
        ok(!cpd_message_is_check_trigger(big, sizeof(big)),
           "a payload over the SMD limit is not a trigger");
}

static int parse(const char *doc, PortalApi *api)
{
        return portal_api_parse(doc, strlen(doc), api);
}

static void test_api_valid(void)
{
        PortalApi api;
        int r;

        r = parse("{\"captive\": true}", &api);
        is_int(r, 0, "the minimal document parses");
        ok(api.captive && !api.user_portal_url && !api.venue_info_url &&
               !api.has_can_extend_session && !api.has_seconds_remaining &&
               !api.has_bytes_remaining,
           "with only the captive flag");
        portal_api_done(&api);

        r = parse("{\n  \"captive\": false,\n  \"user-portal-url\": "
                  "\"https://example.org/portal.html\",\n"
                  "  \"venue-info-url\": \"http://flight.example.com/entertainment\",\n"
                  "  \"seconds-remaining\": 326,\n  \"bytes-remaining\": 65536,\n"
                  "  \"can-extend-session\": true\n}\n",
                  &api);
        is_int(r, 0, "the RFC 8908 example document parses");
        ok(!api.captive, "captive false");
        is_str(api.user_portal_url, "https://example.org/portal.html", "user-portal-url");
        is_str(api.venue_info_url, "http://flight.example.com/entertainment",
               "venue-info-url may be http");
        ok(api.has_seconds_remaining && api.seconds_remaining == 326, "seconds-remaining");
        ok(api.has_bytes_remaining && api.bytes_remaining == 65536, "bytes-remaining");
        ok(api.has_can_extend_session && api.can_extend_session, "can-extend-session");
        portal_api_done(&api);
        portal_api_done(&api);
        ok(!api.user_portal_url, "done clears and may run twice");

        r = parse("{\"captive\":true,\"x-vendor\":{\"a\":[1,2,{\"b\":null}]},\"other\":\"s\"}",
                  &api);
        is_int(r, 0, "unknown members of any type are ignored");
        portal_api_done(&api);

        r = parse("{\"captive\":true,\"x\":\"it's \\\"quoted\\\" 'here'\"}", &api);
        is_int(r, 0, "single quotes inside a string are fine");
        portal_api_done(&api);

        r = parse("{\"captive\":true,\"user-portal-url\":\"http://insecure.example/\"}", &api);
        is_int(r, 0, "an http user-portal-url does not invalidate the document");
        ok(api.captive && !api.user_portal_url, "but it is not used (the RFC requires TLS)");
        portal_api_done(&api);

        r = parse("{\"captive\":true,\"user-portal-url\":\"https://a/\\u0000b\"}", &api);
        ok(r == 0 && !api.user_portal_url, "a URL with an escaped NUL is not used");
        portal_api_done(&api);

        r = parse("{\"captive\":true,\"user-portal-url\":\"https://a/\\nb\"}", &api);
        ok(r == 0 && !api.user_portal_url, "a URL with a control byte is not used");
        portal_api_done(&api);

        r = parse("{\"captive\":false,\"seconds-remaining\":12.9,\"bytes-remaining\":"
                  "18446744073709551615}",
                  &api);
        is_int(r, 0, "a fractional and a maximal count parse");
        ok(api.seconds_remaining == 12 && api.bytes_remaining == UINT64_MAX,
           "a fraction is truncated; the full unsigned range is kept");
        portal_api_done(&api);
}

static void test_api_invalid(void)
{
        static const char *const bad[] = {
            "",
            "   ",
            "null",
            "true",
            "[{\"captive\":true}]",
            "{}",
            "{\"captive\":\"true\"}",
            "{\"captive\":1}",
            "{\"captive\":null}",
            "{\"captive\":true,\"user-portal-url\":5}",
            "{\"captive\":true,\"venue-info-url\":[]}",
            "{\"captive\":true,\"can-extend-session\":\"yes\"}",
            "{\"captive\":true,\"seconds-remaining\":\"10\"}",
            "{\"captive\":true,\"seconds-remaining\":-1}",
            "{\"captive\":true,\"seconds-remaining\":-0.5}",
            "{\"captive\":true,\"bytes-remaining\":true}",
            "{\"captive\":true,\"bytes-remaining\":1e300}",
            "{\"captive\":true",
            "{\"captive\":true} x",
            "{\"captive\":true}{}",
            "{'captive':true}",
            "{\"captive\":true,}",
            "{\"captive\":true,\"x\":\"\xff\"}",
            "{\"captive\":true,\"a\":[[[[[[[[[[1]]]]]]]]]]}",
        };
        char big[PORTAL_API_DOCUMENT_MAX + 2];
        PortalApi api = {.user_portal_url = NULL, .seconds_remaining = 77};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                is_int(parse(bad[i], &api), -EBADMSG, "invalid: '%s'", bad[i]);
        ok(api.seconds_remaining == 77, "the output is untouched on failure");
        is_int(portal_api_parse("{\"captive\":true}\0", 17, &api), -EBADMSG,
               "a NUL byte makes the document invalid");

        memset(big, ' ', sizeof(big));
        memcpy(big, "{\"captive\":true}", 16);
        is_int(portal_api_parse(big, PORTAL_API_DOCUMENT_MAX, &api), 0,
               "a document of exactly the size limit is accepted");
        portal_api_done(&api);
        is_int(portal_api_parse(big, PORTAL_API_DOCUMENT_MAX + 1, &api), -EMSGSIZE,
               "one byte more is refused");
}

static void test_ss_states(void)
{
        static const struct {
                SsState state;
                uint32_t ack;
                CaptiveResult result;
                const char *what;
        } table[] = {
            {SS_STATE_QOS_ACK_REMOTE, 204, CAPTIVE_RESULT_OK, "ACK 204"},
            {SS_STATE_QOS_NACK_REMOTE, 302, CAPTIVE_RESULT_CAPTIVE, "NACK 302"},
            {SS_STATE_QOS_NACK_REMOTE, 200, CAPTIVE_RESULT_CAPTIVE, "NACK 200"},
            {SS_STATE_QOS_NACK_REMOTE, 511, CAPTIVE_RESULT_CAPTIVE, "NACK 511"},
            {SS_STATE_QOS_NACK_REMOTE, 0, CAPTIVE_RESULT_NO_INTERNET, "NACK without a status"},
            {SS_STATE_UNREACHABLE, SS_ACK_DNS, CAPTIVE_RESULT_NO_INTERNET, "UNREACHABLE dns"},
            {SS_STATE_UNREACHABLE, SS_ACK_REFUSED, CAPTIVE_RESULT_NO_INTERNET,
             "UNREACHABLE refused"},
            {SS_STATE_UNREACHABLE, SS_ACK_TLS | SS_ACK_TLS_VERIFY, CAPTIVE_RESULT_NO_INTERNET,
             "UNREACHABLE tls"},
            {SS_STATE_UNREACHABLE, SS_ACK_TIMEOUT, CAPTIVE_RESULT_NO_INTERNET,
             "UNREACHABLE timeout"},
            {SS_STATE_UNREACHABLE, SS_ACK_RESET, CAPTIVE_RESULT_NO_INTERNET, "UNREACHABLE reset"},
            {SS_STATE_UNREACHABLE, 0, CAPTIVE_RESULT_NO_INTERNET, "UNREACHABLE without bits"},
            {SS_STATE_UNREACHABLE, SS_ACK_CONFIG, CAPTIVE_RESULT_UNKNOWN,
             "UNREACHABLE config (ours)"},
            {SS_STATE_TIMEOUT, 0, CAPTIVE_RESULT_NO_INTERNET, "TIMEOUT"},
            {SS_STATE_DISCONNECTED, 0, CAPTIVE_RESULT_NO_INTERNET, "DISCONNECTED before an answer"},
            {SS_STATE_ALL_RETRIES_FAILED, 0, CAPTIVE_RESULT_NO_INTERNET, "ALL_RETRIES_FAILED"},
            {SS_STATE_AUTH_FAILED, 0, CAPTIVE_RESULT_NO_INTERNET, "AUTH_FAILED"},
        };
        static const SsState not_final[] = {
            SS_STATE_CREATING,   SS_STATE_CONNECTING,    SS_STATE_CONNECTED,     SS_STATE_POLL,
            SS_STATE_DESTROYING, SS_STATE_QOS_ACK_LOCAL, SS_STATE_USER_BASE + 7,
        };
        static const struct {
                uint32_t ack;
                ProbeFailure failure;
        } bits[] = {
            {SS_ACK_DNS | SS_ACK_TIMEOUT, PROBE_FAILURE_DNS},
            {SS_ACK_TLS | SS_ACK_TIMEOUT, PROBE_FAILURE_TIMEOUT},
            {SS_ACK_TLS | SS_ACK_RESET, PROBE_FAILURE_TLS},
            {SS_ACK_CONFIG | SS_ACK_DNS, PROBE_FAILURE_LOCAL},
        };
        ProbeOutcome o;
        ProbeVerdict v;

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                ok(probe_outcome_from_ss_state(table[i].state, table[i].ack, &o),
                   "%s ends the probe", table[i].what);
                probe_outcome_verdict(&o, 204, &v);
                is_int(v.result, table[i].result, "%s gives %s", table[i].what,
                       captive_result_to_string(table[i].result));
        }
        ok(probe_outcome_from_ss_state(SS_STATE_QOS_NACK_REMOTE, 404, &o) &&
               o.kind == PROBE_OUTCOME_HTTP && o.status == 404,
           "the ack of a NACK is the HTTP status");
        for (size_t i = 0; i < ELEMENTSOF(not_final); i++)
                ok(!probe_outcome_from_ss_state(not_final[i], 0, &o), "%s is not final",
                   ss_state_to_string(not_final[i]));
        for (size_t i = 0; i < ELEMENTSOF(bits); i++) {
                (void) probe_outcome_from_ss_state(SS_STATE_UNREACHABLE, bits[i].ack, &o);
                is_int(o.failure, bits[i].failure, "UNREACHABLE ack 0x%x is %s", bits[i].ack,
                       probe_failure_to_string(bits[i].failure));
        }
}

int main(void)
{
        tap_init();
        test_http_rules();
        test_long_location();
        test_failure_rules();
        test_api_rules();
        test_location_resolve();
        test_ranking();
        test_message_fields();
        test_message_escaping();
        test_message_bounds();
        test_json_string();
        test_trigger_message();
        test_api_valid();
        test_api_invalid();
        test_ss_states();
        return tap_done();
}
