# Sourced by tools/run and tools/test: the Debian packages the project needs,
# and a function that installs the missing ones (as root) or says how to.

# Build: compiler, meson, the libraries we link.
SMD_BUILD_PACKAGES="gcc meson ninja-build pkg-config libsystemd-dev libgnutls28-dev
libjson-c-dev libnghttp2-dev"
# Tests: real peers and the tools the tests drive.
SMD_TEST_PACKAGES="clang clang-format valgrind gnutls-bin nginx mosquitto mosquitto-clients
libmosquitto-dev dbus python3-dbusmock python3-websockets curl nghttp2-client man-db
groff-base systemd util-linux iproute2 procps bash-completion nftables openssl
python3 wrk chromium"

smd_missing_packages() {
    local p missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    echo "$missing"
}

# smd_ensure_packages PKG...: install what is missing; returns 1 (after saying
# what to run) when something is missing and we are not root.
smd_ensure_packages() {
    local missing
    missing=$(smd_missing_packages "$@")
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "Missing packages. Install them with:" >&2
        echo "  sudo apt-get install -y$missing" >&2
        return 1
    fi
    echo "Installing:$missing" >&2
    if [ -z "${SMD_APT_UPDATED:-}" ]; then
        apt-get update -qq >&2 || return 1
        export SMD_APT_UPDATED=1
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2 || return 1
}
