#!/usr/bin/env bash
# The policy in the running agent: startup errors, reload under load (a broken
# drop-in changes nothing, a fixed one applies), policy check exit codes, and the
# smd section's access rules and limits taking effect.
set -u
. "$(dirname "$0")/tap.sh"
: "${SMDAGENT:?}" "${SMDCTL:?}"

W=$(mktemp -d)
AGENT=
MON=
cleanup() {
    [ -n "$MON" ] && kill "$MON" 2>/dev/null
    [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
S=$W/ss.sock
mkdir -p "$W/d"
ctl() { "$SMDCTL" -s "$S" "$@"; }

# A broken file at startup: exit 1, the error names the file and JSON path.
echo '{"s":[{"cpd":{"endpoint":"x","protocol":"h1","retry":"fast"}}]}' >"$W/d/50-x.json"
"$SMDAGENT" --socket "$S" --no-system-policy --policy "$W/d" 2>"$W/start.err"
is "$?" 1 "an invalid policy file at startup exits 1"
grep -q "$W/d/50-x.json: s\[0\].cpd.retry: unknown retry \"fast\"" "$W/start.err"
ok $? "the startup error names the file and the JSON path"
[ ! -e "$S" ]
ok $? "and no socket is left behind"

ctl policy check "$W/d/50-x.json" >/dev/null 2>"$W/check.err"
is "$?" 1 "policy check of a broken file exits 1"
grep -q 'unknown retry "fast"' "$W/check.err"
ok $? "and lists the error"

echo '{"s":[{"cpd":{"endpoint":"x","protocol":"h1"}}]}' >"$W/d/50-x.json"
ctl policy check "$W/d/50-x.json" >/dev/null
is "$?" 0 "policy check of a valid file exits 0"

"$SMDAGENT" --socket "$S" --no-system-policy --policy "$W/d" 2>"$W/agent.log" &
AGENT=$!
wait_for 5 test -S "$S"
ok $? "the agent starts with a valid drop-in"

ctl policy show --json >"$W/show.json"
grep -q "\"$W/d/50-x.json\"" "$W/show.json"
ok $? "policy show names the drop-in as a source"

# A monitor receives a steady flow of messages throughout the reloads.
# Started directly (not through the ctl function) so that $! is smdctl itself.
"$SMDCTL" -s "$S" monitor --class user3 --json >"$W/mon.out" 2>"$W/mon.err" &
MON=$!
sleep 0.3
publisher() {
    local i
    for i in $(seq 1 60); do
        ctl publish --class user3 "{\"n\":$i}" || return 1
        sleep 0.02
    done
}
publisher &
PUB=$!

sleep 0.3
echo '{"s":[{"cpd":{"endpoint":"x","protocol":"h1","retry":"missing"}}]}' >"$W/d/50-x.json"
kill -HUP "$AGENT"
sleep 0.2
ctl policy reload >/dev/null 2>"$W/reload.err"
is "$?" 1 "smdctl policy reload of a broken drop-in exits 1"
grep -q 'unknown retry "missing"' "$W/reload.err"
ok $? "and says what is wrong"
grep -q "policy reload failed, the running policy stays in force" "$W/agent.log"
ok $? "SIGHUP with a broken drop-in is logged and changes nothing"
ctl policy show --json | grep -q '"cpd"'
ok $? "the running policy still has its streamtype"

cat >"$W/d/50-x.json" <<'JSON'
{"release": "r2", "s": [{"cpd": {"endpoint": "x", "protocol": "h1"}},
                        {"extra": {"endpoint": "y", "protocol": "h1"}}]}
JSON
kill -HUP "$AGENT"
wait_for 5 sh -c "\"$SMDCTL\" -s \"$S\" policy show --json | grep -q '\"extra\"'"
ok $? "SIGHUP with a fixed drop-in applies it"
ctl policy show | grep -q '^release: r2'
ok $? "policy show reports the new release"

wait "$PUB"
ok $? "publishing went on throughout the reloads"
sleep 0.3
kill "$MON" 2>/dev/null
wait "$MON" 2>/dev/null
MON=
is "$(grep -c '"class":\["user3"\]' "$W/mon.out")" 60 "the monitor received all 60 messages across the reloads"
kill -0 "$AGENT"
ok $? "the agent is still running"

# The smd section: let anyone publish network, then check as nobody.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
    chmod 0755 "$W" "$W/d"
    chmod 0666 "$S"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$SMDCTL" -s "$S" publish --class network '{"x":1}' 2>/dev/null
    is "$?" 1 "by default an unprivileged user may not publish network"
    cat >"$W/d/60-access.json" <<'JSON'
{"smd": {"backlog_max": 64, "access": [{"classes": ["network"], "publish": ["*"]}]}}
JSON
    ctl policy reload >/dev/null
    ok $? "a policy with an smd access rule reloads"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$SMDCTL" -s "$S" publish --class network '{"x":1}'
    is "$?" 0 "after it, the unprivileged user may publish network"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$SMDCTL" -s "$S" policy reload 2>"$W/unpriv.err"
    is "$?" 1 "an unprivileged user may not reload the policy"
    grep -q "needs root or group smdagent" "$W/unpriv.err"
    ok $? "and is told why"
else
    skip_all "needs root and setpriv for the access part"
fi

kill "$AGENT"
wait "$AGENT"
is "$?" 0 "SIGTERM: exit 0"
AGENT=
done_testing
