#!/usr/bin/env bash
# The agent hosts the server streamtypes of its own policy (issue 11): a
# "server": true streamtype without an allow rule listens from the start and
# answers GET (HTTP/1.1 and h2c) with the agent's status as JSON, HEAD with
# its headers, other methods with 405; one with an allow rule is left to
# clients of the socket and does not listen; a reload (SIGHUP) that changes
# nothing leaves it running, one that moves the port closes the old one and
# serves on the new one; stopping the agent stops listening.
set -u
. "$(dirname "$0")/../shell/tap.sh"
: "${SMDAGENT:?}"

command -v curl >/dev/null || skip_all "curl is not installed"

W=$(mktemp -d)
AGENT=
cleanup() {
    [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
S=$W/ss.sock
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(free_port)
P2=$(free_port)
P3=$(free_port)

write_policy() { # status-port
    cat >"$W/policy.json" <<EOF2
{
  "release": "hosted-$1", "product": "hosted-test", "schema-version": 1,
  "s": [
    {"status": {"server": true, "endpoint": "127.0.0.1", "port": $1, "protocol": "h1",
                "metadata": [{"ct": "content-type:"}]}},
    {"forclients": {"server": true, "endpoint": "127.0.0.1", "port": $P3, "protocol": "h1",
                    "allow": ["root"]}}
  ]
}
EOF2
}
write_policy "$P1"

"$SMDAGENT" --socket "$S" --no-system-policy --policy "$W/policy.json" \
    --log-level info >>"$W/agent.log" 2>&1 &
AGENT=$!
wait_for 5 test -S "$S"
ok $? "the agent listens on its socket"
wait_for 5 curl -sf -o /dev/null "http://127.0.0.1:$P1/"
ok $? "and serves the status streamtype on port $P1"

code=$(curl -s -o "$W/status.json" -D "$W/status.head" -w '%{http_code}' "http://127.0.0.1:$P1/")
is "$code" 200 "GET / is 200"
grep -qi '^content-type: application/json' "$W/status.head"
ok $? "content-type application/json (the metadata entry for the header)"
/usr/bin/python3 - "$W/status.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["agent"] == "smdagent", d
assert d["streamtype"] == "status", d
assert d["policy_release"].startswith("hosted-"), d
assert isinstance(d["uptime_s"], int) and d["state"], d
PY
ok $? "the body is the agent's status in JSON ($(head -c 160 "$W/status.json"))"

code=$(curl -s --http2-prior-knowledge -o "$W/h2.json" -w '%{http_code} %{http_version}' "http://127.0.0.1:$P1/any/path")
is "$code" "200 2" "over h2c too"
grep -q '"agent":"smdagent"' "$W/h2.json"
ok $? "with the same document"

code=$(curl -s -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P1/")
is "$code" 200 "HEAD is 200"
code=$(curl -s -X POST --data x -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P1/")
is "$code" 405 "POST is 405"

curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$P3/"
[ $? -eq 7 ]
ok $? "a server streamtype with an allow rule is not hosted by the agent"

grep -q "streamtype status: serving the agent's status on 127.0.0.1:$P1" "$W/agent.log"
ok $? "the agent logs what it serves"

# A reload that changes nothing leaves the server running.
before=$(grep -c "serving the agent's status" "$W/agent.log")
kill -HUP "$AGENT"
loaded_twice() { [ "$(grep -c "policy loaded: release hosted-$P1," "$W/agent.log")" -ge 2 ]; }
wait_for 5 loaded_twice
ok $? "the agent reloaded the same policy"
curl -sf -o /dev/null "http://127.0.0.1:$P1/"
ok $? "an unchanged reload: the port still serves"
is "$(grep -c "serving the agent's status" "$W/agent.log")" "$before" "and the server was not restarted"

# Reload: the status server moves to P2.
write_policy "$P2"
kill -HUP "$AGENT"
wait_for 5 curl -sf -o /dev/null "http://127.0.0.1:$P2/"
ok $? "after SIGHUP the new port $P2 serves"
curl -s "http://127.0.0.1:$P2/" | grep -q "\"policy_release\":\"hosted-$P2\""
ok $? "under the new policy"
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$P1/"
[ $? -eq 7 ]
ok $? "and the old port $P1 is closed"

kill "$AGENT"
wait "$AGENT"
is $? 0 "the agent stops cleanly"
AGENT=
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$P2/"
[ $? -eq 7 ]
ok $? "and no longer listens"
if grep -q "ERROR: AddressSanitizer\|LeakSanitizer\|runtime error:" "$W/agent.log"; then
    ok 1 "no sanitizer report in the agent's log"
    sed 's/^/# /' "$W/agent.log" | tail -40
else
    ok 0 "no sanitizer report in the agent's log"
fi
done_testing
