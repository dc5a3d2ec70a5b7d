#!/usr/bin/env bash
# Wake alarms. As root, a wake-list timer runs on the alarm clock where the
# kernel supports it, else on the CLOCK_BOOTTIME fallback (these machines have
# no RTC: EOPNOTSUPP); without CAP_WAKE_ALARM (setpriv) the fallback is EPERM.
# Either way the fallback is reported once, status says which clock is used,
# and the timers still fire (a wakeup message on SYSTEM_STATE).
set -u
. "$(dirname "$0")/../shell/tap.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}"

[ "$(id -u)" = 0 ] || skip_all "needs root (CAP_WAKE_ALARM)"
command -v setpriv >/dev/null || skip_all "needs setpriv (util-linux)"

W=$(mktemp -d)
AGENT=
cleanup() {
    [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
NOBUS="DBUS_SYSTEM_BUS_ADDRESS=unix:path=$W/no-bus"

# run_case LABEL EXPECTED_CLOCK EXPECTED_FALLBACK PREFIX...
run_case() {
    local label=$1 clock=$2 fallback=$3 S=$W/$1.sock log=$W/$1.log
    shift 3
    env "$NOBUS" "$@" "$SMDAGENT" --socket "$S" --no-system-policy --time-sync-wait 0 \
        >"$log" 2>&1 &
    AGENT=$!
    wait_for 5 test -S "$S"
    ok $? "$label: the agent starts"
    if [ "$label" = no-cap ]; then
        local eff
        eff=$(awk '/^CapEff:/ {print $2}' "/proc/$AGENT/status")
        # CAP_WAKE_ALARM is capability 35.
        ok $(((0x$eff >> 35) & 1)) "$label: the agent runs without CAP_WAKE_ALARM (CapEff $eff)"
    fi
    "$SMDCTL" -s "$S" monitor --class system_state --count 4 --timeout 5 >"$W/$label.mon" 2>&1 &
    local mon=$!
    sleep 0.2
    for d in 0.2 0.4 0.6; do
        "$SMDCTL" -s "$S" wake "$d" >/dev/null || break
    done
    ok $? "$label: three wake timers scheduled"
    "$SMDCTL" -s "$S" --json status >"$W/$label.json"
    grep -q "\"wake\":{\"clock\":\"$clock\",\"fallback\":$fallback," "$W/$label.json"
    ok $? "$label: status reports clock $clock, fallback $fallback: $(grep -o '"wake":{[^}]*}' "$W/$label.json")"
    grep -q '"timers":3' "$W/$label.json"
    ok $? "$label: with three timers pending"
    wait "$mon"
    is $? 0 "$label: the subscriber got the state and three wakeups"
    is "$(grep -c '{"type":"wakeup","id":[123]}' "$W/$label.mon")" 3 "$label: every timer fired"
    "$SMDCTL" -s "$S" --json status | grep -q '"timers":0,"earliest_boottime_us":null'
    ok $? "$label: none pending afterwards, no earliest deadline"
    if [ "$fallback" != null ]; then
        is "$(grep -c 'alarm clock is refused' "$log")" 1 "$label: the fallback is reported once"
    else
        is "$(grep -c 'alarm clock is refused' "$log")" 0 "$label: no fallback reported"
    fi
    kill "$AGENT"
    wait "$AGENT"
    is $? 0 "$label: the agent exits 0"
    AGENT=
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log"; then
        ok 1 "$label: no sanitizer report"
        tail -30 "$log" | sed 's/^/# /'
    else
        ok 0 "$label: no sanitizer report"
    fi
}

if [ -e /sys/class/rtc/rtc0 ]; then
    run_case root boottime-alarm null
else
    diag "no RTC here: the alarm clock is refused even as root"
    run_case root boottime '"EOPNOTSUPP"'
fi
# sd-event asks whether the alarm clock exists before it tries it: without an
# RTC that answer (EOPNOTSUPP) comes first, with one the missing capability does.
if [ -e /sys/class/rtc/rtc0 ]; then nocap='"EPERM"'; else nocap='"EOPNOTSUPP"'; fi
run_case no-cap boottime "$nocap" setpriv --bounding-set=-wake_alarm --inh-caps=-all
done_testing
