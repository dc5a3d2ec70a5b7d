/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the WebSocket upgrade checks of server streamtypes (ws-server.c):
 * the input is parsed as HTTP/1.1 requests by the request parser, each
 * request's line and header fields go to a WsServerRequest for a streamtype
 * with ws_subprotocol "chat, echo.v1,x", and the verdict must keep its
 * promises: an accepted upgrade has a valid key (and so an accept value), a
 * version 13, a chosen subprotocol that is one of the streamtype's names
 * (inside its string) and that the client offered; a refusal is 400 or 426.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1-request.h"
#include "ws-server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char subprotocol[] = "chat, echo.v1,x";

static void check(const WsServerRequest *r, const PolicyStreamtype *st, bool first)
{
        unsigned status;
        char accept[WS_ACCEPT_LENGTH + 1];

        if (!r->upgrade)
                return;
        status = ws_server_request_check(r, first, false);
        assert(status == 0 || status == 400 || status == 426);
        if (status != 0)
                return;
        assert(r->get && r->http11 && r->connection && first);
        assert(r->n_keys == 1 && r->key_ok && strlen(r->key) == WS_KEY_LENGTH);
        assert(ws_handshake_accept(r->key, accept) == 0 && strlen(accept) == WS_ACCEPT_LENGTH);
        assert(r->version_ok && r->n_versions == 1);
        assert(r->offered && r->protocol && r->protocol_len > 0);
        assert(r->protocol >= st->ws.subprotocol &&
               r->protocol + r->protocol_len <= st->ws.subprotocol + strlen(st->ws.subprotocol));
        assert((r->protocol_len == 4 && memcmp(r->protocol, "chat", 4) == 0) ||
               (r->protocol_len == 7 && memcmp(r->protocol, "echo.v1", 7) == 0) ||
               (r->protocol_len == 1 && r->protocol[0] == 'x'));
        assert(r->protocol_rank < r->n_offers);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        PolicyStreamtype st = {.ws.subprotocol = subprotocol};
        WsServerRequest r = {};
        Http1Request *p = NULL;
        size_t off = 0;
        unsigned requests = 0;
        bool started = false;

        if (http1_request_new(&p) < 0)
                return 0;
        while (off <= size) {
                Http1RequestEvent ev;
                size_t used = 0;
                int k = http1_request_feed(p, data + off, size - off, &used, &ev);

                off += used;
                if (k <= 0) {
                        if (k == 0 && http1_request_is_done(p) && off < size) {
                                http1_request_reset(p);
                                continue;
                        }
                        break;
                }
                switch (ev.type) {
                case HTTP1_REQUEST_EVENT_REQUEST:
                        ws_server_request_init(&r, ev.method, ev.version_minor);
                        started = true;
                        break;
                case HTTP1_REQUEST_EVENT_HEADER:
                        assert(started);
                        ws_server_request_header(&r, &st, ev.name, ev.name_len, ev.value,
                                                 ev.value_len);
                        break;
                case HTTP1_REQUEST_EVENT_HEADERS_COMPLETE:
                        check(&r, &st, requests++ == 0);
                        break;
                case HTTP1_REQUEST_EVENT_BODY:
                case HTTP1_REQUEST_EVENT_MESSAGE_COMPLETE:
                        break;
                }
        }
        http1_request_free(p);
        return 0;
}
