#!/usr/bin/env bash
# The system state machine at startup: a subscriber connected before the agent
# began (socket activation) sees every state in order; one that joins after sees
# only the current state (retained). With no system bus and netlink refused the
# agent still reaches OPERATIONAL through the no-op paths, as root and as nobody.
set -u
. "$(dirname "$0")/../shell/tap.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}" "${HELPER_DENY_NETLINK:?}"

[ "$(id -u)" = 0 ] || skip_all "needs root (network namespace, setpriv)"
command -v systemd-socket-activate >/dev/null || skip_all "systemd-socket-activate is not installed"

NS=smdst$$
W=$(mktemp -d)
chmod 755 "$W"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
ctl() { "$SMDCTL" "$@"; }
NOBUS="DBUS_SYSTEM_BUS_ADDRESS=unix:path=$W/no-bus"
ALL="INITIALIZED IFACE_COLDPLUG DHCP CPD_PRE_TIME TIME_VALID CPD_POST_TIME POLICY_VALID OPERATIONAL"
states() { sed -n 's/.*{"state":"\([A-Z_]*\)"}.*/\1/p' "$1" | tr '\n' ' ' | sed 's/ $//'; }

# A namespace of our own with a link, an address and a default route, so that
# DHCP is reached the same way on every machine.
ip netns add "$NS" && ip -n "$NS" link set lo up &&
    ip -n "$NS" link add name ve0 type veth peer name ve1 &&
    ip -n "$NS" link set ve0 up && ip -n "$NS" link set ve1 up &&
    ip -n "$NS" addr add 10.78.0.2/24 dev ve0 &&
    ip -n "$NS" route add default via 10.78.0.1
ok $? "a network namespace with a default route"

S=$W/ss.sock
if [ "${SMD_NETLINK_BUILT:-1}" = 1 ]; then RUN=(ip netns exec "$NS"); else RUN=(); fi
"${RUN[@]}" systemd-socket-activate -l "$S" -E "$NOBUS" \
    "$SMDAGENT" --socket "$S" --no-system-policy --time-sync-wait 2 >"$W/agent.log" 2>&1 &
PIDS+=($!)
wait_for 5 test -S "$S"
ok $? "the activator listens"
sleep 0.2
pgrep -f "^$SMDAGENT --socket $S" >/dev/null
ok $((!$?)) "no agent runs before a client connects"

# This subscriber connects first: it starts the agent.
ctl -s "$S" monitor --class system_state --count 8 --timeout 15 >"$W/early.out" 2>"$W/early.err"
is $? 0 "the early subscriber gets 8 system states"
is "$(states "$W/early.out")" "$ALL" "every state, in order, from INITIALIZED to OPERATIONAL"

ctl -s "$S" monitor --class system_state --count 2 --timeout 0.7 >"$W/late.out" 2>/dev/null
is $? 1 "a late joiner waiting for 2 messages times out"
is "$(cat "$W/late.out" | sed 's/^[0-9.]* //')" 'system_state {"state":"OPERATIONAL"}' \
    "it got only the retained current state"

ctl -s "$S" wait --timeout 2
is $? 0 "smdctl wait (OPERATIONAL) returns 0 at once"
ctl -s "$S" wait --state DHCP --timeout 2
is $? 0 "smdctl wait --state DHCP: a later state counts as reached"
ctl -s "$S" wait --state NOPE 2>"$W/wait.err"
is $? 2 "an unknown state is a usage error"
grep -q 'unknown state "NOPE"' "$W/wait.err"
ok $? "naming the state"
ctl -s "$S" --json status >"$W/status.json"
if [ "${SMD_LOGIND_BUILT:-1}" = 1 ]; then
    grep -q '"logind":{"state":"no-bus"' "$W/status.json"
    ok $? "no system bus: status says logind no-bus"
    grep -c "info: no system bus\|^smdagent: no system bus" "$W/agent.log" | grep -qx 1
    ok $? "and the agent said so once, at info"
else
    grep -q '"logind":{"state":"disabled"' "$W/status.json"
    ok $? "built without logind: status says logind disabled"
fi
kill "${PIDS[0]}" 2>/dev/null

# Netlink refused (seccomp) and no system bus: the no-op paths, as root.
S2=$W/nn.sock
env "$NOBUS" "$HELPER_DENY_NETLINK" "$SMDAGENT" --socket "$S2" --no-system-policy \
    --time-sync-wait 2 >"$W/nn.log" 2>&1 &
PIDS+=($!)
ctl -s "$S2" wait --timeout 10
is $? 0 "netlink refused, no bus: the agent reaches OPERATIONAL"
ctl -s "$S2" --json status >"$W/nn.json"
grep -q '"netlink":{"state":"unavailable"' "$W/nn.json"
ok $? "status says netlink unavailable"
grep -q '"links":\[\]' "$W/nn.json"
ok $? "and knows no links"
if [ "${SMD_NETLINK_BUILT:-1}" = 1 ]; then
    grep -c "netlink is unavailable" "$W/nn.log" | grep -qx 1
    ok $? "the agent logged the netlink fallback once"
fi

# The same as nobody, in a user and network namespace of its own.
mkdir -m 700 "$W/u" && chown 65534:65534 "$W/u"
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
    env "$NOBUS" "$HELPER_DENY_NETLINK" unshare -rn "$SMDAGENT" --socket "$W/u/ss.sock" \
    --no-system-policy --time-sync-wait 2 >"$W/u.log" 2>&1 &
PIDS+=($!)
wait_for 5 test -S "$W/u/ss.sock"
setpriv --reuid=65534 --regid=65534 --clear-groups "$SMDCTL" -s "$W/u/ss.sock" wait --timeout 10
is $? 0 "as nobody in its own namespaces, netlink refused: OPERATIONAL"

for l in "$W/agent.log" "$W/nn.log" "$W/u.log"; do
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$l"; then
        ok 1 "no sanitizer report in $(basename "$l")"
        sed 's/^/# /' "$l" | tail -30
    else
        ok 0 "no sanitizer report in $(basename "$l")"
    fi
done
done_testing
