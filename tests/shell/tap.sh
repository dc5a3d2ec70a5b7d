# TAP helpers for shell integration tests (sourced). Same rules as tests/tap.c:
# stdout is TAP, skips fail under CI=true, a test with no checks fails.
TAP_N=0
TAP_FAILED=0
echo "TAP version 13"

ok() { # ok CONDITION-EXIT-STATUS NAME
    TAP_N=$((TAP_N + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $TAP_N - $2"
    else
        TAP_FAILED=$((TAP_FAILED + 1))
        echo "not ok $TAP_N - $2"
    fi
}

is() { # is GOT EXPECTED NAME
    if [ "$1" = "$2" ]; then
        ok 0 "$3"
    else
        ok 1 "$3"
        printf '#   got:      %s\n#   expected: %s\n' "$1" "$2"
    fi
}

diag() { printf '# %s\n' "$@"; }

skip_all() {
    if [ "${CI:-}" = true ]; then
        echo "not ok 1 - skipped, but CI=true forbids skipping: $1"
        echo "1..1"
        exit 1
    fi
    echo "1..0 # SKIP $1"
    exit 0
}

done_testing() {
    if [ "$TAP_N" -eq 0 ]; then
        echo "not ok 1 - the test made no checks"
        echo "1..1"
        exit 1
    fi
    echo "1..$TAP_N"
    [ "$TAP_FAILED" -eq 0 ]
}

# wait_for SECONDS COMMAND...: poll until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}
