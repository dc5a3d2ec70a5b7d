#!/bin/sh
# SPDX-License-Identifier: MIT
# Check the units with systemd-analyze (TAP). Usage:
#   check-units.sh SERVICE.in SOCKET SMDAGENT SYSUSERS.conf
# The service is instantiated with ExecStart pointing at the built SMDAGENT,
# because "verify" wants the binary to exist. Checks:
#  1. that copy's ExecStart is the built smdagent;
#  2. systemd-analyze verify --man=no prints nothing for the service and socket
#     (it exits 0 even on unknown keys, so any output is a failure);
#  3. systemd-analyze security --offline=true --threshold=20 passes (exposure
#     at most 2.0);
#  4. systemd-sysusers accepts the sysusers.d entry and would create the user
#     and group smdagent (a dry run into an empty root).
set -u
service_in=$1 socket=$2 smdagent=$3 sysusers=$4

echo "TAP version 13"
if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "1..1"
        echo "not ok 1 - systemd-analyze is installed"
        exit 1
    fi
    echo "1..0 # SKIP systemd-analyze not installed (package systemd)"
    exit 0
fi
echo "1..4"

dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
sbindir=$(dirname "$smdagent")
sed "s|@sbindir@|$sbindir|g" "$service_in" > "$dir/smdagent.service"
cp "$socket" "$dir/smdagent.socket"

if grep -q "^ExecStart=$smdagent " "$dir/smdagent.service" && [ -x "$smdagent" ]; then
    echo "ok 1 - ExecStart points at the built smdagent"
else
    echo "not ok 1 - ExecStart points at the built smdagent"
    echo "# $(grep '^ExecStart=' "$dir/smdagent.service")"
fi

out=$(cd "$dir" && systemd-analyze verify --man=no smdagent.service smdagent.socket 2>&1)
if [ -z "$out" ]; then
    echo "ok 2 - systemd-analyze verify prints nothing"
else
    echo "not ok 2 - systemd-analyze verify prints nothing"
    printf '%s\n' "$out" | sed 's/^/# /'
fi

out=$(systemd-analyze security --offline=true --threshold=20 "$dir/smdagent.service" 2>&1)
rc=$?
level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ $rc -eq 0 ] && [ -n "$level" ]; then
    echo "ok 3 - systemd-analyze security: exposure $level, at most 2.0"
else
    echo "not ok 3 - systemd-analyze security: exposure ${level:-unknown}, at most 2.0"
    printf '%s\n' "$out" | grep -v '✓' | sed 's/^/# /'
fi

mkdir -p "$dir/root/etc"
out=$(systemd-sysusers --dry-run --root="$dir/root" "$sysusers" 2>&1)
rc=$?
if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q "Creating user 'smdagent'" &&
    printf '%s\n' "$out" | grep -q "Creating group 'smdagent'"; then
    echo "ok 4 - systemd-sysusers would create user and group smdagent"
else
    echo "not ok 4 - systemd-sysusers would create user and group smdagent"
    printf '%s\n' "$out" | sed 's/^/# /'
fi
