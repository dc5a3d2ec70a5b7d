#!/usr/bin/env bash
# GnuTLS and libnghttp2 are loaded on first use (ss/tls-lib.c, ss/h2-lib.c).
# Checks, on the built agent: nothing we build has either in its NEEDED list;
# the agent on its default policy, and with TLS and h2 streamtypes nobody has
# opened, maps neither (its /proc/PID/maps); a plain stream leaves GnuTLS
# unmapped and an h1 one over TLS leaves libnghttp2 unmapped; after a TLS
# stream to nginx GnuTLS is mapped, after an h2 one (HTTP/2.0 in nginx's log)
# libnghttp2 too; an h2c request to a server streamtype the agent hosts maps
# libnghttp2 where HTTP/1.1 requests did not. Then, in a mount namespace
# where one library is hidden (/dev/null bound over it): a stream that needs
# it is refused with "TLS unavailable: " or "HTTP/2 unavailable: " and the
# loader's reason (the agent logs it once, however many streams fail), an h2c
# client of the hosted server gets that text in a GOAWAY, while the other
# streams, HTTP/1.1 on the server, and the agent itself go on working.
set -u
. "$(dirname "$0")/../shell/tap.sh"
. "$(dirname "$0")/proxy-common.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}"

command -v nginx >/dev/null || skip_all "nginx is not installed"
command -v certtool >/dev/null || skip_all "certtool (gnutls-bin) is not installed"
command -v nghttp >/dev/null || skip_all "nghttp (nghttp2-client) is not installed"
command -v curl >/dev/null || skip_all "curl is not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root (a mount namespace hides libgnutls)"

proxy_workdir
proxy_certs

# The agent, its client and library, the examples: no NEEDED libgnutls nor libnghttp2.
BUILD=$(dirname "$(dirname "$SMDAGENT")")
needs_tls=""
needs_h2=""
for f in "$SMDAGENT" "$SMDCTL" "$BUILD"/smd/libsmd.so.* "$BUILD"/examples/smd-publish \
    "$BUILD"/examples/smd-subscribe "$BUILD"/examples/stream-get "$BUILD"/examples/ws-counter/ws-counter; do
    [ -f "$f" ] || continue
    readelf -d "$f" | grep -q 'NEEDED.*libgnutls' && needs_tls="$needs_tls $f"
    readelf -d "$f" | grep -q 'NEEDED.*libnghttp2' && needs_h2="$needs_h2 $f"
done
is "$needs_tls" "" "no binary we ship has libgnutls in its NEEDED list"
is "$needs_h2" "" "no binary we ship has libnghttp2 in its NEEDED list"

# certtool is linked with GnuTLS: where the loader finds the library.
LIBGNUTLS=$(ldd "$(command -v certtool)" | awk '/libgnutls\.so/ {print $3; exit}')
[ -f "$LIBGNUTLS" ]
ok $? "libgnutls found at ${LIBGNUTLS:-?}"
# nghttp is linked with libnghttp2.
LIBNGHTTP2=$(ldd "$(command -v nghttp)" | awk '/libnghttp2\.so/ {print $3; exit}')
[ -f "$LIBNGHTTP2" ]
ok $? "libnghttp2 found at ${LIBNGHTTP2:-?}"

mkdir -p "$W/tmp" "$W/www"
echo "hello over tls" >"$W/www/hello"
TLS_PORT=$(free_port)
PLAIN_PORT=$(free_port)
H2_PORT=$(free_port)
SERVER_PORT=$(free_port)
cat >"$W/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $W/tmp/body; proxy_temp_path $W/tmp/proxy;
  fastcgi_temp_path $W/tmp/fastcgi; uwsgi_temp_path $W/tmp/uwsgi; scgi_temp_path $W/tmp/scgi;
  default_type text/plain;
  server {
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key;
    root $W/www;
  }
  server {
    listen 127.0.0.1:$PLAIN_PORT;
    location = /plain { return 200 "hello in the clear\n"; }
  }
  log_format proto '\$server_protocol';
  server {
    listen 127.0.0.1:$H2_PORT ssl http2;
    ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key;
    access_log $W/h2-access.log proto;
    location = /h2 { return 200 "hello over h2\n"; }
  }
}
EOF
nginx -p "$W" -c "$W/nginx.conf" -e "$W/nginx-error.log" &
PIDS+=($!)
wait_for 10 curl -sf --cacert "$W/ca.pem" "https://localhost:$TLS_PORT/hello" -o /dev/null
ok $? "nginx serves TLS on port $TLS_PORT"
wait_for 10 curl -sf "http://127.0.0.1:$PLAIN_PORT/plain" -o /dev/null
ok $? "and plain HTTP on port $PLAIN_PORT"
wait_for 10 curl -sf --cacert "$W/ca.pem" "https://localhost:$H2_PORT/h2" -o /dev/null
ok $? "and HTTP/2 over TLS on port $H2_PORT"
: >"$W/h2-access.log"

cat >"$W/policy.json" <<EOF
{
  "release": "1", "product": "tls-lazy-test", "schema-version": 1,
  "retry": [{"once": {"backoff": [200], "conceal": 1, "jitterpc": 0}}],
  "certs": [{"testca": "file:$W/ca.pem"}],
  "trust_stores": [{"name": "test", "stack": ["testca"]}],
  "s": [
    {"secure": {"endpoint": "localhost", "port": $TLS_PORT, "protocol": "h1", "tls": true,
                "tls_trust_store": "test", "http_url": "hello", "retry": "once"}},
    {"clear": {"endpoint": "127.0.0.1", "port": $PLAIN_PORT, "protocol": "h1",
               "http_url": "plain", "retry": "once"}},
    {"h2": {"endpoint": "localhost", "port": $H2_PORT, "protocol": "h2", "tls": true,
            "tls_trust_store": "test", "http_url": "h2", "retry": "once"}},
    {"status": {"server": true, "endpoint": "127.0.0.1", "port": $SERVER_PORT, "protocol": "h1"}}
  ]
}
EOF

maps_gnutls() { grep -q 'libgnutls\.so' "/proc/$AGENT/maps"; }
maps_nghttp2() { grep -q 'libnghttp2\.so' "/proc/$AGENT/maps"; }

# start_agent LOG [WRAPPER...] ARGS...: the agent in the background, up when its socket is.
start_agent() {
    local log=$1
    shift
    rm -f "$S"
    "$@" --socket "$S" --no-system-policy --log-level info >"$log" 2>&1 &
    AGENT=$!
    wait_for 20 test -S "$S"
}

stop_agent() {
    kill "$AGENT" 2>/dev/null
    wait "$AGENT" 2>/dev/null
    AGENT=
}

# start_agent_without LIBRARY LOG [ARGS...]: the agent on the test policy (and ARGS),
# where LIBRARY is /dev/null.
start_agent_without() {
    local lib=$1 log=$2
    shift 2
    # shellcheck disable=SC2016 # the inner shell expands its own arguments
    start_agent "$log" unshare -m sh -c 'mount --bind /dev/null "$0" && exec "$@"' "$lib" \
        "$SMDAGENT" --policy "$W/policy.json" "$@"
}

# refused_twice STREAMTYPE WHY: two streams refused (smdctl exits 3), each with WHY (a grep pattern).
refused_twice() {
    local i
    for i in 1 2; do
        "$SMDCTL" -s "$S" stream "$1" >/dev/null 2>"$W/$1-refused$i.err"
        is $? 3 "stream $1, try $i: refused (smdctl exits 3)"
        grep -q "$2" "$W/$1-refused$i.err"
        ok $? "stream $1, try $i: the refusal says what is unavailable and why"
    done
    diag "smdctl: $(head -c 300 "$W/$1-refused1.err")"
}

# 1. The default policy: no TLS nor h2 streamtype, no GnuTLS, no libnghttp2.
start_agent "$W/agent-default.log" "$SMDAGENT"
ok $? "the agent starts on its default policy"
"$SMDCTL" -s "$S" status >/dev/null 2>&1
is $? 0 "smdctl status answers"
maps_gnutls
is $? 1 "the agent on its default policy does not map libgnutls"
maps_nghttp2
is $? 1 "nor libnghttp2"
stop_agent

# 2. TLS streamtypes in the policy, loaded on the first TLS stream.
start_agent "$W/agent.log" "$SMDAGENT" --policy "$W/policy.json"
ok $? "the agent starts with TLS streamtypes in its policy"
maps_gnutls
is $? 1 "libgnutls is not mapped before a TLS stream is opened"
out=$("$SMDCTL" -s "$S" stream clear 2>"$W/clear.err")
is "$?:$out" "0:hello in the clear" "a plain stream fetches its body"
maps_gnutls
is $? 1 "a plain stream does not map libgnutls"
out=$("$SMDCTL" -s "$S" stream secure 2>"$W/secure.err")
is "$?:$out" "0:hello over tls" "a TLS stream to nginx fetches its body"
maps_gnutls
ok $? "after a TLS stream the agent maps libgnutls"
out=$("$SMDCTL" -s "$S" stream secure 2>>"$W/secure.err")
is "$?:$out" "0:hello over tls" "and a second TLS stream works too"
wait_for 20 curl -sf --http1.1 "http://127.0.0.1:$SERVER_PORT/" -o /dev/null
ok $? "the hosted server streamtype answers HTTP/1.1"
maps_nghttp2
is $? 1 "libnghttp2 is not mapped after plain, TLS h1 and server HTTP/1.1 streams"
out=$("$SMDCTL" -s "$S" stream h2 2>"$W/h2.err")
is "$?:$out" "0:hello over h2" "an h2 stream to nginx fetches its body"
is "$(cat "$W/h2-access.log")" "HTTP/2.0" "nginx served it over HTTP/2"
maps_nghttp2
ok $? "after an h2 stream the agent maps libnghttp2"
stop_agent

# 2b. The server side alone: an h2c request loads libnghttp2.
start_agent "$W/agent-server.log" "$SMDAGENT" --policy "$W/policy.json"
ok $? "the agent starts again"
wait_for 20 curl -sf --http1.1 "http://127.0.0.1:$SERVER_PORT/" -o /dev/null
ok $? "its server streamtype answers HTTP/1.1"
maps_nghttp2
is $? 1 "libnghttp2 is not mapped"
code=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' \
    "http://127.0.0.1:$SERVER_PORT/")
is "$code" "2 200" "an h2c request to the server streamtype is answered over HTTP/2"
maps_nghttp2
ok $? "after it the agent maps libnghttp2"
stop_agent

# 3. The library cannot be loaded: TLS streams fail with the loader's reason, nothing else does.
# A drop-in adds a TLS server the agent hosts and a policy fetch with a signing key: both
# need GnuTLS at once, and both say why they cannot have it.
certtool --generate-privkey --key-type=ed25519 --outfile "$W/vendor.key" 2>/dev/null &&
    certtool --load-privkey "$W/vendor.key" --pubkey-info --outfile "$W/vendor.pub" 2>/dev/null
ok $? "an Ed25519 signing key"
# tls_server PORT: the policy entry of a TLS server streamtype "tlsstatus" the agent hosts.
tls_server() {
    cat <<EOF
{"tlsstatus": {"server": true, "endpoint": "127.0.0.1", "port": $1,
               "protocol": "h1", "tls": true, "server_cert": "file:$W/server.pem",
               "server_key": "file:$W/server.key"}}
EOF
}
TLS_SERVER_PORT=$(free_port)
cat >"$W/tls-extra.json" <<EOF
{
  "policy_signing_key": "$W/vendor.pub",
  "s": [
    {"fetch_policy": {"endpoint": "https://localhost:$TLS_PORT/policy.json", "retry": "once",
                      "timeout_ms": 5000}},
    $(tls_server "$TLS_SERVER_PORT")
  ]
}
EOF
start_agent_without "$LIBGNUTLS" "$W/agent-hidden.log" --policy "$W/tls-extra.json"
ok $? "the agent starts where libgnutls cannot be loaded"
grep -q "failed to serve on 127.0.0.1:$TLS_SERVER_PORT: streamtype tlsstatus: TLS unavailable: .*libgnutls\\.so" \
    "$W/agent-hidden.log"
ok $? "a hosted TLS server is not started, and the log says the library is why"
diag "$(grep -m1 'tlsstatus' "$W/agent-hidden.log" | head -c 300)"
out=$("$SMDCTL" -s "$S" policy fetch 2>&1)
is "$?" 1 "smdctl policy fetch fails"
echo "$out" | grep -q 'signature: cannot use the signing key .*: TLS unavailable: .*libgnutls\.so'
ok $? "saying the signing key needs the library that cannot be loaded"
diag "smdctl policy fetch: $(echo "$out" | head -c 300)"
refused_twice secure 'TLS unavailable: .*libgnutls\.so'
out=$("$SMDCTL" -s "$S" stream clear 2>/dev/null)
is "$?:$out" "0:hello in the clear" "a plain stream still works"
kill -0 "$AGENT" 2>/dev/null
ok $? "the agent is still running"
maps_gnutls
is $? 1 "nothing of libgnutls is mapped"
is "$(grep -c 'TLS unavailable: .*streams with tls fail' "$W/agent-hidden.log")" 1 \
    "the agent logged the reason once for two failed streams"
stop_agent

# 4. libnghttp2 cannot be loaded: h2 streams and h2c requests fail with the reason, nothing else does;
# a TLS server the agent hosts offers only http/1.1 in ALPN, so a client that would choose h2
# speaks HTTP/1.1 to it.
TLS_H1_PORT=$(free_port)
echo "{\"s\": [$(tls_server "$TLS_H1_PORT")]}" >"$W/tls-h1-only.json"
start_agent_without "$LIBNGHTTP2" "$W/agent-h2-hidden.log" --policy "$W/tls-h1-only.json"
ok $? "the agent starts where libnghttp2 cannot be loaded"
wait_for 20 curl -sf --cacert "$W/ca.pem" "https://localhost:$TLS_H1_PORT/" -o /dev/null
ok $? "its TLS server streamtype answers"
code=$(curl -sv --http2 --cacert "$W/ca.pem" -o /dev/null -w '%{http_version} %{http_code}' \
    "https://localhost:$TLS_H1_PORT/" 2>"$W/curl-alpn.err")
is "$code" "1.1 200" "curl --http2 over TLS is answered over HTTP/1.1"
grep -q 'ALPN: server accepted http/1.1' "$W/curl-alpn.err" && ! grep -q 'GOAWAY' "$W/curl-alpn.err"
ok $? "ALPN chose http/1.1 (the server offers no h2 it cannot serve), no GOAWAY and retry"
diag "curl: $(grep -m2 'ALPN' "$W/curl-alpn.err" | tr '\n' ' ')"
refused_twice h2 'HTTP/2 unavailable: .*libnghttp2\.so'
out=$("$SMDCTL" -s "$S" stream secure 2>/dev/null)
is "$?:$out" "0:hello over tls" "an h1 stream over TLS still works"
out=$("$SMDCTL" -s "$S" stream clear 2>/dev/null)
is "$?:$out" "0:hello in the clear" "and a plain one"
wait_for 20 curl -sf --http1.1 "http://127.0.0.1:$SERVER_PORT/" -o /dev/null
ok $? "the server streamtype answers HTTP/1.1"
nghttp -v "http://127.0.0.1:$SERVER_PORT/" >"$W/nghttp.out" 2>&1
grep -q 'recv GOAWAY' "$W/nghttp.out" && ! grep -q ':status' "$W/nghttp.out"
ok $? "an h2c request gets a GOAWAY and no response"
grep -q 'error_code=HTTP_1_1_REQUIRED.*HTTP/2 unavailable: .*libnghttp2\.so' "$W/nghttp.out"
ok $? "its client gets a GOAWAY (HTTP_1_1_REQUIRED) that says why"
diag "nghttp: $(grep -A1 'recv GOAWAY' "$W/nghttp.out" | tr -s '\n ' ' ' | head -c 300)"
code=$(curl -s --http1.1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SERVER_PORT/")
is "$code" 200 "HTTP/1.1 requests to the server go on"
kill -0 "$AGENT" 2>/dev/null
ok $? "the agent is still running"
maps_nghttp2
is $? 1 "nothing of libnghttp2 is mapped"
is "$(grep -c 'HTTP/2 unavailable: .*h2 streams with tls fail' "$W/agent-h2-hidden.log")" 1 \
    "the agent logged the reason once for two failed streams"
stop_agent

done_testing
