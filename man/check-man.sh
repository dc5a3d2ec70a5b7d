#!/bin/sh
# SPDX-License-Identifier: MIT
# Render one man page the way a user reads it and fail on any warning (TAP).
# Usage: check-man.sh PAGE
#  1. man(1) renders PAGE at 80 columns with --warnings and prints no warning
#     (groff's complaints, such as a table or line wider than the page);
#  2. the rendered text is not empty and starts with the page's title line.
set -u
page=$1

echo "TAP version 13"
if ! command -v man >/dev/null 2>&1; then
    # tools/test installs man-db; in CI a missing man must fail, not skip.
    if [ "${CI:-}" = true ]; then
        echo "1..1"
        echo "not ok 1 - man is installed (package man-db)"
        exit 1
    fi
    echo "1..0 # SKIP man is not installed (package man-db)"
    exit 0
fi
echo "1..2"

name=$(basename "$page")
warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
if [ -z "$warnings" ]; then
    echo "ok 1 - $name renders at 80 columns without warnings"
else
    echo "not ok 1 - $name renders at 80 columns without warnings"
    printf '%s\n' "$warnings" | sed 's/^/# /'
fi

# The title line is NAME(SECTION), for example SMDCTL(1).
title=$(sed -n 's/^\.TH \([^ ]*\) \([^ ]*\).*/\1(\2)/p' "$page" | head -n 1)
first=$(MANWIDTH=80 man -l "$page" 2>/dev/null | sed -n '/[^ ]/{p;q;}')
case "$first" in
"$title"*)
    echo "ok 2 - $name renders, starting with $title"
    ;;
*)
    echo "not ok 2 - $name renders, starting with ${title:-its .TH title}"
    echo "# first line: $first"
    ;;
esac
