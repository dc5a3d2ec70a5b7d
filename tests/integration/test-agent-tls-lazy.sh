#!/usr/bin/env bash
# GnuTLS is loaded on first use (ss/tls-lib.c). Checks, on the built agent:
# nothing we build has libgnutls in its NEEDED list; the agent on its default
# policy, and with TLS streamtypes nobody has opened, does not map it (its
# /proc/PID/maps); a plain stream leaves it unmapped; after a TLS stream to
# nginx it is mapped. Then, in a mount namespace where the library is hidden
# (/dev/null bound over it): a TLS stream is refused with "TLS unavailable: "
# and the loader's reason (the agent logs it once, however many streams
# fail), while plain streams and the agent itself go on working.
set -u
. "$(dirname "$0")/../shell/tap.sh"
. "$(dirname "$0")/proxy-common.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}"

command -v nginx >/dev/null || skip_all "nginx is not installed"
command -v certtool >/dev/null || skip_all "certtool (gnutls-bin) is not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root (a mount namespace hides libgnutls)"

proxy_workdir
proxy_certs

# The agent, its client and library, the examples: no NEEDED libgnutls.
BUILD=$(dirname "$(dirname "$SMDAGENT")")
needs=""
for f in "$SMDAGENT" "$SMDCTL" "$BUILD"/smd/libsmd.so.* "$BUILD"/examples/smd-publish \
    "$BUILD"/examples/smd-subscribe "$BUILD"/examples/stream-get "$BUILD"/examples/ws-counter/ws-counter; do
    [ -f "$f" ] || continue
    readelf -d "$f" | grep -q 'NEEDED.*libgnutls' && needs="$needs $f"
done
is "$needs" "" "no binary we ship has libgnutls in its NEEDED list"

# certtool is linked with GnuTLS: where the loader finds the library.
LIBGNUTLS=$(ldd "$(command -v certtool)" | awk '/libgnutls\.so/ {print $3; exit}')
[ -f "$LIBGNUTLS" ]
ok $? "libgnutls found at ${LIBGNUTLS:-?}"

mkdir -p "$W/tmp" "$W/www"
echo "hello over tls" >"$W/www/hello"
TLS_PORT=$(free_port)
PLAIN_PORT=$(free_port)
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
}
EOF
nginx -p "$W" -c "$W/nginx.conf" -e "$W/nginx-error.log" &
PIDS+=($!)
wait_for 10 curl -sf --cacert "$W/ca.pem" "https://localhost:$TLS_PORT/hello" -o /dev/null
ok $? "nginx serves TLS on port $TLS_PORT"
wait_for 10 curl -sf "http://127.0.0.1:$PLAIN_PORT/plain" -o /dev/null
ok $? "and plain HTTP on port $PLAIN_PORT"

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
               "http_url": "plain", "retry": "once"}}
  ]
}
EOF

maps_gnutls() { grep -q 'libgnutls\.so' "/proc/$AGENT/maps"; }

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

# 1. The default policy: no TLS streamtype, no GnuTLS.
start_agent "$W/agent-default.log" "$SMDAGENT"
ok $? "the agent starts on its default policy"
"$SMDCTL" -s "$S" status >/dev/null 2>&1
is $? 0 "smdctl status answers"
maps_gnutls
is $? 1 "the agent on its default policy does not map libgnutls"
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
stop_agent

# 3. The library cannot be loaded: TLS streams fail with the loader's reason, nothing else does.
# shellcheck disable=SC2016 # the inner shell expands its own arguments
start_agent "$W/agent-hidden.log" unshare -m sh -c \
    'mount --bind /dev/null "$0" && exec "$@"' "$LIBGNUTLS" "$SMDAGENT" --policy "$W/policy.json"
ok $? "the agent starts where libgnutls cannot be loaded"
"$SMDCTL" -s "$S" stream secure >/dev/null 2>"$W/hidden1.err"
is $? 3 "a TLS stream is refused (smdctl exits 3)"
grep -q 'TLS unavailable: .*libgnutls\.so' "$W/hidden1.err"
ok $? "the refusal says TLS is unavailable and why"
diag "smdctl: $(head -c 300 "$W/hidden1.err")"
"$SMDCTL" -s "$S" stream secure >/dev/null 2>"$W/hidden2.err"
is $? 3 "a second TLS stream is refused the same way"
grep -q 'TLS unavailable: .*libgnutls\.so' "$W/hidden2.err"
ok $? "with the same reason"
out=$("$SMDCTL" -s "$S" stream clear 2>/dev/null)
is "$?:$out" "0:hello in the clear" "a plain stream still works"
kill -0 "$AGENT" 2>/dev/null
ok $? "the agent is still running"
maps_gnutls
is $? 1 "nothing of libgnutls is mapped"
is "$(grep -c 'TLS unavailable: .*streams with tls fail' "$W/agent-hidden.log")" 1 \
    "the agent logged the reason once for two failed streams"
stop_agent

done_testing
