#!/usr/bin/env bash
# Netlink in a network namespace of our own: the agent runs inside it; a veth
# pair is created, set up, given addresses and default routes, loses its
# carrier and is deleted, and a subscriber sees each message in order with the
# right fields. The DHCP state and `smdctl wait --online` follow the default
# route. Then a burst of 10,000 link events: the published state (status and
# the retained per-link topics) ends equal to the kernel's.
set -u
. "$(dirname "$0")/../shell/tap.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}"
PY=/usr/bin/python3

[ "$(id -u)" = 0 ] || skip_all "needs root (ip netns)"
command -v ip >/dev/null || skip_all "needs iproute2"

NS=smdnl$$
W=$(mktemp -d)
S=$W/ss.sock
AGENT=
MON=
cleanup() {
    [ -n "$MON" ] && kill "$MON" 2>/dev/null
    [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null
    wait 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
ctl() { "$SMDCTL" -s "$S" "$@"; }
nsip() { ip -n "$NS" "$@"; }

ip netns add "$NS" && nsip link set lo up &&
    ip netns exec "$NS" sysctl -qw net.ipv6.conf.default.addr_gen_mode=1
ok $? "a network namespace (no IPv6 link-local addresses, to keep the sequence short)"

# A small receive buffer, so that the burst below overruns it (ENOBUFS, resync).
ip netns exec "$NS" env SMD_NETLINK_RCVBUF=4096 "$SMDAGENT" --socket "$S" --no-system-policy --time-sync-wait 1 \
    >"$W/agent.log" 2>&1 &
AGENT=$!
wait_for 5 test -S "$S"
ok $? "the agent runs inside the namespace"

ctl wait --timeout 0.5 2>"$W/wait.err"
is $? 1 "no default route: smdctl wait times out (exit 1)"
grep -q "the agent is at IFACE_COLDPLUG" "$W/wait.err"
ok $? "saying the agent is at IFACE_COLDPLUG: $(cat "$W/wait.err")"
ctl wait --online --timeout 0.3 2>/dev/null
is $? 1 "smdctl wait --online times out too"

"$SMDCTL" -s "$S" monitor --class network --json >"$W/mon.out" 2>"$W/mon.err" &
MON=$!
wait_for 5 sh -c "grep -q '\"if\":\"lo\"' '$W/mon.out'"
ok $? "a subscriber joins and first gets the retained state of lo"

# seen PATTERN: wait until the subscriber printed a line matching it.
seen() { wait_for 5 grep -q -- "$1" "$W/mon.out"; }

nsip link add name ve0 type veth peer name ve1 && seen '"linkadded","if":"ve1"'
ok $? "veth pair created"
nsip link set ve0 up && seen '"linkup","if":"ve0"'
ok $? "ve0 set up"
nsip link set ve1 up && seen '"carrierup","if":"ve0"'
ok $? "ve1 set up: ve0 gains carrier"
nsip addr add 10.77.0.2/24 dev ve0 && seen '"addr":"10.77.0.2"'
ok $? "IPv4 address added"
nsip addr add fd00:77::2/64 dev ve0 nodad && seen '"addr":"fd00:77::2"'
ok $? "IPv6 address added"
nsip route add default via 10.77.0.1 && seen '"routeadded","family":"inet"'
ok $? "IPv4 default route added"
ctl wait --timeout 5
is $? 0 "with a usable default route the agent reaches OPERATIONAL"
# The builtin policy probes for a captive portal, and nothing answers in here.
ctl wait --online --timeout 1 2>/dev/null
is $? 1 "captive portal detection is on and finds no internet: smdctl wait --online still waits"
seen '"type":"connectivity".*"route":true,"cpd":true'
ok $? "the connectivity message says detection is on (cpd true)"
nsip -6 route add default via fd00:77::1 && seen '"routeadded","family":"inet6"'
ok $? "IPv6 default route added"
nsip route replace default via 10.77.0.3 dev ve0 && seen '"routechanged"'
ok $? "IPv4 default route changed"
nsip link set ve1 down && seen '"carrierdown","if":"ve0"'
ok $? "peer down: ve0 loses carrier"
seen '"type":"connectivity".*"route":false'
ok $? "connectivity reports no usable route (after OPERATIONAL, on NETWORK)"
ctl --json status | grep -q '"state":"OPERATIONAL"'
ok $? "the system state does not walk back"
nsip link del ve0 && seen '"linkremoved","if":"ve1"'
ok $? "veth pair deleted"
sleep 0.2

"$PY" - "$W/mon.out" <<'PYEOF'
import json, sys
msgs = [json.loads(l)["payload"] for l in open(sys.argv[1]) if l.strip()]
expect = [
    {"type": "linkadded", "if": "ve1", "admin": "down", "carrier": False},
    {"type": "linkadded", "if": "ve0", "admin": "down", "carrier": False},
    {"type": "linkup", "if": "ve0"},
    {"type": "linkup", "if": "ve1"},
    {"type": "carrierup", "if": "ve0"},
    {"type": "addradded", "if": "ve0", "family": "inet", "addr": "10.77.0.2", "prefix": 24},
    {"type": "link", "if": "ve0", "admin": "up", "carrier": True, "addrs": ["10.77.0.2/24"]},
    {"type": "addradded", "if": "ve0", "family": "inet6", "addr": "fd00:77::2", "prefix": 64},
    {"type": "routeadded", "family": "inet", "gw": "10.77.0.1", "if": "ve0", "metric": 0},
    {"type": "connectivity", "route": True},
    {"type": "routeadded", "family": "inet6", "gw": "fd00:77::1", "if": "ve0", "metric": 1024},
    {"type": "routechanged", "family": "inet", "gw": "10.77.0.3", "old_gw": "10.77.0.1", "if": "ve0"},
    {"type": "linkdown", "if": "ve1"},
    {"type": "carrierdown", "if": "ve0"},
    {"type": "connectivity", "route": False},
    {"type": "routeremoved", "family": "inet", "if": "ve0"},
    {"type": "addrremoved", "if": "ve0", "addr": "10.77.0.2"},
    {"type": "linkremoved", "if": "ve0"},
]
# ve0 and ve1 come in one burst; the two linkadded may come in either order.
pos, bad, n = 0, 0, 0
for e in expect:
    n += 1
    found = None
    for i in range(pos, len(msgs)):
        m = msgs[i]
        if isinstance(m, dict) and all(m.get(k) == v for k, v in e.items()):
            found = i
            break
    if found is None and e["type"] == "linkadded":
        found = next((i for i, m in enumerate(msgs) if isinstance(m, dict) and all(m.get(k) == v for k, v in e.items())), None)
        if found is not None:
            print(f"#   seen (same burst): {json.dumps(e)}")
            continue
    if found is None:
        bad += 1
        print(f"#   MISSING or out of order: {json.dumps(e)}")
    else:
        print(f"#   in order: {json.dumps(e)}")
        pos = found + 1
# ve1 goes in the same deletion, before or after ve0 (one flush or two).
tail = [i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("type") == "linkremoved" and m.get("if") == "ve1"]
route_gone = [i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("type") == "routeremoved"]
if not tail or not route_gone or tail[0] < route_gone[0]:
    bad += 1
    print("#   MISSING: linkremoved ve1 after the route went")
sys.exit(1 if bad else 0)
PYEOF
ok $? "the subscriber saw each message in order with the right fields"
idx=$(grep -n '"index":' "$W/mon.out" | head -1)
ok $([ -n "$idx" ]; echo $?) "messages carry the interface index"

# The burst. veth pairs are slow to make here (about 17 ms a pair: 2,500 pairs
# took 43 s), so most of the 10,000+ events come from addresses and admin
# flips: 150 veth pairs made and deleted, 2,000 addresses added and 1,990
# removed again, 500 down/up flips of a link whose peer is up.
{
    for i in 1 2 3 4 5; do
        echo "link add name keep$i type veth peer name peer$i"
        echo "link set keep$i up"
    done
    echo "link set peer2 up"
    echo "link set peer3 up"
    for i in $(seq 1 150); do
        echo "link add name b$i type veth peer name p$i"
        echo "link del b$i"
    done
    for i in $(seq 0 1999); do echo "addr add 10.99.$((i / 200)).$((i % 200 + 1))/32 dev keep1"; done
    for i in $(seq 10 1999); do echo "addr del 10.99.$((i / 200)).$((i % 200 + 1))/32 dev keep1"; done
    for i in $(seq 1 500); do
        echo "link set keep2 down"
        echo "link set keep2 up"
    done
} >"$W/burst"
kill "$MON" 2>/dev/null
wait "$MON" 2>/dev/null
MON=
"$SMDCTL" -s "$S" monitor --class network --json >"$W/burst.out" 2>/dev/null &
MON=$!
sleep 0.2
t0=$(date +%s%N)
ip -n "$NS" -batch "$W/burst"
ok $? "ip -batch ran $(wc -l <"$W/burst") commands"
t1=$(date +%s%N)
# Settle: the agent's view must match the kernel's.
settled=1
for _ in $(seq 1 100); do
    ctl --json status >"$W/status.json"
    "$PY" - "$W/status.json" "$(nsip -j link)" "$(nsip -j addr)" <<'PYEOF' && settled=0 && break
import json, sys
st = json.load(open(sys.argv[1]))
addrs = {}
for l in json.loads(sys.argv[3]):
    addrs[l["ifname"]] = sorted("%s/%d" % (a["local"], a["prefixlen"]) for a in l.get("addr_info", []))
kernel = {l["ifname"]: ("UP" in l["flags"], "LOWER_UP" in l["flags"], addrs.get(l["ifname"], [])) for l in json.loads(sys.argv[2])}
agent = {l["if"]: (l["admin"] == "up", l["carrier"], sorted(l["addrs"])) for l in st["links"]}
sys.exit(0 if agent == kernel else 1)
PYEOF
    sleep 0.05
done
t2=$(date +%s%N)
is $settled 0 "after the burst, status lists exactly the kernel's links, admin, carrier and addresses"
grep -q '"resyncs":[1-9]' "$W/status.json"
ok $? "the burst overran the (deliberately small) netlink buffer and the agent resynchronised"
grep -q '"if":"keep3","index":[0-9]*,"admin":"up","carrier":true' "$W/status.json"
ok $? "keep3 is up with carrier (its peer is up)"
diag "burst: ip took $(((t1 - t0) / 1000000)) ms; the agent's state matched $(((t2 - t0) / 1000000)) ms after the start"
diag "netlink: $(grep -o '"netlink":{[^}]*}' "$W/status.json")"
diag "bus: $(grep -o '"bus":{[^}]*}' "$W/status.json")"
kill "$MON" 2>/dev/null
wait "$MON" 2>/dev/null
MON=
diag "a subscriber during the burst got $(wc -l <"$W/burst.out") messages"

# A late joiner's retained link topics are exactly the links that exist.
ctl monitor --class network --json --timeout 0.5 >"$W/late.out" 2>/dev/null
"$PY" - "$W/late.out" "$(nsip -j link)" <<'PYEOF'
import json, sys
names = sorted(json.loads(l)["payload"]["if"] for l in open(sys.argv[1])
               if l.strip() and json.loads(l)["payload"].get("type") == "link")
kernel = sorted(l["ifname"] for l in json.loads(sys.argv[2]))
print("# retained:", " ".join(names))
sys.exit(0 if names == kernel else 1)
PYEOF
ok $? "a late joiner's retained link topics are exactly the kernel's links"

kill "$AGENT"
wait "$AGENT"
is $? 0 "the agent exits 0 on SIGTERM"
AGENT=
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$W/agent.log"; then
    ok 1 "no sanitizer report in the agent's log"
    tail -40 "$W/agent.log" | sed 's/^/# /'
else
    ok 0 "no sanitizer report in the agent's log"
fi
done_testing
