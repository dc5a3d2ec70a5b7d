#!/usr/bin/env bash
# Secure Streams through the agent's socket for h2, ws and mqtt (issue 10),
# against real peers: nginx with `ssl http2` (the CA only in the agent's
# policy), python3-websockets echoing, mosquitto. Checks: over h2 `smdctl
# stream` prints the exact 1 MiB body and nginx saw HTTP/2.0, a 1 MiB POST
# (with and without a length) arrives byte for byte, metadata both ways, the
# same fetch through examples/stream-get, the send credit reported to a
# libsmd client (TXCR_UPDATE), and a client that stops reading during a
# 100 MiB download (the agent's memory stays bounded, then the download
# completes byte-exact); over ws, text and binary messages of sizes
# around the 1380-byte chunking up to 64 KiB come back byte-exact as whole
# messages, a server's close arrives as DISCONNECTED with its code, and a
# message cut by a dropped connection is not sent in part; over mqtt a libsmd client's publish is seen by mosquitto_sub,
# mosquitto_pub's message reaches the client with its topic, the send credit
# is reported, and smdctl stream publishes.
set -u
. "$(dirname "$0")/../shell/tap.sh"
. "$(dirname "$0")/proxy-common.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}" "${STREAM_GET:?}" "${PROXY_CLIENT:?}" "${WS_SERVER:?}"

command -v nginx >/dev/null || skip_all "nginx is not installed"
command -v certtool >/dev/null || skip_all "certtool (gnutls-bin) is not installed"
command -v mosquitto >/dev/null || skip_all "mosquitto is not installed"
command -v mosquitto_sub >/dev/null || skip_all "mosquitto-clients is not installed"
/usr/bin/python3 -c 'import websockets' 2>/dev/null || skip_all "python3-websockets is not installed"

proxy_workdir

proxy_certs

# nginx: h2 over TLS. A POST body is kept in a file (client_body_in_file_only)
# and its path answered by a plain listener behind proxy_pass.
mkdir -p "$W/www" "$W/tmp/body"
head -c 1048576 /dev/urandom >"$W/www/big"
head -c 1048576 /dev/urandom >"$W/upload"
truncate -s 100M "$W/www/huge"
chmod -R a+rwX "$W/www" "$W/tmp"
H2=$(free_port)
BACK=$(free_port)
cat >"$W/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 256; }
http {
  log_format proto '\$server_protocol \$request_method \$uri \$status';
  access_log $W/access.log proto;
  client_body_temp_path $W/tmp/body; proxy_temp_path $W/tmp/proxy;
  fastcgi_temp_path $W/tmp/fastcgi; uwsgi_temp_path $W/tmp/uwsgi; scgi_temp_path $W/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$H2 ssl http2;
    ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key;
    root $W/www;
    location = /big { }
    location = /huge { }
    location = /post {
      client_body_in_file_only on; client_max_body_size 16m;
      proxy_set_header X-Body-File \$request_body_file;
      proxy_pass http://127.0.0.1:$BACK/stored;
    }
    location = /echo { add_header X-Echo "\$http_x_test" always; return 200 "echo\n"; }
  }
  server {
    listen 127.0.0.1:$BACK;
    access_log off;
    location = /stored { return 200 "\$http_x_body_file"; }
  }
}
EOF
nginx -p "$W" -c "$W/nginx.conf" -e "$W/nginx-error.log" &
PIDS+=($!)
wait_for 5 curl -sf --cacert "$W/ca.pem" "https://localhost:$H2/echo" -o /dev/null
ok $? "nginx serves h2 over TLS on port $H2"

WS=$(free_port)
WSCLOSE=$(free_port)
WSCUT=$(free_port)
/usr/bin/python3 "$WS_SERVER" "echo:$WS" "close:$WSCLOSE" >"$W/ws.log" 2>&1 &
PIDS+=($!)
wait_for 10 grep -q ready "$W/ws.log"
ok $? "the websockets echo server listens on port $WS"

MQ=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type all\n' "$MQ" >"$W/m.conf"
mosquitto -c "$W/m.conf" 2>"$W/mosquitto.log" &
PIDS+=($!)
wait_for 5 mosquitto_pub -h 127.0.0.1 -p "$MQ" -t ready -m x
ok $? "mosquitto listens on port $MQ"

cat >"$W/policy.json" <<EOF
{
  "release": "1", "product": "proxy-protocols", "schema-version": 1,
  "retry": [{"once": {"backoff": [200], "conceal": 1, "jitterpc": 0}},
            {"patient": {"backoff": [200], "conceal": 100, "jitterpc": 0}}],
  "certs": [{"testca": "file:$W/ca.pem"}],
  "trust_stores": [{"name": "test", "stack": ["testca"]}],
  "s": [
    {"big2": {"endpoint": "localhost", "port": $H2, "protocol": "h2", "tls": true,
              "tls_trust_store": "test", "http_url": "big", "retry": "once"}},
    {"huge2": {"endpoint": "localhost", "port": $H2, "protocol": "h2", "tls": true,
               "tls_trust_store": "test", "http_url": "huge", "retry": "once",
               "proxy_buflen": 32768}},
    {"post2": {"endpoint": "localhost", "port": $H2, "protocol": "h2", "tls": true,
               "tls_trust_store": "test", "http_method": "POST", "http_url": "post",
               "retry": "once", "metadata": [{"bodyfile": "X-Body-File:"}]}},
    {"echo2": {"endpoint": "localhost", "port": $H2, "protocol": "h2", "tls": true,
               "tls_trust_store": "test", "http_url": "echo", "retry": "once",
               "metadata": [{"xtest": "X-Test:"}, {"xecho": "X-Echo:"}]}},
    {"wstext": {"endpoint": "ws://127.0.0.1:$WS/chat", "ws_subprotocol": "chat.v1",
                "retry": "once"}},
    {"wsbin": {"endpoint": "ws://127.0.0.1:$WS/chat", "ws_subprotocol": "chat.v1",
               "ws_binary": true, "retry": "once"}},
    {"wscut": {"endpoint": "ws://127.0.0.1:$WSCUT/chat", "ws_subprotocol": "chat.v1",
               "retry": "patient"}},
    {"wsclose": {"endpoint": "ws://127.0.0.1:$WSCLOSE", "retry": "once"}},
    {"mq": {"endpoint": "mqtt://127.0.0.1:$MQ", "mqtt_topic": "px/out",
            "mqtt_subscribe": "px/in/#", "mqtt_qos": 1, "mqtt_clean_start": true,
            "retry": "once", "metadata": [{"topic": ""}]}}
  ]
}
EOF
"$SMDAGENT" --socket "$S" --no-system-policy --policy "$W/policy.json" \
    --log-level info >>"$W/agent.log" 2>&1 &
AGENT=$!
wait_for 5 test -S "$S"
ok $? "the agent listens"

# h2: 1 MiB through smdctl stream.
"$SMDCTL" -s "$S" stream big2 --states >"$W/big.out" 2>"$W/big.err"
is $? 0 "h2: smdctl stream big2 exits 0"
cmp -s "$W/big.out" "$W/www/big"
ok $? "h2: it printed the exact 1 MiB body"
grep -q '^QOS_ACK_REMOTE 200$' "$W/big.err"
ok $? "h2: --states shows QOS_ACK_REMOTE 200"
wait_for 5 grep -q '^HTTP/2.0 GET /big 200$' "$W/access.log"
ok $? "h2: nginx served it over HTTP/2.0"

# h2: a 1 MiB POST, with a length (a file) and without (stdin).
"$SMDCTL" -s "$S" stream post2 --data "$W/upload" >"$W/post.out" 2>"$W/post.err"
is $? 0 "h2: smdctl stream post2 --data FILE exits 0"
P=$(cat "$W/post.out")
[ -n "$P" ] && cmp -s "$P" "$W/upload"
ok $? "h2: nginx received the 1 MiB POST byte for byte"
"$SMDCTL" -s "$S" stream post2 --data - <"$W/upload" >"$W/post-stdin.out" 2>/dev/null
is $? 0 "h2: the same from stdin (no length)"
P2=$(cat "$W/post-stdin.out")
[ -n "$P2" ] && [ "$P2" != "$P" ] && cmp -s "$P2" "$W/upload"
ok $? "h2: and it arrived byte for byte"
is "$(grep -c '^HTTP/2.0 POST /post 200$' "$W/access.log")" 2 "h2: both POSTs went over HTTP/2.0"

# h2: metadata both ways, through libsmd.
"$PROXY_CLIENT" "$S" echo2 meta xtest=hello-h2 xecho >"$W/echo.out" 2>"$W/echo.err"
is $? 0 "h2: a libsmd client fetches echo2 with metadata"
grep -q '^xecho=hello-h2$' "$W/echo.err"
ok $? "h2: the client's metadata became x-test, and x-echo came back as metadata"

# h2: examples/stream-get.
"$STREAM_GET" big2 "$S" >"$W/get.out" 2>/dev/null
is $? 0 "h2: examples/stream-get big2 exits 0"
cmp -s "$W/get.out" "$W/www/big"
ok $? "h2: and wrote the exact body"

# h2: the onward stream's send credit reaches the client (TXCR_UPDATE).
"$PROXY_CLIENT" "$S" post2 credit 1048576 >/dev/null 2>"$W/credit.err"
is $? 0 "h2: a libsmd client POSTs 1 MiB"
MAX=$(sed -n 's/^credits: .* max \(-*[0-9]*\)$/\1/p' "$W/credit.err")
DISTINCT=$(sed -n 's/^credits: \([0-9]*\) distinct.*/\1/p' "$W/credit.err")
diag "credits reported: ${DISTINCT:-?} distinct values, max ${MAX:-?}"
[ "${MAX:--1}" -gt 0 ]
ok $? "h2: the send credit was reported, above 0"
[ "${DISTINCT:-0}" -ge 2 ]
ok $? "h2: and it changed while the body was sent"

# h2 flow control: a client that stops reading during a 100 MiB download.
# The agent holds at most proxy_buflen for the client plus the h2 stream's
# receive window (256 KiB, opened only as the proxy takes bytes); the constant
# is the agent's own allocations (more under a sanitizer).
stalled_download huge2
kill -0 $HUGE 2>/dev/null
ok $? "h2: the download is stalled while the client does not read"
GROWTH=$(((RSS2 > RSS1 ? RSS2 : RSS1) - RSS0))
diag "agent VmRSS: ${RSS0} KiB before, ${RSS1} KiB and ${RSS2} KiB while stalled (+${GROWTH} KiB; proxy_buflen 32 KiB, h2 window 256 KiB)"
[ "$GROWTH" -le $((32 + 256 + SLACK)) ]
ok $? "h2: the agent grew by at most proxy_buflen + the h2 window + $SLACK KiB, also 2 s later"
SUM=$(sha256sum <&7 | cut -d' ' -f1)
exec 7<&-
wait $HUGE
is $? 0 "h2: when the client reads again the download completes"
is "$SUM" "$(sha256sum <"$W/www/huge" | cut -d' ' -f1)" "h2: byte-exact (sha256 of 100 MiB)"

# ws: messages around the 1380-byte chunking, up to 64 KiB, byte-exact.
SIZES="0 1 1379 1380 1381 2760 2761 16384 16385 65536"
for MODE in text binary; do
    ST=wstext
    [ $MODE = binary ] && ST=wsbin
    # shellcheck disable=SC2086
    "$PROXY_CLIENT" "$S" $ST ws $MODE $SIZES >/dev/null 2>"$W/ws-$MODE.err"
    is $? 0 "ws $MODE: a libsmd client's messages come back"
    n=0
    for SIZE in $SIZES; do
        grep -q "^echo $n: $SIZE bytes in [0-9]* pieces$" "$W/ws-$MODE.err" || break
        n=$((n + 1))
    done
    is $n 10 "ws $MODE: each message byte-exact, one SOM and one EOM, in pieces of 1380 or less"
    PIECES=$(sed -n 's/^echo 9: 65536 bytes in \([0-9]*\) pieces$/\1/p' "$W/ws-$MODE.err")
    [ "${PIECES:-0}" -ge 48 ]
    ok $? "ws $MODE: 64 KiB came in ${PIECES:-?} pieces (at least 48 of 1380 bytes)"
done

# ws: the server's close reaches the client as DISCONNECTED with its code.
"$PROXY_CLIENT" "$S" wsclose disconnect >/dev/null 2>"$W/wsclose.err"
is $? 0 "ws: a libsmd client sees the server's close"
is "$(grep '^state' "$W/wsclose.err" | tr '\n' ' ')" \
    "state CREATING 0 state CONNECTING 0 state CONNECTED 0 state DISCONNECTED 4001 state DESTROYING 0 " \
    "ws: every state relayed in order, DISCONNECTED with the close code 4001"

# ws: a message cut by a dropped connection is not sent in part on the next one.
/usr/bin/python3 "$WS_SERVER" "echo:$WSCUT" >"$W/wscut.log" 2>&1 &
WSC=$!
wait_for 10 grep -q ready "$W/wscut.log"
"$PROXY_CLIENT" "$S" wscut ws-cut >/dev/null 2>"$W/wscut.err" &
CUT=$!
PIDS+=($CUT)
wait_for 20 grep -q '^half-sent$' "$W/wscut.err"
ok $? "ws: the client sent half a message"
kill $WSC
wait $WSC 2>/dev/null
wait_for 10 grep -q '^state DISCONNECTED' "$W/wscut.err"
ok $? "ws: the server went away in the middle of it: DISCONNECTED"
/usr/bin/python3 "$WS_SERVER" "echo:$WSCUT" >"$W/wscut2.log" 2>&1 &
PIDS+=($!)
wait $CUT
is $? 0 "ws: the stream connected again and a message came back"
grep -q '^first echo: after the cut$' "$W/wscut.err"
ok $? "ws: the first echo is the next whole message, not the cut message's tail"

# mqtt: a publish seen by mosquitto_sub, a message from mosquitto_pub received.
head -c 65536 /dev/urandom >"$W/mq-out"
head -c 100000 /dev/urandom >"$W/mq-in"
mosquitto_sub -h 127.0.0.1 -p "$MQ" -i pxsub -t px/out -C 1 -W 30 -N >"$W/sub.out" 2>"$W/sub.err" &
SUB=$!
PIDS+=($SUB)
wait_for 5 grep -q 'Sending SUBACK to pxsub' "$W/mosquitto.log"
"$PROXY_CLIENT" "$S" mq mqtt "$W/mq-out" >"$W/mq.out" 2>"$W/mq.err" &
MQC=$!
PIDS+=($MQC)
wait_for 20 grep -q '^published$' "$W/mq.err"
ok $? "mqtt: the libsmd client connected and its QoS 1 publish was acknowledged"
wait $SUB
is $? 0 "mqtt: mosquitto_sub got a message on px/out"
cmp -s "$W/sub.out" "$W/mq-out"
ok $? "mqtt: the 64 KiB payload, byte for byte"
mosquitto_pub -h 127.0.0.1 -p "$MQ" -t px/in/a -q 1 -f "$W/mq-in"
ok $? "mqtt: mosquitto_pub sends 100000 bytes to px/in/a"
wait $MQC
is $? 0 "mqtt: the libsmd client received a message"
cmp -s "$W/mq.out" "$W/mq-in"
ok $? "mqtt: byte for byte"
grep -q '^received 100000 topic=px/in/a$' "$W/mq.err"
ok $? "mqtt: with its topic as metadata"
grep -q '^credit [1-9][0-9]*$' "$W/mq.err"
ok $? "mqtt: the send credit was reported to the client, above 0"

# mqtt through smdctl stream: one message published, done at its PUBACK.
printf 'from smdctl' >"$W/mq-small"
mosquitto_sub -h 127.0.0.1 -p "$MQ" -i pxsub2 -t px/out -C 1 -W 30 -N >"$W/sub2.out" 2>/dev/null &
SUB=$!
PIDS+=($SUB)
wait_for 5 grep -q 'Sending SUBACK to pxsub2' "$W/mosquitto.log"
"$SMDCTL" -s "$S" stream mq --data "$W/mq-small" --states --timeout 30 >/dev/null 2>"$W/mq-smdctl.err"
is $? 0 "mqtt: smdctl stream mq --data exits 0"
grep -q '^QOS_ACK_REMOTE ' "$W/mq-smdctl.err"
ok $? "mqtt: after the PUBACK (QOS_ACK_REMOTE)"
wait $SUB
cmp -s "$W/sub2.out" "$W/mq-small"
ok $? "mqtt: mosquitto_sub got it"

kill "$AGENT"
wait "$AGENT"
is $? 0 "the agent exits cleanly"
AGENT=
grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$W/agent.log" >&2
ok $((!$?)) "no sanitizer report in the agent's log"
done_testing
