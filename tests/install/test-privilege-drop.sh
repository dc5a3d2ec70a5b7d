#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# smdagent started as root with --user smdagent, outside systemd: once its
# socket is bound it runs as user and group smdagent with only CAP_WAKE_ALARM
# (effective, permitted and bounding sets, as /proc/PID/status shows) and
# no_new_privs; the socket stays root:smdagent 0660; and the features still
# work in that mode: status, monitor and publish as root and as a member of
# group smdagent (a non-member cannot even connect), policy reload by smdctl and
# by SIGHUP from files the dropped agent must read itself. Also: an unknown
# user and --user without root fail clearly; the agent started the way the unit
# starts it (setpriv with the unit's user and capabilities) looks the same.
#
# The user comes from the unit's own sysusers.d entry (systemd-sysusers), or
# useradd when sysusers cannot run. It is left in place: creating it is
# idempotent and a system user is harmless on a test machine.
set -u
. "$(dirname "$0")/../shell/tap.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}"
SYSUSERS_CONF=$(realpath "${1:?usage: test-privilege-drop.sh SYSUSERS.conf}")

[ "$(id -u)" = 0 ] || skip_all "needs root (to start the agent as root and drop)"
command -v setpriv >/dev/null || skip_all "setpriv is not installed (package util-linux)"

WAKE_ALARM=0000000800000000 # 1 << 35 (CAP_WAKE_ALARM)
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID LISTEN_FDS LISTEN_PID SMD_SOCKET
W=$(mktemp -d)
chmod 0755 "$W"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

if ! getent passwd smdagent >/dev/null; then
    systemd-sysusers "$SYSUSERS_CONF" >"$W/sysusers.log" 2>&1 ||
        useradd --system --user-group --home-dir /var/lib/smdagent --no-create-home \
            --shell /usr/sbin/nologin smdagent >>"$W/sysusers.log" 2>&1
fi
getent passwd smdagent >/dev/null && getent group smdagent >/dev/null
ok $? "user and group smdagent exist (from the unit's sysusers.d entry)"
getent passwd smdagent >/dev/null || {
    sed 's/^/# /' "$W/sysusers.log"
    done_testing
    exit 1
}
UID_=$(id -u smdagent)
GID_=$(getent group smdagent | cut -d: -f3)

# The runtime directory as tmpfiles.d makes /run/smdagent; policy files readable.
R=$W/run
mkdir -p "$R" "$W/d"
chown smdagent:smdagent "$R"
echo '{"s":[{"one":{"endpoint":"one.example","protocol":"h1"}}]}' >"$W/d/50-one.json"
chmod 0644 "$W/d/50-one.json"
S=$R/ss.sock
ctl() { "$SMDCTL" -s "$S" "$@"; }
# as_member CMD...: nobody, with group smdagent as a supplementary group.
as_member() { setpriv --reuid=65534 --regid=65534 --groups="$GID_" "$@"; }
as_stranger() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
field() { awk -v k="$1:" '$1 == k {$1 = ""; sub(/^ /, ""); gsub(/\t/, " "); print}' "/proc/$2/status"; }
sanitizer_clean() { ! grep -qE 'ERROR: (Address|Leak)Sanitizer|Sanitizer has encountered a fatal error|runtime error:' "$1"; }

# Mistakes first: they must fail before anything is bound.
"$SMDAGENT" --user no-such-user-smd --socket "$W/x.sock" --no-system-policy 2>"$W/unknown.err"
is "$?" 1 "--user with an unknown user exits 1"
grep -q '"no-such-user-smd"' "$W/unknown.err"
ok $? "and names the user: $(head -n1 "$W/unknown.err")"
[ ! -e "$W/x.sock" ]
ok $? "and binds nothing"
as_stranger "$SMDAGENT" --user smdagent --socket "$W/x.sock" --no-system-policy 2>"$W/noroot.err"
is "$?" 1 "--user smdagent run by nobody exits 1"
grep -q "needs root" "$W/noroot.err"
ok $? "and says it needs root: $(head -n1 "$W/noroot.err")"

# The agent, started as root.
"$SMDAGENT" --user smdagent --socket "$S" --no-system-policy --policy "$W/d" 2>"$W/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for 10 grep -q "listening on" "$W/agent.log"
ok $? "the agent starts as root with --user smdagent"

diag "/proc/$AGENT/status:"
grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):' "/proc/$AGENT/status" | sed 's/^/#   /'
is "$(field Uid "$AGENT")" "$UID_ $UID_ $UID_ $UID_" "it runs as user smdagent (real, effective, saved, fs)"
is "$(field Gid "$AGENT")" "$GID_ $GID_ $GID_ $GID_" "with group smdagent"
is "$(field Groups "$AGENT")" "$GID_" "and only smdagent's groups"
is "$(field CapEff "$AGENT")" "$WAKE_ALARM" "effective capabilities: CAP_WAKE_ALARM only"
is "$(field CapPrm "$AGENT")" "$WAKE_ALARM" "permitted capabilities: CAP_WAKE_ALARM only"
is "$(field CapBnd "$AGENT")" "$WAKE_ALARM" "bounding set: CAP_WAKE_ALARM only"
is "$(field CapInh "$AGENT") $(field CapAmb "$AGENT")" "0000000000000000 0000000000000000" \
    "nothing inheritable or ambient"
is "$(field NoNewPrivs "$AGENT")" 1 "no_new_privs is set"
is "$(stat -c '%U:%G %a' "$S")" "root:smdagent 660" "the socket is root:smdagent 0660"

# Status, as root and as a member of group smdagent; not at all for others.
out=$(ctl status --json)
is "$?" 0 "smdctl status as root"
case $out in *'"state":"OPERATIONAL"'*) ok 0 "status: OPERATIONAL" ;; *) ok 1 "status: OPERATIONAL: $out" ;; esac
as_member "$SMDCTL" -s "$S" status >/dev/null
is "$?" 0 "smdctl status as a member of group smdagent"
as_stranger "$SMDCTL" -s "$S" status >/dev/null 2>"$W/stranger.err"
is "$?" 1 "a user outside group smdagent cannot use the socket"

# wait_participants N: the agent counts N bus participants.
participants() { ctl status --json | grep -q "\"participants\":$1[,}]"; }

# Monitor and publish, both ways round. The agent publishes network state of
# its own, so the monitors run until they have seen what the test sent.
# (Started directly, not through the functions, so that $! is the monitor.)
setpriv --reuid=65534 --regid=65534 --groups="$GID_" \
    "$SMDCTL" -s "$S" monitor --class user1,network --timeout 20 >"$W/mon1.out" &
MON1=$!
"$SMDCTL" -s "$S" monitor --class user2,network --timeout 20 >"$W/mon2.out" &
MON2=$!
PIDS+=("$MON1" "$MON2")
wait_for 5 participants 2
ok $? "two monitors joined (a member of smdagent and root)"
ctl publish --class user1 '{"from":"root"}'
is "$?" 0 "root publishes on user1"
as_member "$SMDCTL" -s "$S" publish --class user2 '{"from":"member"}'
is "$?" 0 "the member publishes on user2"
as_member "$SMDCTL" -s "$S" publish --class network '{"from":"member","system":true}'
is "$?" 0 "the member publishes on network (a system class: root or group smdagent)"
saw() { grep -qF "$2" "$W/$1.out"; }
wait_for 5 saw mon1 '{"from":"root"}' && wait_for 5 saw mon1 '"system":true'
ok $? "the member's monitor got root's user1 message and the network message"
wait_for 5 saw mon2 '{"from":"member"}' && wait_for 5 saw mon2 '"system":true'
ok $? "root's monitor got the member's user2 message and the network message"
! saw mon1 '{"from":"member"}' && ! saw mon2 '{"from":"root"}'
ok $? "and neither got the other's user class"
kill "$MON1" "$MON2" 2>/dev/null
wait "$MON1" "$MON2" 2>/dev/null

# Policy reload: the dropped agent reads the files itself.
echo '{"s":[{"two":{"endpoint":"two.example","protocol":"h1"}}]}' >"$W/d/60-two.json"
chmod 0644 "$W/d/60-two.json"
ctl policy reload >"$W/reload.out" 2>&1
is "$?" 0 "smdctl policy reload: $(cat "$W/reload.out")"
ctl policy show --json | grep -q '"two"'
ok $? "the reloaded policy has the new streamtype"
echo '{"s":[{"three":{"endpoint":"three.example","protocol":"h1"}}]}' >"$W/d/70-three.json"
chmod 0644 "$W/d/70-three.json"
kill -HUP "$AGENT"
wait_for 5 sh -c "\"$SMDCTL\" -s \"$S\" policy show --json | grep -q '\"three\"'"
ok $? "SIGHUP (from root to the dropped agent) reloads the policy too"

kill "$AGENT"
wait "$AGENT"
is "$?" 0 "SIGTERM: the agent exits 0"
[ ! -e "$S" ]
ok $? "and removes its socket (its directory belongs to smdagent, as /run/smdagent does)"
sanitizer_clean "$W/agent.log"
ok $? "no sanitizer report in the agent's log"
grep -q "running as user smdagent" "$W/agent.log"
ok $? "the log says which user it runs as"

# As the unit starts it: User=smdagent, AmbientCapabilities= and
# CapabilityBoundingSet=CAP_WAKE_ALARM, NoNewPrivileges=yes.
S=$R/unit.sock
setpriv --reuid=smdagent --regid=smdagent --init-groups --inh-caps=-all,+wake_alarm \
    --ambient-caps=-all,+wake_alarm --bounding-set=-all,+wake_alarm --no-new-privs \
    "$SMDAGENT" --socket "$S" --no-system-policy --policy "$W/d" 2>"$W/unit.log" &
UNIT=$!
PIDS+=("$UNIT")
wait_for 10 grep -q "listening on" "$W/unit.log"
ok $? "the agent starts the way the unit starts it"
diag "/proc/$UNIT/status:"
grep -E '^(Uid|Cap[A-Za-z]+|NoNewPrivs):' "/proc/$UNIT/status" | sed 's/^/#   /'
is "$(field Uid "$UNIT")" "$UID_ $UID_ $UID_ $UID_" "as the unit: user smdagent"
is "$(field CapEff "$UNIT") $(field CapBnd "$UNIT")" "$WAKE_ALARM $WAKE_ALARM" \
    "as the unit: CAP_WAKE_ALARM effective and bounding, nothing else"
ctl status >/dev/null && as_member "$SMDCTL" -s "$S" publish --class network '{"unit":1}'
ok $? "as the unit: status and a system-class publish work"
ctl policy reload >/dev/null
ok $? "as the unit: policy reload works"
kill "$UNIT"
wait "$UNIT"
is "$?" 0 "as the unit: SIGTERM exits 0"
sanitizer_clean "$W/unit.log"
ok $? "as the unit: no sanitizer report"

done_testing
