/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the RFC 8908 Captive Portal API parser, and through it the verdict
 * and the cpd message: whatever the document, a parsed result must obey the
 * parser's promises (https portal URL, bounded), give the verdict its captive
 * flag says, and format into a bounded message that is valid UTF-8 JSON. The
 * raw input is also used as a Location and as a portal URL, to exercise the
 * resolver and the escaping with arbitrary bytes, and as an SMD trigger.
 */
#include <assert.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpd-message.h"
#include "portal-api.h"
#include "probe.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The message must be one JSON object in valid UTF-8, within the SMD limit. */
static void check_message(const CaptiveStatus *s)
{
        char msg[CPD_MESSAGE_MAX + 1];
        json_tokener *tok;
        json_object *o;
        int n;

        n = cpd_message_format(s, msg);
        assert(n > 0 && n <= CPD_MESSAGE_MAX && (size_t) n == strlen(msg));
        tok = json_tokener_new();
        assert(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, msg, n);
        assert(o && json_object_is_type(o, json_type_object));
        json_object_put(o);
        json_tokener_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char text[CAPTIVE_URL_MAX + 1];
        PortalApi api;
        ProbeVerdict v;
        size_t len;
        int r;

        (void) cpd_message_is_check_trigger(data, size);

        r = portal_api_parse(data, size, &api);
        if (r < 0)
                assert(r == -EBADMSG || r == -EMSGSIZE || r == -ENOMEM);
        else {
                assert(size <= PORTAL_API_DOCUMENT_MAX);
                if (api.user_portal_url)
                        assert(strncasecmp(api.user_portal_url, "https://", 8) == 0 &&
                               strlen(api.user_portal_url) <= CAPTIVE_URL_MAX);
                if (api.venue_info_url)
                        assert(strlen(api.venue_info_url) <= CAPTIVE_URL_MAX);
                probe_outcome_verdict(&(ProbeOutcome){.kind = PROBE_OUTCOME_API, .api = &api}, 204,
                                      &v);
                assert(v.result == (api.captive ? CAPTIVE_RESULT_CAPTIVE : CAPTIVE_RESULT_OK));
                check_message(&(CaptiveStatus){
                    .result = v.result,
                    .ipv4 = v.result,
                    .portal = v.portal[0] ? v.portal : NULL,
                    .has_seconds_remaining = v.has_seconds_remaining,
                    .seconds_remaining = v.seconds_remaining,
                    .checked_usec = size,
                });
                portal_api_done(&api);
        }

        /* The raw bytes (up to a NUL) as a redirect's Location and as a portal. */
        len = strnlen((const char *) data, MIN(size, CAPTIVE_URL_MAX));
        memcpy(text, data, len);
        text[len] = '\0';
        probe_outcome_verdict(&(ProbeOutcome){.kind = PROBE_OUTCOME_HTTP,
                                              .status = 302,
                                              .location = text,
                                              .url = "http://probe.example/dir/generate_204"},
                              204, &v);
        assert(v.result == CAPTIVE_RESULT_CAPTIVE && strlen(v.portal) <= CAPTIVE_URL_MAX);
        check_message(&(CaptiveStatus){.result = CAPTIVE_RESULT_CAPTIVE,
                                       .ipv6 = CAPTIVE_RESULT_CAPTIVE,
                                       .portal = v.portal[0] ? v.portal : NULL});
        check_message(&(CaptiveStatus){.result = CAPTIVE_RESULT_CAPTIVE, .portal = text});
        return 0;
}
