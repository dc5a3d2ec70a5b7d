#!/usr/bin/env bash
# Captive portal detection on a network of its own: a "gateway" namespace runs
# nginx, a "device" namespace runs the agent with a default route to it and a
# private /etc/hosts (and resolv.conf) naming the probe host. A subscriber
# asserts the retained cpd message for each kind of network: 204, redirect,
# 200 page, 404, RFC 8908 documents, nginx stopped, packets dropped, an
# unknown host name, a portal that turns into a 204 (found by a cpdcheck
# message and by the backoff re-check), the default route removed and
# re-added, and an IPv6-only network. smdctl captive check exits 0, 3 or 4
# with the verdict; a cpdcheck message from a participant that may not publish
# NETWORK triggers nothing.
set -u
. "$(dirname "$0")/../shell/tap.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}"
PY=/usr/bin/python3

[ "$(id -u)" = 0 ] || skip_all "needs root (ip netns, mount)"
for p in ip nginx curl nft setpriv unshare; do
    command -v "$p" >/dev/null || skip_all "needs $p"
done

GW=smdgw$$
DEV=smddev$$
W=$(mktemp -d)
S=$W/ss.sock
NGX=$W/nginx
AGENT=
MON=
NGINX=
cleanup() {
    [ -n "$MON" ] && kill "$MON" 2>/dev/null
    [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null
    [ -n "$NGINX" ] && kill "$NGINX" 2>/dev/null
    wait 2>/dev/null
    ip netns del "$DEV" 2>/dev/null
    ip netns del "$GW" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ctl() { "$SMDCTL" -s "$S" "$@"; }
gw() { ip netns exec "$GW" "$@"; }

# ---- the network ------------------------------------------------------------------------
# No IPv6 link-local addresses: one appearing seconds later would be an address-added trigger.
ip netns add "$GW" && ip netns add "$DEV" &&
    ip netns exec "$GW" sysctl -qw net.ipv6.conf.default.addr_gen_mode=1 &&
    ip netns exec "$DEV" sysctl -qw net.ipv6.conf.default.addr_gen_mode=1 &&
    ip -n "$GW" link set lo up && ip -n "$DEV" link set lo up &&
    ip -n "$GW" link add name gw0 type veth peer name dev0 netns "$DEV" &&
    ip -n "$GW" addr add 10.88.0.1/24 dev gw0 &&
    ip -n "$GW" addr add fd00:88::1/64 dev gw0 nodad &&
    ip -n "$DEV" addr add 10.88.0.2/24 dev dev0 &&
    ip -n "$DEV" addr add fd00:88::2/64 dev dev0 nodad &&
    ip -n "$GW" link set gw0 up && ip -n "$DEV" link set dev0 up &&
    ip -n "$DEV" route add default via 10.88.0.1
ok $? "gateway and device namespaces joined by a veth pair, IPv4 default route on the device"

printf '127.0.0.1 localhost\n::1 localhost\n10.88.0.1 probe.test\nfd00:88::1 probe.test\n' >"$W/hosts"
cp "$W/hosts" "$W/hosts.good"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$W/hosts.bad"
# Names not in the hosts file fail at once: nothing answers DNS on the device's loopback.
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$W/resolv.conf"

# ---- nginx in the gateway -----------------------------------------------------------------
mkdir -p "$NGX"
cat >"$NGX/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $NGX/client_body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    server {
        listen 80;
        listen [::]:80;
        include $NGX/mode.conf;
    }
}
EOF
# mode NAME: what the gateway answers to /generate_204 and /api (RFC 8908).
mode() {
    case $1 in
    204) printf 'location = /generate_204 { return 204; }\n' ;;
    302) printf 'location = /generate_204 { return 302 http://portal.test/login; }\n' ;;
    200) printf 'location = /generate_204 { default_type text/html; return 200 "portal page\\n"; }\n' ;;
    404) printf 'location = /generate_204 { return 404; }\n' ;;
    api-true)
        printf 'location = /generate_204 { return 204; }\n'
        printf 'location = /api { default_type application/captive+json; return 200 %s; }\n' \
            "'{\"captive\":true,\"user-portal-url\":\"https://portal.test/login\",\"seconds-remaining\":300}'"
        ;;
    api2-true) # only at /api2, which the policy does not name
        printf 'location = /generate_204 { return 204; }\n'
        printf 'location = /api2 { default_type application/captive+json; return 200 %s; }\n' \
            "'{\"captive\":true,\"user-portal-url\":\"https://portal.test/login\"}'"
        ;;
    api-false)
        printf 'location = /generate_204 { return 302 http://portal.test/login; }\n'
        printf 'location = /api { default_type application/captive+json; return 200 %s; }\n' \
            "'{\"captive\":false}'"
        ;;
    esac >"$NGX/mode.conf"
    printf 'location / { return 404; }\n' >>"$NGX/mode.conf"
}
served() { [ "$(gw curl -s -o /dev/null -w '%{http_code}' "http://10.88.0.1/$1")" = "$2" ]; }
nginx_start() {
    ip netns exec "$GW" nginx -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" &
    NGINX=$!
    wait_for 5 gw curl -s -o /dev/null http://10.88.0.1/
}
nginx_stop() {
    kill "$NGINX" 2>/dev/null
    wait "$NGINX" 2>/dev/null
    NGINX=
}
# switch MODE PATH STATUS: reload nginx with MODE and wait until PATH answers STATUS and
# the old worker is gone (until it is, it may still accept connections with the old mode).
switch() {
    local old
    old=$(pgrep -P "$NGINX")
    mode "$1"
    gw nginx -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" -s reload &&
        wait_for 5 sh -c "! kill -0 $old" && wait_for 5 served "$2" "$3"
}

mode 302
nginx_start
wait_for 5 served generate_204 302
ok $? "nginx serves the gateway (a 302 portal)"

# ---- the agent in the device --------------------------------------------------------------
cat >"$W/policy.json" <<'EOF'
{
  "release": "captive-test", "product": "smdagent", "schema-version": 1,
  "s": [
    {"captive_portal_detect": {
      "endpoint": "probe.test", "port": 80, "protocol": "h1", "http_method": "GET",
      "http_url": "generate_204", "http_expect": 204, "http_fail_redirect": true,
      "metadata": [{"location": "Location"}], "timeout_ms": 2000,
      "cpd_interval_s": 60, "cpd_timeout_s": 2, "cpd_ignore_link_kinds": ["loopback"]}},
    {"captive_portal_api": {
      "endpoint": "probe.test", "port": 80, "protocol": "h1", "http_method": "GET",
      "http_url": "api"}}
  ]
}
EOF
ip netns exec "$DEV" unshare -m sh -c "mount --bind '$W/hosts' /etc/hosts &&
    mount --bind '$W/resolv.conf' /etc/resolv.conf &&
    exec '$SMDAGENT' --no-system-policy --policy '$W/policy.json' --socket '$S'" \
    >"$W/agent.log" 2>&1 &
AGENT=$!
wait_for 5 test -S "$S"
ok $? "the agent runs in the device namespace"

"$SMDCTL" -s "$S" monitor --class network --json >"$W/mon.out" 2>"$W/mon.err" &
MON=$!

# cpd_count: how many cpd messages the subscriber has seen.
cpd_count() { grep -c '"type":"cpd"' "$W/mon.out"; }
# cpd_after N: the first cpd message after the first N, once it is there.
cpd_after() {
    local n=$1 deadline=$((SECONDS + ${2:-6}))
    until [ "$(cpd_count)" -gt "$n" ]; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.02
    done
    grep '"type":"cpd"' "$W/mon.out" | sed -n "$((n + 1))p"
}
# matches LINE EXPR: the cpd message LINE (monitor --json) satisfies a python expression on m.
matches() {
    "$PY" -c 'import json,sys; m=json.loads(sys.argv[1])["payload"]; sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$1" "$2" 2>/dev/null
}
# expect_cpd N EXPR NAME [SECONDS]: a cpd message after the first N satisfies EXPR within
# SECONDS (default 6). Checks already under way may publish first: those are passed over.
expect_cpd() {
    local n=$1 expr=$2 name=$3 deadline line found=1
    deadline=$((SECONDS + ${4:-6}))
    while [ $SECONDS -lt $deadline ]; do
        line=$(cpd_after "$n" 1) || continue
        n=$((n + 1))
        if matches "$line" "$expr"; then
            found=0
            break
        fi
    done
    ok $found "$name"
    [ -n "${line:-}" ] && diag "$line"
}
# wait_cpd EXPR SECONDS NAME: a cpd message from now on satisfies EXPR.
wait_cpd() { expect_cpd "$(cpd_count)" "$1" "$3" "$2"; }
status_trigger() { ctl captive status --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("trigger"))'; }
check_trigger() { ctl publish --class network '{"trigger":"cpdcheck"}'; }

expect_cpd 0 'm["result"]=="Captive" and m["portal"]=="http://portal.test/login" and m["ipv4"]=="Captive" and m["ipv6"] is None' \
    "startup: a 302 is Captive with the Location as the portal URL"
ctl captive check --timeout 5 >"$W/check.out"
is $? 3 "smdctl captive check exits 3 for Captive"
grep -q "portal: http://portal.test/login" "$W/check.out"
ok $? "and prints the portal URL"

switch 200 generate_204 200
n=$(cpd_count)
check_trigger
expect_cpd "$n" 'm["result"]=="Captive" and "portal" not in m' "a 200 page is Captive (a cpdcheck message triggered the check)"

switch 404 generate_204 404
n=$(cpd_count)
check_trigger
expect_cpd "$n" 'm["result"]=="Captive"' "a 404 is Captive"

switch api-true api 200
n=$(cpd_count)
check_trigger
expect_cpd "$n" 'm["result"]=="Captive" and m["portal"]=="https://portal.test/login" and m.get("seconds_remaining")==300' \
    "RFC 8908 captive true: Captive with the user-portal-url and seconds-remaining (the probe alone said OK)"

switch api-false api 200
n=$(cpd_count)
check_trigger
expect_cpd "$n" 'm["result"]=="OK"' "RFC 8908 captive false: OK (the probe alone said Captive)"

# A participant that may not publish NETWORK cannot trigger a check.
chmod 755 "$W" && chmod 666 "$S"
# Let checks already asked for finish first: no new cpd message for a second.
n=-1
while [ "$n" != "$(cpd_count)" ]; do
    n=$(cpd_count)
    sleep 1
done
setpriv --reuid=65534 --regid=65534 --clear-groups "$SMDCTL" -s "$S" publish --class network \
    '{"trigger":"cpdcheck"}' 2>/dev/null
is $? 1 "nobody's cpdcheck message is refused"
sleep 1
is "$(cpd_count)" "$n" "and no check followed it"

# A portal that turns into a 204: found by the backoff re-check without a trigger.
switch 302 generate_204 302
n=$(cpd_count)
check_trigger
# From OK the verdict needs two checks in a row that agree (the second one after 1 s).
wait_cpd 'm["result"]=="Captive"' 5 "OK to Captive takes a second, agreeing check"
switch 204 generate_204 204
t0=$SECONDS
wait_cpd 'm["result"]=="OK"' 6 "with no trigger, the backoff re-check finds the portal gone (OK)"
is "$(status_trigger)" backoff "and that check was the backoff re-check"

# And found by a cpdcheck message.
switch 404 generate_204 404
check_trigger
wait_cpd 'm["result"]=="Captive"' 5 "back to a portal"
switch 204 generate_204 204
n=$(cpd_count)
check_trigger
expect_cpd "$n" 'm["result"]=="OK"' "the portal turns into a 204: a cpdcheck message gives OK at once" 2
is "$(status_trigger)" message "and that check was the message's"
ctl captive check --timeout 5 >/dev/null
is $? 0 "smdctl captive check exits 0 for OK"

nginx_stop
ctl captive check --timeout 5 >/dev/null
is $? 4 "nginx stopped (refused): smdctl captive check exits 4 for No internet"
wait_cpd 'm["result"]=="No internet"' 5 "nginx stopped: the published verdict becomes No internet"

# Dropped packets: No internet within the probe timeout (2 s) + 1 s.
nginx_start
gw nft -f - <<'EOF'
table inet captive_test {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 80 drop
    }
}
EOF
ok $? "an nftables rule in the gateway drops the probes"
t0=$(date +%s%N)
ctl captive check --timeout 5 >/dev/null
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
is $rc 4 "packets dropped: smdctl captive check exits 4"
[ "$ms" -le 3000 ]
ok $? "within the timeout + 1 s (${ms} ms)"
n=$(cpd_count)
t0=$(date +%s%N)
mono=$("$PY" -c 'import time; print(int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))')
check_trigger
expect_cpd "$n" "m['result']=='No internet' and m['checked_us'] > $mono" \
    "packets dropped: the cpd message of a check started by a cpdcheck message says No internet" 4
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -le 3000 ]
ok $? "within the timeout + 1 s of the trigger (${ms} ms)"
gw nft delete table inet captive_test

# An unknown host name.
cp "$W/hosts.bad" "$W/hosts"
ctl captive check --timeout 5 >/dev/null
is $? 4 "unknown probe host name: No internet"
cp "$W/hosts.good" "$W/hosts"
n=$(cpd_count)
check_trigger
expect_cpd "$n" 'm["result"]=="OK"' "the name resolves again: OK"

# The default route removed and re-added.
n=$(cpd_count)
ip -n "$DEV" route del default
expect_cpd "$n" 'm["result"]=="No internet" and m["ipv4"] is None' "default route removed: No internet at once"
n=$(cpd_count)
ip -n "$DEV" route add default via 10.88.0.1
expect_cpd "$n" 'm["result"]=="OK" and m["ipv4"]=="OK"' "default route re-added: a new check finds OK"
is "$(status_trigger)" route "started by the route"

# IPv6 only.
n=$(cpd_count)
ip -n "$DEV" route del default && ip -n "$DEV" addr del 10.88.0.2/24 dev dev0
expect_cpd "$n" 'm["result"]=="No internet"' "IPv4 gone: No internet"
n=$(cpd_count)
ip -n "$DEV" -6 route add default via fd00:88::1
expect_cpd "$n" 'm["result"]=="OK" and m["ipv6"]=="OK" and m["ipv4"] is None' "IPv6-only with a v6 gateway: OK"

ctl captive check --api http://probe.test/api2 --timeout 5 >/dev/null
is $? 0 "smdctl captive check --api URL with no document there: the probe's OK"
switch api2-true api2 200
ctl captive check --timeout 5 >/dev/null
is $? 0 "a document the policy does not name changes nothing"
ctl captive check --api http://probe.test/api2 --timeout 5 >"$W/check.out"
is $? 3 "smdctl captive check --api URL: the document says captive (exit 3)"
grep -q "portal: https://portal.test/login" "$W/check.out"
ok $? "with its user-portal-url"

ctl captive check --timeout nope 2>/dev/null
is $? 2 "a bad --timeout is a usage error (exit 2)"

kill "$AGENT"
wait "$AGENT"
is $? 0 "the agent exits cleanly"
AGENT=
if grep -qiE "leak|sanitizer|runtime error" "$W/agent.log"; then
    ok 1 "the agent's log is clean"
    sed 's/^/# /' "$W/agent.log" | head -40
else
    ok 0 "the agent's log is clean"
fi
done_testing
