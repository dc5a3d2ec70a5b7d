# shellcheck shell=bash
# What test-proxy.sh and test-proxy-protocols.sh share (sourced after
# tests/shell/tap.sh): the work directory and its cleanup, the test
# certificates, a free port, and a download the client stops reading.

# W (the work directory, readable by nginx's workers), PIDS (killed at exit,
# with AGENT), S (the agent's socket). KEEP=1 keeps W.
proxy_workdir() {
    W=$(mktemp -d)
    chmod 755 "$W" # nginx's workers run as another user
    PIDS=()
    S=$W/ss.sock
    trap proxy_cleanup EXIT
}

proxy_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "${AGENT:-}" ] && kill "$AGENT" 2>/dev/null
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "# kept $W" || rm -rf "$W"
}

# W/ca.pem (a test CA) and W/server.pem, W/server.key (localhost, 127.0.0.1).
proxy_certs() {
    (
        cd "$W" || exit 1
        certtool --generate-privkey --key-type=ecdsa --outfile ca.key &&
            printf 'cn = "Test CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >ca.tmpl &&
            certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem &&
            certtool --generate-privkey --key-type=ecdsa --outfile server.key &&
            printf 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nexpiration_days = 30\n' >server.tmpl &&
            certtool --generate-certificate --load-privkey server.key --load-ca-certificate ca.pem \
                --load-ca-privkey ca.key --template server.tmpl --outfile server.pem
    ) >/dev/null 2>&1
    ok $? "test certificates"
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# `smdctl stream STREAM` into a fifo that nobody reads yet (fd 7 opens it;
# read it to let the download go on), until the agent's memory has stopped
# growing. Sets HUGE (smdctl's pid, in PIDS), SLACK (KiB: the agent's own
# allocations around one paused stream, more under a sanitizer), RSS0 (the
# agent's VmRSS in KiB before), RSS1 and RSS2 (stalled, 2 s apart).
stalled_download() {
    SLACK=1024
    ldd "$SMDAGENT" | grep -q libasan && SLACK=8192
    RSS0=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT/status")
    mkfifo "$W/fifo"
    "$SMDCTL" -s "$S" stream "$1" --states >"$W/fifo" 2>"$W/huge.err" &
    HUGE=$!
    PIDS+=("$HUGE")
    exec 7<"$W/fifo"
    wait_for 30 grep -q "^CONNECTED " "$W/huge.err"
    # Stalled: the agent's memory grew by less than 256 KiB in a second (a
    # download that flows moves megabytes a second; a sanitizer's allocator
    # creeps by itself), waited for up to a minute on a loaded machine; then
    # sampled again two seconds later.
    RSS1=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT/status")
    local stall_end=$((SECONDS + 60))
    while :; do
        sleep 1
        RSS2=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT/status")
        [ $((RSS2 - RSS1)) -lt 256 ] || [ $SECONDS -ge $stall_end ] && break
        RSS1=$RSS2
    done
    sleep 2
    RSS2=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT/status")
}
