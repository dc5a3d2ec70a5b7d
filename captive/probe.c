/* SPDX-License-Identifier: MIT */
/*
 * The verdict rules for one probe outcome (see probe.h). Pure: no clock, no
 * I/O, no allocation.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "probe.h"
#include "util.h"

static bool is_scheme_char(char c, bool first)
{
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                return true;
        return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

/* Length of "scheme:" when s starts with one (RFC 3986 scheme syntax), else 0. */
static size_t scheme_length(const char *s)
{
        size_t i = 0;

        while (s[i] && is_scheme_char(s[i], i == 0))
                i++;
        return i > 0 && s[i] == ':' ? i + 1 : 0;
}

static int join(char *buf, size_t size, const char *a, size_t alen, const char *b)
{
        size_t blen = strlen(b);

        if (alen + blen + 1 > size)
                return -ENAMETOOLONG;
        memmove(buf, a, alen); /* a may be buf itself */
        memcpy(buf + alen, b, blen + 1);
        return (int) (alen + blen);
}

int probe_location_resolve(const char *base, const char *location, char *buf, size_t size)
{
        size_t scheme, authority_end, cut;

        assert(location);
        assert(buf && size > 0);
        if (!location[0])
                return -EINVAL;
        for (const char *p = location; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return -EINVAL;

        if (scheme_length(location) > 0 || !base)
                return join(buf, size, "", 0, location);
        scheme = scheme_length(base);
        if (scheme == 0 || strncmp(base + scheme, "//", 2) != 0)
                return join(buf, size, "", 0, location);

        authority_end = scheme + 2 + strcspn(base + scheme + 2, "/?#");
        if (location[0] == '/' && location[1] == '/')
                return join(buf, size, base, scheme, location);
        if (location[0] == '/')
                return join(buf, size, base, authority_end, location);
        if (location[0] == '?')
                return join(buf, size, base, authority_end + strcspn(base + authority_end, "?#"),
                            location);
        if (location[0] == '#')
                return join(buf, size, base, strcspn(base, "#"), location);

        /* A relative path replaces the last segment of the base path. */
        cut = authority_end + strcspn(base + authority_end, "?#");
        while (cut > authority_end && base[cut - 1] != '/')
                cut--;
        if (cut == authority_end) {
                /* "http://host" has the empty path: the reference joins "/". */
                int r = join(buf, size, base, authority_end, "/");

                if (r < 0)
                        return r;
                return join(buf, size, buf, (size_t) r, location);
        }
        return join(buf, size, base, cut, location);
}

static bool status_is_redirect(uint16_t status)
{
        return status >= 300 && status <= 399;
}

void probe_outcome_verdict(const ProbeOutcome *o, uint16_t http_expect, ProbeVerdict *ret)
{
        assert(o);
        assert(ret);

        *ret = (ProbeVerdict){.result = CAPTIVE_RESULT_UNKNOWN};
        switch (o->kind) {
        case PROBE_OUTCOME_HTTP:
                if (o->status == http_expect) {
                        ret->result = CAPTIVE_RESULT_OK;
                        return;
                }
                /*
                 * Anything else answered for the probe host is someone in the way:
                 * a redirect, a login page served as 200, a 404 or a 511.
                 */
                ret->result = CAPTIVE_RESULT_CAPTIVE;
                if (status_is_redirect(o->status) && o->location &&
                    probe_location_resolve(o->url, o->location, ret->portal, sizeof(ret->portal)) <
                        0)
                        ret->portal[0] = '\0';
                return;
        case PROBE_OUTCOME_FAILURE:
                switch (o->failure) {
                case PROBE_FAILURE_DNS:
                case PROBE_FAILURE_REFUSED:
                case PROBE_FAILURE_RESET:
                case PROBE_FAILURE_TLS:
                case PROBE_FAILURE_TIMEOUT:
                        ret->result = CAPTIVE_RESULT_NO_INTERNET;
                        return;
                case PROBE_FAILURE_LOCAL:
                case _PROBE_FAILURE_MAX:
                        return;
                }
                return;
        case PROBE_OUTCOME_API:
                assert(o->api);
                ret->result = o->api->captive ? CAPTIVE_RESULT_CAPTIVE : CAPTIVE_RESULT_OK;
                if (o->api->captive && o->api->user_portal_url &&
                    strlen(o->api->user_portal_url) <= CAPTIVE_URL_MAX)
                        strcpy(ret->portal, o->api->user_portal_url);
                ret->has_seconds_remaining = o->api->has_seconds_remaining;
                ret->seconds_remaining = o->api->seconds_remaining;
                return;
        case _PROBE_OUTCOME_KIND_MAX:
                break;
        }
}

const char *probe_failure_to_string(ProbeFailure f)
{
        switch (f) {
        case PROBE_FAILURE_DNS:
                return "dns";
        case PROBE_FAILURE_REFUSED:
                return "refused";
        case PROBE_FAILURE_RESET:
                return "reset";
        case PROBE_FAILURE_TLS:
                return "tls";
        case PROBE_FAILURE_TIMEOUT:
                return "timeout";
        case PROBE_FAILURE_LOCAL:
                return "local";
        case _PROBE_FAILURE_MAX:
                break;
        }
        return NULL;
}
