#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What "meson install" lays down, checked in a DESTDIR: every expected file at
# its place under the build's prefix, with its mode; nothing outside the
# prefix; the installed units point at the installed agent; the installed
# smdctl runs on the installed libsmd; an application builds against the
# installed header, library and pkg-config file; the bash completion completes.
set -u
. "$(dirname "$0")/../shell/tap.sh"
: "${BUILD_ROOT:?}" "${SOURCE_ROOT:?}" "${PREFIX:?}" "${BINDIR:?}" "${SBINDIR:?}" "${LIBDIR:?}"
: "${INCLUDEDIR:?}" "${DATADIR:?}" "${MANDIR:?}"

command -v meson >/dev/null || skip_all "meson is not on PATH"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

meson install -C "$BUILD_ROOT" --destdir "$D" --no-rebuild --quiet >"$D.log" 2>&1
rc=$?
is "$rc" 0 "meson install --destdir succeeds"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$D.log"
rm -f "$D.log"

# has TYPE MODE PATH: a file (f) or symlink (l) with that octal mode.
has() {
    local type=$1 mode=$2 path=$3 got
    if [ "$type" = l ]; then
        [ -L "$D$path" ] && [ -e "$D$path" ]
        ok $? "$path is a symlink to an existing file"
        return
    fi
    got=$(stat -c '%F %a' "$D$path" 2>/dev/null || echo missing)
    is "$got" "regular file $mode" "$path"
}

unitdir=${UNITDIR:-}
[ -n "$unitdir" ] || unitdir=$PREFIX/lib/systemd/system

has f 755 "$SBINDIR/smdagent"
has f 755 "$BINDIR/smdctl"
lib=$(cd "$D$LIBDIR" 2>/dev/null && ls libsmd.so.*.*.* 2>/dev/null | head -n1)
has f 755 "$LIBDIR/${lib:-libsmd.so.X.Y.Z}"
has l - "$LIBDIR/libsmd.so.0"
has l - "$LIBDIR/libsmd.so"
has f 644 "$INCLUDEDIR/smd/smd.h"
has f 644 "$LIBDIR/pkgconfig/libsmd.pc"
has f 644 "$unitdir/smdagent.service"
has f 644 "$unitdir/smdagent.socket"
has f 644 "$PREFIX/lib/sysusers.d/smdagent.conf"
has f 644 "$PREFIX/lib/tmpfiles.d/smdagent.conf"
has f 644 "$PREFIX/lib/smdagent/policy.d/default.json"
has f 644 "$DATADIR/bash-completion/completions/smdctl"
for page in "$SOURCE_ROOT"/man/*.[1-8]; do
    name=$(basename "$page")
    has f 644 "$MANDIR/man${name##*.}/$name"
done

cmp -s "$SOURCE_ROOT/policy.d/default.json" "$D$PREFIX/lib/smdagent/policy.d/default.json"
ok $? "the installed default.json is the shipped one"
cmp -s "$SOURCE_ROOT/smd/include/smd/smd.h" "$D$INCLUDEDIR/smd/smd.h"
ok $? "the installed smd.h is the source one"

outside=$(cd "$D" && find . ! -type d | sed 's|^\.||' | grep -v "^$PREFIX/")
is "$outside" "" "nothing is installed outside the prefix $PREFIX"
writable=$(cd "$D" && find . ! -type l ! -type d -perm /022 | sed 's|^\.||')
is "$writable" "" "no installed file is group or world writable"

grep -q "^ExecStart=$SBINDIR/smdagent " "$D$unitdir/smdagent.service"
ok $? "the installed service runs the installed agent ($SBINDIR/smdagent)"
grep -qx "prefix=$PREFIX" "$D$LIBDIR/pkgconfig/libsmd.pc"
ok $? "libsmd.pc has prefix=$PREFIX"

export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
out=$("$D$SBINDIR/smdagent" --version 2>&1)
is "$out" "smdagent $VERSION" "the installed smdagent runs"
out=$(LD_LIBRARY_PATH=$D$LIBDIR "$D$BINDIR/smdctl" --version 2>&1)
is "$out" "smdctl $VERSION" "the installed smdctl runs"
resolved=$(LD_LIBRARY_PATH=$D$LIBDIR ldd "$D$BINDIR/smdctl" | awk '$1 ~ /^libsmd\.so/ {print $3}')
is "$resolved" "$D$LIBDIR/libsmd.so.0" "and it loads the installed libsmd"

# An application builds against what was installed, found through pkg-config.
if command -v cc >/dev/null && command -v pkg-config >/dev/null; then
    flags=$(PKG_CONFIG_PATH=$D$LIBDIR/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D \
        pkg-config --cflags --libs libsmd 2>&1)
    ok $? "pkg-config finds the installed libsmd"
    # shellcheck disable=SC2086
    cc -Wall -Werror -o "$D/app" "$SOURCE_ROOT/examples/smd-subscribe.c" $flags \
        2>"$D/cc.log"
    rc=$?
    is "$rc" 0 "an application builds against the installed header and library"
    [ "$rc" -eq 0 ] || sed 's/^/# /' "$D/cc.log"
else
    ok 1 "cc and pkg-config are installed"
fi

# The completion, as bash loads it.
bc=/usr/share/bash-completion/bash_completion
if [ -r "$bc" ]; then
    complete_line() { # complete_line WORDS...: print what TAB offers for the last word
        bash -c '
            . "$1"; . "$2"; shift 2
            COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            _smdctl smdctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            echo "${COMPREPLY[*]}"' _ "$bc" "$D$DATADIR/bash-completion/completions/smdctl" "$@"
    }
    is "$(complete_line smdctl '')" "monitor publish status policy" "completion: the commands"
    is "$(complete_line smdctl policy '')" "check show reload" "completion: policy subcommands"
    is "$(complete_line smdctl monitor --class sys)" "system_state" "completion: --class names"
    is "$(complete_line smdctl publish --class network,us)" \
        "network,user0 network,user1 network,user2 network,user3 network,user4 network,user5 network,user6 network,user7" \
        "completion: the last name of a --class list"
    is "$(complete_line smdctl --s)" "--socket" "completion: global options"
    is "$(complete_line smdctl monitor --c)" "--class --count" "completion: monitor options"
else
    ok 1 "bash-completion is installed ($bc)"
fi

done_testing
