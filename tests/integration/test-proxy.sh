#!/usr/bin/env bash
# Secure Streams through the agent's socket (issue 10): nginx over TLS with a
# CA that only the agent's policy knows; `smdctl stream` and libsmd clients
# (examples/stream-get, test-proxy-client). Checks: the exact 1 MiB body, a
# 1 MiB PUT stored byte for byte, metadata both ways, flow control (a client
# that stops reading during a 100 MiB download keeps the agent's memory within
# proxy_buflen plus a constant, and the download then completes byte-exact),
# access control for an unprivileged user and for server streamtypes, and an
# agent restarted under a connected client. h2, ws and mqtt: test-proxy-protocols.sh.
set -u
. "$(dirname "$0")/../shell/tap.sh"
. "$(dirname "$0")/proxy-common.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}" "${STREAM_GET:?}" "${PROXY_CLIENT:?}"

command -v nginx >/dev/null || skip_all "nginx is not installed"
command -v certtool >/dev/null || skip_all "certtool (gnutls-bin) is not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root (setpriv to another user)"

proxy_workdir
BUFLEN=32768

# Certificates: a CA and a server certificate for localhost.
proxy_certs

# nginx: the 1 MiB body, a 100 MiB sparse file, WebDAV PUT, a header echo.
mkdir -p "$W/www/dav" "$W/tmp"
head -c 1048576 /dev/urandom >"$W/www/big"
truncate -s 100M "$W/www/huge"
head -c 1048576 /dev/urandom >"$W/upload"
chmod -R a+rwX "$W/www"
PORT=$(free_port)
cat >"$W/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $W/tmp/body; proxy_temp_path $W/tmp/proxy;
  fastcgi_temp_path $W/tmp/fastcgi; uwsgi_temp_path $W/tmp/uwsgi; scgi_temp_path $W/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key;
    root $W/www;
    location = /big { }
    location = /huge { }
    location /dav/ { dav_methods PUT; client_max_body_size 16m; }
    location = /echo { add_header X-Echo "\$http_x_test" always; return 200 "echo\n"; }
  }
}
EOF
nginx -p "$W" -c "$W/nginx.conf" -e "$W/nginx-error.log" &
NGINX=$!
PIDS+=($NGINX)
wait_for 5 curl -sf --cacert "$W/ca.pem" "https://localhost:$PORT/big" -o /dev/null
ok $? "nginx serves TLS on port $PORT"

cat >"$W/policy.json" <<EOF
{
  "release": "1", "product": "proxy-test", "schema-version": 1,
  "retry": [{"once": {"backoff": [200], "conceal": 1, "jitterpc": 0}}],
  "certs": [{"testca": "file:$W/ca.pem"}],
  "trust_stores": [{"name": "test", "stack": ["testca"]}],
  "s": [
    {"big": {"endpoint": "localhost", "port": $PORT, "protocol": "h1", "tls": true,
             "tls_trust_store": "test", "http_url": "big", "retry": "once"}},
    {"huge": {"endpoint": "localhost", "port": $PORT, "protocol": "h1", "tls": true,
              "tls_trust_store": "test", "http_url": "huge", "retry": "once",
              "proxy_buflen": $BUFLEN}},
    {"put": {"endpoint": "localhost", "port": $PORT, "protocol": "h1", "tls": true,
             "tls_trust_store": "test", "http_method": "PUT", "http_url": "dav/\${file}",
             "metadata": [{"file": ""}], "retry": "once"}},
    {"echo": {"endpoint": "localhost", "port": $PORT, "protocol": "h1", "tls": true,
              "tls_trust_store": "test", "http_url": "echo", "retry": "once",
              "metadata": [{"xtest": "X-Test:"}, {"xecho": "X-Echo:"}]}},
    {"missing": {"endpoint": "localhost", "port": $PORT, "protocol": "h1", "tls": true,
                 "tls_trust_store": "test", "http_url": "nothing-here", "retry": "once"}},
    {"rootonly": {"endpoint": "localhost", "port": $PORT, "protocol": "h1", "tls": true,
                  "tls_trust_store": "test", "http_url": "big", "allow": ["root"]}},
    {"srv": {"endpoint": "127.0.0.1", "port": 1, "protocol": "h1", "server": true}}
  ]
}
EOF

start_agent() {
    "$SMDAGENT" --socket "$S" --no-system-policy --policy "$W/policy.json" \
        --log-level info >>"$W/agent.log" 2>&1 &
    AGENT=$!
    wait_for 5 test -S "$S"
}
start_agent
ok $? "the agent listens"
chmod 666 "$S"

# 1 MiB through smdctl stream.
"$SMDCTL" -s "$S" stream big --states >"$W/big.out" 2>"$W/big.err"
is $? 0 "smdctl stream big exits 0"
cmp -s "$W/big.out" "$W/www/big"
ok $? "it printed the exact 1 MiB body"
grep -q '^QOS_ACK_REMOTE 200$' "$W/big.err"
ok $? "--states shows QOS_ACK_REMOTE 200"
is "$(grep -c . "$W/big.err")" "$(grep -cE '^(CREATING|CONNECTING|CONNECTED|QOS_ACK_REMOTE|DISCONNECTED|DESTROYING) ' "$W/big.err")" \
    "only stream states on stderr"

# A NACK (404) exits 1.
"$SMDCTL" -s "$S" stream missing >/dev/null 2>&1
is $? 1 "a 404 (QOS_NACK_REMOTE) exits 1"

# 1 MiB PUT, byte for byte.
"$SMDCTL" -s "$S" stream put --meta file=up.bin --data "$W/upload" >/dev/null 2>"$W/put.err"
is $? 0 "smdctl stream put --data exits 0"
cmp -s "$W/www/dav/up.bin" "$W/upload"
ok $? "nginx stored the 1 MiB upload byte for byte"
"$SMDCTL" -s "$S" stream put --meta file=stdin.bin --data - <"$W/upload" >/dev/null 2>&1
is $? 0 "the same from stdin (chunked)"
cmp -s "$W/www/dav/stdin.bin" "$W/upload"
ok $? "and it arrived byte for byte"

# Metadata both ways, through libsmd.
"$PROXY_CLIENT" "$S" echo meta xtest=hello-proxy xecho >"$W/echo.out" 2>"$W/echo.err"
is $? 0 "a libsmd client fetches echo with metadata"
grep -q '^xecho=hello-proxy$' "$W/echo.err"
ok $? "the client's metadata became X-Test, and X-Echo came back as metadata"
"$SMDCTL" -s "$S" stream echo --meta nosuch=1 >/dev/null 2>&1
ok $(($? == 0)) "an unknown metadata name is a protocol error for that client"

# examples/stream-get.
"$STREAM_GET" big "$S" >"$W/get.out" 2>/dev/null
is $? 0 "examples/stream-get big exits 0"
cmp -s "$W/get.out" "$W/www/big"
ok $? "and wrote the exact body"

# Flow control: a client that stops reading during a 100 MiB download.
# The constant: the agent's own allocations around one paused stream; a
# sanitizer build adds its quarantine and shadow memory.
stalled_download huge
kill -0 $HUGE 2>/dev/null
ok $? "the download is stalled while the client does not read"
GROWTH=$(((RSS2 > RSS1 ? RSS2 : RSS1) - RSS0))
diag "agent VmRSS: ${RSS0} KiB before, ${RSS1} KiB and ${RSS2} KiB while stalled (+${GROWTH} KiB; proxy_buflen $((BUFLEN / 1024)) KiB)"
[ "$GROWTH" -le $((BUFLEN / 1024 + SLACK)) ]
ok $? "the agent grew by at most proxy_buflen + $SLACK KiB, also 2 s later"
SUM=$(sha256sum <&7 | cut -d' ' -f1)
exec 7<&-
wait $HUGE
is $? 0 "when the client reads again the download completes"
is "$SUM" "$(sha256sum <"$W/www/huge" | cut -d' ' -f1)" "byte-exact (sha256 of 100 MiB)"

# Access control.
setpriv --reuid=65534 --regid=65534 --clear-groups "$SMDCTL" -s "$S" stream rootonly \
    >/dev/null 2>"$W/refused.err"
is $? 3 "uid 65534 is refused a root-only streamtype (exit 3)"
grep -q 'not allowed' "$W/refused.err"
ok $? "with the agent's reason"
grep -q 'uid 65534.*"rootonly" refused' "$W/agent.log"
ok $? "the agent logged the uid and the streamtype"
setpriv --reuid=65534 --regid=65534 --clear-groups "$SMDCTL" -s "$S" stream big >"$W/nobody.out" 2>/dev/null
is $? 0 "uid 65534 may open an ordinary streamtype"
cmp -s "$W/nobody.out" "$W/www/big"
ok $? "and gets the body"
"$SMDCTL" -s "$S" stream srv >/dev/null 2>"$W/srv.err"
is $? 3 "a server streamtype without allow is refused, even for root"
"$SMDCTL" -s "$S" stream nosuch >/dev/null 2>&1
is $? 3 "an unknown streamtype is refused"

# The agent restarted under a connected client.
"$PROXY_CLIENT" "$S" big restart >/dev/null 2>"$W/restart.err" &
CLIENT=$!
PIDS+=($CLIENT)
wait_for 10 grep -q '^first 1048576$' "$W/restart.err"
ok $? "the client fetched once"
kill "$AGENT"
wait "$AGENT" 2>/dev/null
wait_for 5 grep -q '^link-retry$' "$W/restart.err"
ok $? "the agent went away: UPSTREAM_LINK_RETRY"
sleep 1.5
start_agent
ok $? "the agent is back"
wait $CLIENT
is $? 0 "the client's stream works again"
grep -q '^second 1048576$' "$W/restart.err"
ok $? "the second fetch after the restart got the whole body"

kill "$AGENT"
wait "$AGENT"
is $? 0 "the agent exits cleanly"
AGENT=
grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$W/agent.log" >&2
ok $((!$?)) "no sanitizer report in the agent's log"
done_testing
