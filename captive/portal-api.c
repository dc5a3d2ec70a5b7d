/* SPDX-License-Identifier: MIT */
/*
 * RFC 8908 Captive Portal API parser (see portal-api.h). json-c does the JSON;
 * this file only checks the shape and the types, and bounds what it keeps.
 */
#include <assert.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "json-util.h"
#include "portal-api.h"
#include "util.h"

/* A URL string worth keeping: bounded, no NUL or control bytes, optionally https only. */
static bool url_is_usable(const char *s, size_t len, bool https_only)
{
        if (len == 0 || len > CAPTIVE_URL_MAX || strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        if (https_only)
                return len > 8 && strncasecmp(s, "https://", 8) == 0;
        return (len > 7 && strncasecmp(s, "http://", 7) == 0) ||
               (len > 8 && strncasecmp(s, "https://", 8) == 0);
}

/* Returns 0 with *ret NULL when the key is absent or the URL is not usable. */
static int get_url(json_object *doc, const char *key, bool https_only, char **ret)
{
        json_object *v;
        const char *s;
        int len;

        *ret = NULL;
        if (!json_object_object_get_ex(doc, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = json_object_get_string(v);
        len = json_object_get_string_len(v);
        if (!s || len < 0 || !url_is_usable(s, (size_t) len, https_only))
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int get_bool(json_object *doc, const char *key, bool *has, bool *ret)
{
        json_object *v;

        *has = false;
        if (!json_object_object_get_ex(doc, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *has = true;
        *ret = json_object_get_boolean(v);
        return 0;
}

/* "number" in the RFC: an integer in practice; a non-negative double is truncated. */
static int get_count(json_object *doc, const char *key, bool *has, uint64_t *ret)
{
        json_object *v;

        *has = false;
        if (!json_object_object_get_ex(doc, key, &v))
                return 0;
        if (json_object_is_type(v, json_type_int)) {
                if (json_object_get_int64(v) < 0)
                        return -EBADMSG;
                /* get_uint64 reads the full unsigned range json-c stores. */
                *ret = json_object_get_uint64(v);
        } else if (json_object_is_type(v, json_type_double)) {
                double d = json_object_get_double(v);

                if (!isfinite(d) || d < 0 || d >= 18446744073709551616.0)
                        return -EBADMSG;
                *ret = (uint64_t) d;
        } else
                return -EBADMSG;
        *has = true;
        return 0;
}

/*
 * json-c accepts 'single-quoted' strings even in strict mode; JSON has none,
 * and outside a string a quote can only be such a string.
 */
static bool has_single_quoted_string(const char *p, size_t n)
{
        bool in_string = false;

        for (size_t i = 0; i < n; i++) {
                if (in_string && p[i] == '\\')
                        i++;
                else if (p[i] == '"')
                        in_string = !in_string;
                else if (!in_string && p[i] == '\'')
                        return true;
        }
        return false;
}

static bool only_whitespace(const char *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!strchr(" \t\r\n", p[i]))
                        return false;
        return true;
}

int portal_api_parse(const void *data, size_t size, PortalApi *ret)
{
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        _cleanup_(json_object_putp) json_object *doc = NULL;
        _cleanup_(portal_api_done) PortalApi api = {};
        json_object *v;
        size_t end;
        bool has;
        int r;

        assert(data || size == 0);
        assert(ret);
        if (size > PORTAL_API_DOCUMENT_MAX)
                return -EMSGSIZE;
        if (size == 0 || memchr(data, 0, size) || has_single_quoted_string(data, size))
                return -EBADMSG;

        tok = json_tokener_new_ex(PORTAL_API_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        doc = json_tokener_parse_ex(tok, data, (int) size);
        if (!doc || json_tokener_get_error(tok) != json_tokener_success)
                return -EBADMSG;
        end = json_tokener_get_parse_end(tok);
        if (end > size || !only_whitespace((const char *) data + end, size - end))
                return -EBADMSG;
        if (!json_object_is_type(doc, json_type_object))
                return -EBADMSG;

        if (!json_object_object_get_ex(doc, "captive", &v) ||
            !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        api.captive = json_object_get_boolean(v);

        r = get_url(doc, "user-portal-url", true, &api.user_portal_url);
        if (r < 0)
                return r;
        r = get_url(doc, "venue-info-url", false, &api.venue_info_url);
        if (r < 0)
                return r;
        r = get_bool(doc, "can-extend-session", &api.has_can_extend_session,
                     &api.can_extend_session);
        if (r < 0)
                return r;
        r = get_count(doc, "seconds-remaining", &has, &api.seconds_remaining);
        if (r < 0)
                return r;
        api.has_seconds_remaining = has;
        r = get_count(doc, "bytes-remaining", &has, &api.bytes_remaining);
        if (r < 0)
                return r;
        api.has_bytes_remaining = has;

        *ret = api;
        api = (PortalApi){};
        return 0;
}

void portal_api_done(PortalApi *api)
{
        if (!api)
                return;
        free(api->user_portal_url);
        free(api->venue_info_url);
        *api = (PortalApi){};
}
