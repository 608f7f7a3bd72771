#!/bin/sh
# Installs the Debian packages overlay-fleet's tests and local lab need, if they are missing.
#
# Idempotent and quiet when everything is present: `apt-get update` runs only when a package
# has to be installed. Non-interactive. A system sshd that the openssh-server install would
# start is kept from starting (policy-rc.d) and, should one start anyway, stopped again: the
# lab runs its own sshds, one per box.
#
# Usage: sh tools/system-deps.sh        (as root)
set -eu

# package:command-that-proves-it-is-installed
REQUIRED="
openssh-server:/usr/sbin/sshd
openssh-client:ssh
iproute2:ip
util-linux:unshare
util-linux:nsenter
util-linux:losetup
util-linux:findmnt
e2fsprogs:mkfs.ext4
attr:getfattr
attr:setfattr
rsync:rsync
dosfstools:mkfs.vfat
psmisc:fuser
docker.io:/usr/sbin/dockerd
containerd:/usr/bin/containerd
libseccomp-dev:/usr/include/seccomp.h
pkg-config:pkg-config
busybox-static:/bin/busybox
"

have_cmd() {
    case "$1" in
        /*) [ -e "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Prints the packages (space-separated, leading space) that are not installed or whose
# command is missing.
compute_missing() {
    out=""
    for entry in $REQUIRED; do
        pkg=${entry%%:*}
        cmd=${entry#*:}
        if pkg_installed "$pkg" && have_cmd "$cmd"; then
            continue
        fi
        case " $out " in
            *" $pkg "*) ;;
            *) out="$out $pkg" ;;
        esac
    done
    printf '%s' "$out"
}

missing=$(compute_missing)
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi

# Several test runs may call this at once: one installer at a time. Whoever waited re-checks.
if [ -z "${OVERLAY_FLEET_DEPS_LOCKED:-}" ]; then
    mkdir -p /run/lock
    OVERLAY_FLEET_DEPS_LOCKED=1 exec flock -w 900 /run/lock/overlay-fleet-system-deps.lock sh "$0" "$@"
fi
missing=$(compute_missing)
[ -n "$missing" ] || exit 0

echo "system-deps: installing:$missing" >&2

export DEBIAN_FRONTEND=noninteractive

# Keep package scripts from starting services (notably a system sshd on port 22). When a
# policy-rc.d that already denies is in place it is left alone; otherwise ours is put in
# place for the install and the previous state restored afterwards.
POLICY=/usr/sbin/policy-rc.d
POLICY_SAVED=""
POLICY_OURS=no
restore_policy() {
    [ "$POLICY_OURS" = yes ] || return 0
    if [ -n "$POLICY_SAVED" ]; then
        mv -f "$POLICY_SAVED" "$POLICY"
    else
        rm -f "$POLICY"
    fi
}
policy_denies() {
    [ -x "$POLICY" ] || return 1
    rc=0
    "$POLICY" ssh start >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 101 ]
}
trap restore_policy EXIT
trap 'exit 130' INT TERM
if ! policy_denies; then
    if [ -e "$POLICY" ] || [ -L "$POLICY" ]; then
        POLICY_SAVED="$POLICY.overlay-fleet-saved"
        mv -f "$POLICY" "$POLICY_SAVED"
    fi
    POLICY_OURS=yes
    printf '#!/bin/sh\n# temporary, written by overlay-fleet tools/system-deps.sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
fi

sshd_was_installed=no
pkg_installed openssh-server && sshd_was_installed=yes

apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    $missing >/dev/null

# If openssh-server was installed just now, make sure no system sshd stays running or
# comes back at boot. A system sshd that ran before this script is left alone.
if [ "$sshd_was_installed" = no ]; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now ssh.socket ssh.service >/dev/null 2>&1 || true
    fi
    if [ -s /run/sshd.pid ]; then
        pid=$(cat /run/sshd.pid)
        if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = sshd ]; then
            kill "$pid" 2>/dev/null || true
        fi
        rm -f /run/sshd.pid
    fi
fi

still_missing=$(compute_missing)
if [ -n "$still_missing" ]; then
    echo "system-deps: still missing after install:$still_missing" >&2
    exit 1
fi
echo "system-deps: done" >&2
