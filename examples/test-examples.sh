#!/bin/sh
# SPDX-License-Identifier: MIT
# Integration test of the examples (TAP): an agent on a private socket,
# smd-subscribe waiting for one user2 message, smd-publish sending a user3
# message and then a user2 one. The subscriber must print exactly the user2
# payload and exit 0.
# Environment: SMDAGENT, SMD_SUBSCRIBE, SMD_PUBLISH (paths of the binaries).
set -u

echo "TAP version 13"
echo "1..5"

work=$(mktemp -d) || exit 1
agent_pid=
sub_pid=
cleanup() {
    [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for TENTHS COMMAND...: retry COMMAND every 0.1 s, at most TENTHS times.
wait_for() {
    n=$1
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        n=$((n - 1))
        sleep 0.1
    done
    return 1
}

diag() {
    sed 's/^/# /' "$@"
}

export SMD_SOCKET="$work/ss.sock"
"$SMDAGENT" --socket "$SMD_SOCKET" 2> "$work/agent.log" &
agent_pid=$!
if wait_for 50 test -S "$SMD_SOCKET"; then
    echo "ok 1 - the agent listens on $SMD_SOCKET"
else
    echo "not ok 1 - the agent listens on $SMD_SOCKET"
    diag "$work/agent.log"
    exit 1
fi

"$SMD_SUBSCRIBE" user2 1 > "$work/sub.out" 2> "$work/sub.err" &
sub_pid=$!
if wait_for 50 grep -q "subscribed to user2" "$work/sub.err"; then
    echo "ok 2 - smd-subscribe subscribed to user2"
else
    echo "not ok 2 - smd-subscribe subscribed to user2"
    diag "$work/sub.err"
    exit 1
fi

payload='{"example":"hello from smd-publish"}'
if "$SMD_PUBLISH" user3 '{"example":"not for user2"}' 2> "$work/pub.err" &&
    "$SMD_PUBLISH" user2 "$payload" 2>> "$work/pub.err"; then
    echo "ok 3 - smd-publish exits 0"
else
    echo "not ok 3 - smd-publish exits 0"
    diag "$work/pub.err"
fi

subscriber_gone() {
    ! kill -0 "$sub_pid" 2>/dev/null
}
if wait_for 50 subscriber_gone && wait "$sub_pid"; then
    echo "ok 4 - smd-subscribe exits 0 after one message"
else
    echo "not ok 4 - smd-subscribe exits 0 after one message"
    diag "$work/sub.err"
fi
sub_pid=

if [ "$(cat "$work/sub.out")" = "$payload" ]; then
    echo "ok 5 - smd-subscribe printed the user2 payload and nothing else"
else
    echo "not ok 5 - smd-subscribe printed the user2 payload and nothing else"
    echo "# expected: $payload"
    diag "$work/sub.out"
fi
