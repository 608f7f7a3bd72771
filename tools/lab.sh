#!/usr/bin/env bash
# overlay-fleet local lab: N "boxes" on this machine, each a network namespace with its own
# address, a private mount + UTS namespace, its own /etc, /root, /tmp and /mnt, a loopback ext4 "USB
# disk" at /mnt/usbdisk holding a small lower cache, and a real sshd on port 22.
#
#   tools/lab.sh up [N]             create box1..boxN (default: the current count, or 2); idempotent
#   tools/lab.sh down               remove everything `up` made; idempotent
#   tools/lab.sh status             list the boxes and whether each is up (exit 1 if one is not)
#   tools/lab.sh env                JSON description of the boxes for tests
#   tools/lab.sh id                 this lab's id: a new one whenever `up` creates a box (a stack
#                                   deployed to an older lab describes boxes that are gone)
#   tools/lab.sh exec BOX -- CMD..  run CMD inside BOX's namespaces (no SSH)
#   tools/lab.sh ssh BOX CMD..      run CMD on BOX over real SSH (lab key, pinned host key)
#   tools/lab.sh stop-sshd BOX      kill BOX's sshd (listener and connections); mounts stay
#   tools/lab.sh start-sshd BOX     start BOX's sshd again in the same namespaces
#   tools/lab.sh stop-engine BOX    stop BOX's Docker engine (dockerd, containerd, containers)
#   tools/lab.sh start-engine BOX   start it again; restart=always containers come back
#
# BOX is `box<i>` or `<i>`. Box i: netns of-box<i>, veth of-h<i> (198.18.<i>.1/24, machine side)
# <-> of-b<i> (198.18.<i>.2/24, box side), sshd on 198.18.<i>.2:22.
#
# Each box's namespaces are held by an "anchor" process (`sleep infinity`, started through
# `ip netns exec of-box<i> unshare --mount --uts --propagation private`); sshd and `exec` enter
# the anchor's namespaces with nsenter, so sshd can be stopped and restarted without losing the
# box's mounts.
#
# Each box runs its own Docker engine (tools/lab-engines.sh builds/caches the binaries): odd
# boxes "docker20" (Debian's docker.io 20.10, API 1.41), even boxes "docker29" (dockerd from
# github.com/moby/moby/v2, API 1.56, with runc v1.5.3). Inside a box the engine has the usual
# paths: the box has its own /run (the lab state dir is bound back in at the same path), so
# /run/docker.sock, /run/docker and /run/containerd are the box's; /var/lib/docker is bound to
# <data dir>/box<i>/docker on the machine's disk; the machine's cgroup v1 hierarchies are
# mounted again under /sys/fs/cgroup (`ip netns exec` mounts a fresh /sys) and the engine's
# cgroup parent is /of-lab-box<i>; `docker` (/usr/bin and /usr/local/bin) is the matching CLI.
# Containers must run unprivileged: the VMs' capability bounding set lacks CAP_SYS_RESOURCE.
#
# Environment:
#   OVERLAY_FLEET_LAB_DIR        state dir (default /run/overlay-fleet-lab)
#   OVERLAY_FLEET_LAB_DISK_DIR   where the disk images live (default /var/tmp/overlay-fleet-lab-disks)
#   OVERLAY_FLEET_LAB_DISK_SIZE  size of each sparse disk image (default 1G)
#   OVERLAY_FLEET_LAB_DATA_DIR   per-box engine data (default /var/lib/overlay-fleet-lab)
#   OVERLAY_FLEET_LAB_SKIP_DEPS  set to 1 to skip tools/system-deps.sh in `up`
#   OVERLAY_FLEET_CACHE          where tools/lab-engines.sh caches engine builds
#
# Must run as root. Only touches the lab's own names (of-box*, of-h*, 198.18.<i>.0/24) and dirs.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
shopt -s nullglob

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
KEYS_SRC="$REPO/lab/keys"

abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
STATE=$(abspath "${OVERLAY_FLEET_LAB_DIR:-/run/overlay-fleet-lab}")
STATE=${STATE%/}
DEFAULT_DISKS=$(abspath "${OVERLAY_FLEET_LAB_DISK_DIR:-/var/tmp/overlay-fleet-lab-disks}")
DEFAULT_DISKS=${DEFAULT_DISKS%/}
DISK_SIZE=${OVERLAY_FLEET_LAB_DISK_SIZE:-1G}
DEFAULT_DATA=$(abspath "${OVERLAY_FLEET_LAB_DATA_DIR:-/var/lib/overlay-fleet-lab}")
DEFAULT_DATA=${DEFAULT_DATA%/}
LOCK=/run/lock/overlay-fleet-lab.lock
MAX_BOXES=50
DISK_MOUNT=/mnt/usbdisk
LOWER=$DISK_MOUNT/static_cache

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- names and paths

ns_name() { printf 'of-box%s' "$1"; }
host_if() { printf 'of-h%s' "$1"; }
box_if() { printf 'of-b%s' "$1"; }
host_ip() { printf '198.18.%s.1' "$1"; }
box_ip() { printf '198.18.%s.2' "$1"; }
box_dir() { printf '%s/boxes/box%s' "$STATE" "$1"; }

disks_dir() {
    if [ -s "$STATE/disks-dir" ]; then cat "$STATE/disks-dir"; else printf '%s' "$DEFAULT_DISKS"; fi
}
disk_img() { printf '%s/box%s.img' "$(disks_dir)" "$1"; }

data_dir() {
    if [ -s "$STATE/data-dir" ]; then cat "$STATE/data-dir"; else printf '%s' "$DEFAULT_DATA"; fi
}
box_data() { printf '%s/box%s' "$(data_dir)" "$1"; }

# Engine generation of box i: odd boxes docker20, even boxes docker29.
box_gen() { if [ $(($1 % 2)) -eq 1 ]; then printf docker20; else printf docker29; fi; }
cgroup_parent() { printf '/of-lab-box%s' "$1"; }
DOCKER_SOCK=/run/docker.sock

# box1 | 1  ->  1
parse_box() {
    local b=${1:-}
    b=${b#box}
    [[ "$b" =~ ^[1-9][0-9]*$ ]] || die "not a box name: '${1:-}' (want box<i> or <i>)"
    printf '%s' "$b"
}

# ---------------------------------------------------------------- process helpers

# Fields of /proc/PID/stat after "pid (comm) " (state is the 1st, starttime the 20th) into the
# array STAT; false if there is no such process. Builtins only: these run often.
read_stat() {
    local line
    STAT=()
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    line=${line##*) }
    read -r -a STAT <<<"$line"
}

# Start time of a process (clock ticks since boot), empty if it does not exist.
proc_start() {
    read_stat "$1" || return 0
    printf '%s' "${STAT[19]}"
}

# comm of a process, empty if it does not exist.
proc_comm() {
    local c=""
    { read -r c <"/proc/$1/comm"; } 2>/dev/null || true
    printf '%s' "$c"
}

# Process state letter (R, S, Z, ...), empty if there is no such process.
proc_state() {
    read_stat "$1" || return 0
    printf '%s' "${STAT[0]}"
}

alive() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] || return 1
    read_stat "$1" || return 1
    [ "${STAT[0]}" != Z ] && [ "${STAT[0]}" != X ]
}

# has TEXT PATTERN: grep without a pipe (no SIGPIPE surprises under pipefail)
has() { grep -q -e "$2" <<<"$1"; }

# Writes "pid starttime" to a file.
record_pid() { printf '%s %s\n' "$2" "$(proc_start "$2")" >"$1"; }

# pid from a "pid starttime" file if that process still is the recorded one, else empty.
recorded_pid() {
    local f=$1 pid start
    [ -s "$f" ] || return 0
    read -r pid start <"$f" || true
    alive "${pid:-}" || return 0
    [ -z "${start:-}" ] || [ "${STAT[19]}" = "$start" ] || return 0
    printf '%s' "$pid"
}

# The anchor of box i (pid), empty when it is gone or not in the box's network namespace.
anchor_pid() {
    local i=$1 pid
    pid=$(recorded_pid "$(box_dir "$i")/anchor.pid")
    [ -n "$pid" ] || return 0
    [ "$(proc_comm "$pid")" = sleep ] || return 0
    # same network namespace as the one `ip netns` knows for this box (-ef: same nsfs inode)
    [ "/proc/$pid/ns/net" -ef "/run/netns/$(ns_name "$i")" ] || return 0
    printf '%s' "$pid"
}

# pids of all sshd processes (listener and per-connection) in the anchor's mount namespace.
sshd_pids_in() {
    local anchor=$1 p c
    [ -e "/proc/$anchor/ns/mnt" ] || return 0
    for p in /proc/[0-9]*; do
        c=""
        { read -r c <"$p/comm"; } 2>/dev/null || continue
        [ "$c" = sshd ] || continue
        [ "$p/ns/mnt" -ef "/proc/$anchor/ns/mnt" ] && printf '%s\n' "${p#/proc/}"
    done
    return 0
}

# pids of all processes sharing namespace KIND (mnt, net) with process PID (PID included).
pids_sharing_ns() {
    local pid=$1 kind=$2 p
    [ -e "/proc/$pid/ns/$kind" ] || return 0
    # never the machine's own namespaces
    [ "/proc/$pid/ns/$kind" -ef "/proc/$$/ns/$kind" ] && return 0
    [ "/proc/$pid/ns/$kind" -ef /proc/1/ns/"$kind" ] && return 0
    for p in /proc/[0-9]*; do
        [ "$p/ns/$kind" -ef "/proc/$pid/ns/$kind" ] 2>/dev/null && printf '%s\n' "${p#/proc/}"
    done
    return 0
}

# true if any (non-zombie) sshd runs on the machine
any_live_sshd() {
    local p c
    for p in /proc/[0-9]*; do
        c=""
        { read -r c <"$p/comm"; } 2>/dev/null || continue
        [ "$c" = sshd ] && alive "${p#/proc/}" && return 0
    done
    return 1
}

# The listening sshd of box i (pid from its PidFile, checked), empty if not running.
sshd_pid() {
    local i=$1 anchor pid
    anchor=$(anchor_pid "$i")
    [ -n "$anchor" ] || return 0
    [ -s "$(box_dir "$i")/sshd.pid" ] || return 0
    pid=$(head -n1 "$(box_dir "$i")/sshd.pid")
    alive "$pid" || return 0
    [ "$(proc_comm "$pid")" = sshd ] || return 0
    [ "/proc/$pid/ns/mnt" -ef "/proc/$anchor/ns/mnt" ] || return 0
    printf '%s' "$pid"
}

# Kill the given pids: TERM, wait, KILL, wait until gone.
kill_pids() {
    local pids=() p n
    for p in "$@"; do alive "$p" && pids+=("$p"); done
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for n in $(seq 1 30); do
        local left=()
        for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
        [ ${#left[@]} -gt 0 ] || return 0
        [ "$n" -eq 15 ] && kill -KILL "${left[@]}" 2>/dev/null || true
        sleep 0.1
    done
    for p in "${pids[@]}"; do alive "$p" && log "process $p did not exit"; done
    return 0
}

# Run a command detached: own session, stdio to a log, no inherited descriptors (so that
# callers reading our stdout, and the lab lock, are not held open by daemons).
spawn() {
    local logf=$1
    shift
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
        done
        exec setsid "$@" </dev/null >>"$logf" 2>&1
    ) &
}

# pids of processes named COMM (one of several) in the anchor's mount namespace.
comm_pids_in() {
    local anchor=$1 p c n
    shift
    [ -e "/proc/$anchor/ns/mnt" ] || return 0
    for p in /proc/[0-9]*; do
        c=""
        { read -r c <"$p/comm"; } 2>/dev/null || continue
        for n in "$@"; do
            if [ "$c" = "$n" ] && [ "$p/ns/mnt" -ef "/proc/$anchor/ns/mnt" ]; then
                printf '%s\n' "${p#/proc/}"
                break
            fi
        done
    done
    return 0
}

# ---------------------------------------------------------------- cgroups

# The machine's cgroup hierarchies under /sys/fs/cgroup: "MOUNTPOINT TYPE OPTIONS" lines (the
# controllers as mounted, e.g. cpu,cpuacct or name=systemd).
cgroup_mounts() {
    awk '{
        for (k = 7; $k != "-"; k++) ;
        fs = $(k + 1); if (fs != "cgroup" && fs != "cgroup2") next
        if ($5 !~ "^/sys/fs/cgroup/") next
        n = split($(k + 3), o, ","); opts = ""
        for (j = 1; j <= n; j++) if (o[j] != "rw" && o[j] != "ro" && o[j] !~ /^release_agent=/) opts = opts (opts == "" ? "" : ",") o[j]
        print $5, fs, (opts == "" ? "-" : opts)
    }' /proc/self/mountinfo
}

# Symlinks in the machine's /sys/fs/cgroup (cpu -> cpu,cpuacct): "PATH TARGET" lines.
cgroup_links() {
    local l
    for l in /sys/fs/cgroup/*; do
        [ -L "$l" ] && printf '%s %s\n' "$l" "$(readlink "$l")"
    done
    return 0
}

# pids of processes in box i's cgroup parent (its containers), in any hierarchy.
cgroup_pids() {
    local f p
    for f in $(grep -l -E ":$(cgroup_parent "$1")(/|\$)" /proc/[0-9]*/cgroup 2>/dev/null); do
        p=${f#/proc/}
        printf '%s\n' "${p%/cgroup}"
    done
    return 0
}

# Remove box i's cgroup parent in every hierarchy of the machine (deepest first).
remove_cgroups() {
    local i=$1 mp n d left
    for n in $(seq 1 20); do
        left=0
        while read -r mp; do
            d=$mp$(cgroup_parent "$i")
            [ -d "$d" ] || continue
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [ -d "$d" ] && left=1
        done < <(cgroup_mounts | awk '{ print $1 }')
        [ "$left" -eq 0 ] && return 0
        sleep 0.2
    done
    log "box$i: cgroup $(cgroup_parent "$i") could not be removed everywhere"
}

# ---------------------------------------------------------------- engine

# dockerd of box i (pid), empty if not running.
dockerd_pid() {
    local anchor
    anchor=$(anchor_pid "$1")
    [ -n "$anchor" ] || return 0
    comm_pids_in "$anchor" dockerd | head -n1
}

# API version the box's engine answers with (through the box's own CLI), empty if none.
engine_api() {
    local anchor
    anchor=$(anchor_pid "$1")
    [ -n "$anchor" ] || return 0
    timeout 10 nsenter -t "$anchor" -m -u -n docker version --format '{{.Server.APIVersion}}' 2>/dev/null </dev/null || true
}

start_engine() {
    local i=$1 anchor dir n ENGINE_DOCKERD="" ENGINE_RUNC="" ENGINE_RUNTIME="" args=()
    dir=$(box_dir "$i")
    anchor=$(anchor_pid "$i")
    [ -n "$anchor" ] || die "box$i is not up (run: tools/lab.sh up)"
    . "$dir/engine.env"
    if [ -z "$(dockerd_pid "$i")" ]; then
        args=(--host "unix://$DOCKER_SOCK" --data-root /var/lib/docker --exec-root /run/docker
            --pidfile /run/docker.pid --cgroup-parent "$(cgroup_parent "$i")"
            --iptables=false --ip6tables=false --bridge=none --userland-proxy=false)
        if [ -n "$ENGINE_RUNTIME" ]; then
            args+=(--add-runtime "$ENGINE_RUNTIME=$ENGINE_RUNC" --default-runtime "$ENGINE_RUNTIME")
        fi
        spawn "$dir/dockerd.log" nsenter -t "$anchor" -m -u -n \
            env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ENGINE_DOCKERD" "${args[@]}"
    fi
    for n in $(seq 1 120); do
        [ -n "$(engine_api "$i")" ] && return 0
        [ -n "$(dockerd_pid "$i")" ] || [ "$n" -lt 10 ] || break
        sleep 0.5
    done
    tail -n 30 "$dir/dockerd.log" >&2 2>/dev/null || true
    die "box$i: the docker engine does not answer"
}

# Stop box i's engine: dockerd first (it stops its containers and its containerd), then
# whatever of the engine is left (containerd, shims, container processes).
stop_engine() {
    local i=$1 anchor pid n pids=()
    anchor=$(anchor_pid "$i")
    [ -n "$anchor" ] || return 0
    pid=$(dockerd_pid "$i")
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for n in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
    fi
    mapfile -t pids < <(comm_pids_in "$anchor" dockerd containerd containerd-shim containerd-shim-runc-v2 runc)
    mapfile -t -O "${#pids[@]}" pids < <(cgroup_pids "$i")
    kill_pids "${pids[@]}"
}

# ---------------------------------------------------------------- ssh

ssh_opts() {
    printf '%s\n' -F /dev/null -i "$STATE/id_ed25519" -o IdentitiesOnly=yes -o IdentityAgent=none \
        -o UserKnownHostsFile="$STATE/known_hosts" -o GlobalKnownHostsFile=/dev/null \
        -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR
}

ssh_ok() {
    local i=$1 opts
    mapfile -t opts < <(ssh_opts)
    timeout 15 ssh "${opts[@]}" -o ConnectTimeout=2 "root@$(box_ip "$i")" true </dev/null >/dev/null 2>&1
}

wait_ssh() {
    local i=$1 n
    for n in $(seq 1 100); do
        ssh_ok "$i" && return 0
        [ -n "$(sshd_pid "$i")" ] || [ "$n" -lt 20 ] || break
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- state dir

lab_keys_ready() {
    local f
    for f in id_ed25519 id_ed25519.pub ssh_host_ed25519_key ssh_host_ed25519_key.pub; do
        [ -f "$KEYS_SRC/$f" ] || die "missing $KEYS_SRC/$f"
    done
}

host_key() { awk '{ print $1 " " $2 }' "$STATE/ssh_host_ed25519_key.pub"; }

# Copy a file only if it differs; set its mode.
install_file() {
    local src=$1 dst=$2 mode=$3
    if ! cmp -s "$src" "$dst" 2>/dev/null; then
        cp "$src" "$dst.tmp.$$"
        chmod "$mode" "$dst.tmp.$$"
        mv -f "$dst.tmp.$$" "$dst"
    fi
    [ "$(stat -c %a "$dst")" = "${mode#0}" ] || chmod "$mode" "$dst"
}

write_if_changed() { # dst (content on stdin)
    local dst=$1 tmp
    tmp="$dst.tmp.$$"
    cat >"$tmp"
    if cmp -s "$tmp" "$dst" 2>/dev/null; then rm -f "$tmp"; else mv -f "$tmp" "$dst"; fi
}

prepare_state() {
    lab_keys_ready
    case "$STATE/" in /etc/* | /mnt/* | /tmp/* | /proc/* | /sys/* | /dev/* | /) die "state dir $STATE must not be under /etc, /mnt, /tmp (boxes cover those)" ;; esac
    case "$DEFAULT_DISKS/" in /etc/* | /mnt/* | /tmp/* | /proc/* | /sys/* | /dev/*) die "disk dir $DEFAULT_DISKS must not be under /etc, /mnt, /tmp" ;; esac
    case "$DEFAULT_DATA/" in /etc/* | /mnt/* | /tmp/* | /run/* | /var/run/* | /proc/* | /sys/* | /dev/* | /) die "data dir $DEFAULT_DATA must be on the machine's disk, not under /etc, /mnt, /tmp, /run" ;; esac
    if [ -d "$STATE" ] && [ ! -e "$STATE/.overlay-fleet-lab" ] && [ -n "$(ls -A "$STATE")" ]; then
        die "$STATE exists and is not a lab state dir; refusing to use it"
    fi
    if [ ! -e "$STATE/.overlay-fleet-lab" ]; then
        mkdir -p "$STATE"
        chmod 0700 "$STATE"
        : >"$STATE/.overlay-fleet-lab"
        # What the machine looked like before the lab, so `down` can put it back.
        {
            [ -d /run/netns ] && echo "netns_dir=yes" || echo "netns_dir=no"
            mountpoint -q /run/netns 2>/dev/null && echo "netns_mounted=yes" || echo "netns_mounted=no"
            [ -d /run/sshd ] && echo "run_sshd=yes" || echo "run_sshd=no"
            [ -d "$DEFAULT_DISKS" ] && echo "disks_dir=yes" || echo "disks_dir=no"
            [ -d /var/lib/overlay-fleet ] && echo "var_lib_of=yes" || echo "var_lib_of=no"
        } >"$STATE/host-before"
    fi
    [ -s "$STATE/disks-dir" ] || printf '%s' "$DEFAULT_DISKS" >"$STATE/disks-dir"
    if [ ! -s "$STATE/data-dir" ]; then
        [ -d "$DEFAULT_DATA" ] && echo "data_dir=yes" >>"$STATE/host-before" || echo "data_dir=no" >>"$STATE/host-before"
        printf '%s' "$DEFAULT_DATA" >"$STATE/data-dir"
    fi
    mkdir -p "$STATE/boxes" "$(disks_dir)" "$(data_dir)"
    install_file "$KEYS_SRC/id_ed25519" "$STATE/id_ed25519" 0600
    install_file "$KEYS_SRC/id_ed25519.pub" "$STATE/id_ed25519.pub" 0644
    install_file "$KEYS_SRC/ssh_host_ed25519_key" "$STATE/ssh_host_ed25519_key" 0600
    install_file "$KEYS_SRC/ssh_host_ed25519_key.pub" "$STATE/ssh_host_ed25519_key.pub" 0644
    install_file "$KEYS_SRC/id_ed25519.pub" "$STATE/authorized_keys" 0600
}

# known_hosts with one pinned line per box address.
write_known_hosts() {
    local n=$1 i key
    key=$(host_key)
    for i in $(seq 1 "$n"); do printf '%s %s\n' "$(box_ip "$i")" "$key"; done | write_if_changed "$STATE/known_hosts"
    chmod 0644 "$STATE/known_hosts"
}

# Indices of the boxes that exist in any form (state dir, netns, host veth), sorted.
existing_boxes() {
    {
        local d
        for d in "$STATE"/boxes/box*; do printf '%s\n' "${d##*/box}"; done
        ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^of-box\([0-9][0-9]*\)$/\1/p'
        ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed -n 's/^of-h\([0-9][0-9]*\)\(@.*\)\{0,1\}$/\1/p'
    } | grep -E '^[1-9][0-9]*$' | sort -n -u
}

# ---------------------------------------------------------------- box files

sshd_config() {
    local i=$1 dir
    dir=$(box_dir "$i")
    cat <<EOF
# overlay-fleet lab sshd for box$i (generated by tools/lab.sh)
ListenAddress $(box_ip "$i"):22
HostKey $STATE/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
PrintMotd no
PrintLastLog no
X11Forwarding no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

# The box's /etc/fstab: the usual Debian header and a few foreign lines that all verify
# (`findmnt --verify`) inside the box: root, the tmpfs /tmp the box really has, and the USB disk.
box_fstab() {
    local i=$1 disk_uuid=$2 root_src root_type
    root_src=$(findmnt -n -o UUID / 2>/dev/null | head -n1 || true)
    if [ -n "$root_src" ]; then root_src="UUID=$root_src"; else root_src=$(findmnt -n -o SOURCE / | head -n1); fi
    root_type=$(findmnt -n -o FSTYPE / | head -n1)
    cat <<EOF
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# systemd generates mount units based on this file, see systemd.mount(5).
# Please run 'systemctl daemon-reload' after making changes here.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/sda1 during installation
$root_src /               $root_type    errors=remount-ro 0       1
tmpfs	/tmp	tmpfs	defaults,nosuid,nodev,size=256m	0	0
# USB disk (box$i)
UUID=$disk_uuid  $DISK_MOUNT  ext4  defaults,nofail,x-systemd.device-timeout=10s  0  2
#/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0
EOF
}

# ---------------------------------------------------------------- inside a box (setup)

# Runs as the anchor, inside `ip netns exec of-box<i> unshare --mount --uts --propagation private`.
# Sets the box up, reports readiness, then becomes `sleep infinity` (holding the namespaces).
box_init() {
    local i=$1 dir img mp t fs src
    dir=$(box_dir "$i")
    img=$(disk_img "$i")
    trap 'echo "box$i setup failed (line $LINENO)" >&2; : >"$dir/failed"' ERR
    set -E

    hostname "box$i"

    # Drop inherited mounts a box must not hold: other boxes' netns handles (they would keep
    # those namespaces alive), and overlay/loop/anything under /mnt /tmp /media of the machine.
    while read -r mp fs src; do
        mp=$(printf '%b' "$mp")
        case "$mp" in / | /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) continue ;; esac
        case "$STATE/" in "$mp"/*) continue ;; esac
        case "$(disks_dir)/" in "$mp"/*) continue ;; esac
        case "$mp" in
            /run/netns | /run/netns/* | /mnt | /mnt/* | /tmp | /tmp/* | /media | /media/*) ;;
            *)
                case "$fs:$src" in nsfs:* | overlay:* | *:/dev/loop*) ;; *) continue ;; esac
                ;;
        esac
        umount -l "$mp" 2>/dev/null || true
    done < <(findmnt -r -n -o TARGET,FSTYPE,SOURCE | tac)

    # Private /tmp and /mnt, as on a real box.
    mount -t tmpfs -o mode=1777,nosuid,nodev,size=256m tmpfs /tmp
    mount -t tmpfs -o mode=0755,size=16m tmpfs /mnt

    # Per-box /etc: an overlay over the machine's /etc (rename(2) into /etc works).
    mount -t overlay overlay \
        -o "lowerdir=/etc,upperdir=$dir/etc/upper,workdir=$dir/etc/work,index=off" /etc

    # Its own root home.
    mount --bind "$dir/root" /root

    # The box's USB disk: a separate ext4 filesystem (loop device auto-clears with the namespace).
    mkdir -p "$DISK_MOUNT"
    mount -t ext4 -o loop "$img" "$DISK_MOUNT"
    if [ ! -d "$LOWER" ]; then
        populate_lower "$i" "$LOWER"
    fi

    # The engine's places. Its own /run, with the lab state dir bound back at the same path.
    if [ "${STATE#/run/}" != "$STATE" ] || [ "${STATE#/var/run/}" != "$STATE" ]; then
        mkdir -p /mnt/.labstate
        mount --bind "$STATE" /mnt/.labstate
        mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m tmpfs /run
        mkdir -p "$STATE"
        mount --move /mnt/.labstate "$STATE"
        rmdir /mnt/.labstate
    else
        mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m tmpfs /run
    fi
    mkdir -p /run/lock
    # The machine's cgroup hierarchies again (`ip netns exec` mounted a fresh /sys).
    mount -t tmpfs -o mode=0755,nosuid,nodev,noexec cgroup /sys/fs/cgroup
    local cmp ctype copts
    while read -r cmp ctype copts; do
        mkdir -p "$cmp"
        if [ "$ctype" = cgroup2 ]; then mount -t cgroup2 cgroup2 "$cmp"; else mount -t cgroup -o "$copts" cgroup "$cmp"; fi
    done <"$dir/cgroup-mounts"
    while read -r cmp copts; do
        [ -e "$cmp" ] || ln -s "$copts" "$cmp"
    done <"$dir/cgroup-links"
    # Engine data on the machine's disk, per box.
    mkdir -p "$(box_data "$i")/docker" /var/lib/docker
    mount --bind "$(box_data "$i")/docker" /var/lib/docker
    # overlay-fleet's host library lives in /var/lib/overlay-fleet on a real box: the box's own.
    mkdir -p "$(box_data "$i")/overlay-fleet" /var/lib/overlay-fleet
    mount --bind "$(box_data "$i")/overlay-fleet" /var/lib/overlay-fleet
    # `docker` is the CLI that matches the box's engine.
    local ENGINE_CLI=""
    . "$dir/engine.env"
    [ /usr/bin/docker -ef "$ENGINE_CLI" ] || mount --bind "$ENGINE_CLI" /usr/bin/docker
    if [ -e /usr/local/bin/docker ]; then
        [ /usr/local/bin/docker -ef "$ENGINE_CLI" ] || mount --bind "$ENGINE_CLI" /usr/local/bin/docker
    else
        mkdir -p "$dir/usrlocalbin/upper" "$dir/usrlocalbin/work"
        ln -sfn "$ENGINE_CLI" "$dir/usrlocalbin/upper/docker"
        mount -t overlay overlay \
            -o "lowerdir=/usr/local/bin,upperdir=$dir/usrlocalbin/upper,workdir=$dir/usrlocalbin/work,index=off" /usr/local/bin
    fi

    mkdir -p /run/sshd
    chmod 0755 /run/sshd

    record_pid "$dir/anchor.pid" "$$"
    : >"$dir/ready"
    trap - ERR
    exec sleep infinity
}

# fill TEXT SIZE: SIZE bytes of TEXT lines on stdout
fill() { (set +o pipefail; yes "$1" | head -c "$2"); }

# A little sample lower cache: identity file, nested dirs, a hard link, a symlink, an xattr,
# a non-root owner and fixed times.
populate_lower() {
    local i=$1 l=$2
    mkdir -p "$l/.yfnode" "$l/cache/00" "$l/cache/01" "$l/cache/02/deep/er"
    printf 'node_id=lab-box%s-lower\nregion=lab\nversion=1.0.0\n' "$i" >"$l/.yfnode/config"
    chmod 0600 "$l/.yfnode/config"
    printf 'sample lower cache of box%s (overlay-fleet lab)\n' "$i" >"$l/README.txt"
    fill "box$i block 00/0001" 65536 >"$l/cache/00/0001.blk"
    fill "box$i block 00/0002" 16384 >"$l/cache/00/0002.blk"
    fill "box$i block 01/0100" 65536 >"$l/cache/01/0100.blk"
    ln "$l/cache/01/0100.blk" "$l/cache/01/0100.hardlink"
    printf 'deep file\n' >"$l/cache/02/deep/er/leaf.dat"
    printf '00/0001.blk 65536\n00/0002.blk 16384\n01/0100.blk 65536\n' >"$l/cache/index.db"
    ln -s cache/01 "$l/latest"
    chown 1000:1000 "$l/cache/00/0002.blk"
    chmod 0640 "$l/cache/00/0002.blk"
    if command -v setfattr >/dev/null 2>&1; then
        setfattr -n user.overlay-fleet.sample -v lower "$l/cache/index.db"
    fi
    find "$l" -exec touch -h -d '2024-01-01 00:00:00 UTC' {} +
    sync
}

# ---------------------------------------------------------------- box lifecycle

# 0 = fully up; 1 = box fine but sshd down or not answering; 3 = box and sshd fine but the
# engine down or not answering; 2 = broken / missing.
box_health() {
    local i=$1 anchor ns hif bif
    ns=$(ns_name "$i")
    hif=$(host_if "$i")
    bif=$(box_if "$i")
    [ -f "$(box_dir "$i")/ready" ] || return 2
    [ -f "$(box_dir "$i")/engine.env" ] || return 2   # a box made before boxes had engines
    anchor=$(anchor_pid "$i")
    [ -n "$anchor" ] || return 2
    has "$(ip -o addr show dev "$hif" 2>/dev/null)" " $(host_ip "$i")/24 " || return 2
    has "$(ip link show dev "$hif" 2>/dev/null)" 'state UP' || return 2
    has "$(ip -n "$ns" -o addr show dev "$bif" 2>/dev/null)" " $(box_ip "$i")/24 " || return 2
    has "$(ip -n "$ns" link show dev "$bif" 2>/dev/null)" 'state UP' || return 2
    has "$(ip -n "$ns" link show dev lo 2>/dev/null)" '[<,]UP[,>]' || return 2
    local inside
    inside=$(nsenter -t "$anchor" -m -u -n sh -c \
        'findmnt -n -o FSTYPE "$1"; findmnt -n -o FSTYPE /etc; hostname' sh "$DISK_MOUNT" 2>/dev/null || true)
    [ "$inside" = "ext4"$'\n'"overlay"$'\n'"box$i" ] || return 2
    [ -n "$(sshd_pid "$i")" ] || return 1
    ssh_ok "$i" || return 1
    [ -n "$(engine_api "$i")" ] || return 3
    return 0
}

# Remove every trace of box i (tolerates any partial state).
destroy_box() {
    local i=$1 ns dir img anchor pids=() p l
    ns=$(ns_name "$i")
    dir=$(box_dir "$i")
    img=$(disk_img "$i")
    # Everything in the box's namespaces: found through the anchor (even if the netns handle
    # is gone) and through the netns handle (even if the anchor is gone).
    anchor=$(recorded_pid "$dir/anchor.pid")
    if [ -n "$anchor" ] && [ "$(proc_comm "$anchor")" = sleep ]; then
        [ -z "$(anchor_pid "$i")" ] || stop_engine "$i"
        mapfile -t -O "${#pids[@]}" pids < <(pids_sharing_ns "$anchor" mnt)
        mapfile -t -O "${#pids[@]}" pids < <(pids_sharing_ns "$anchor" net)
    fi
    if [ -e "/run/netns/$ns" ]; then
        mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null || true)
    fi
    mapfile -t -O "${#pids[@]}" pids < <(cgroup_pids "$i")
    kill_pids "${pids[@]}"
    remove_cgroups "$i"
    if [ -e "/run/netns/$ns" ]; then
        ip netns del "$ns" 2>/dev/null || true
    fi
    ip link show dev "$(host_if "$i")" >/dev/null 2>&1 && ip link del dev "$(host_if "$i")" 2>/dev/null || true
    # The loop device clears itself once the box's mount namespace is gone; give it a moment.
    if [ -e "$img" ]; then
        for p in $(seq 1 50); do
            [ -z "$(losetup -l -n -O NAME -j "$img" 2>/dev/null)" ] && break
            sleep 0.1
        done
        for l in $(losetup -l -n -O NAME -j "$img" 2>/dev/null); do losetup -d "$l" 2>/dev/null || true; done
    fi
    rm -rf "$dir"
    rm -f "$img"
    # engine data (its mounts lived in the box's mount namespace, gone now)
    [ ! -e "$(box_data "$i")" ] || rm -rf --one-file-system "$(box_data "$i")"
}

create_box() {
    local i=$1 ns hif bif dir img uuid n
    ns=$(ns_name "$i")
    hif=$(host_if "$i")
    bif=$(box_if "$i")
    dir=$(box_dir "$i")
    img=$(disk_img "$i")
    log "creating box$i"

    mkdir -p "$dir/etc/upper" "$dir/etc/work"
    sshd_config "$i" >"$dir/sshd_config"
    bash "$REPO/tools/lab-engines.sh" env "$(box_gen "$i")" >"$dir/engine.env"
    cgroup_mounts >"$dir/cgroup-mounts"
    cgroup_links >"$dir/cgroup-links"

    uuid=$(cat /proc/sys/kernel/random/uuid)
    rm -f "$img"
    truncate -s "$DISK_SIZE" "$img"
    mkfs.ext4 -q -F -U "$uuid" -L "usbdisk$i" "$img"

    box_fstab "$i" "$uuid" >"$dir/etc/upper/fstab"
    chmod 0644 "$dir/etc/upper/fstab"
    printf 'box%s\n' "$i" >"$dir/etc/upper/hostname"
    # root's home as on a freshly installed box (the machine's may run slow shell init)
    mkdir -p "$dir/root"
    chmod 0700 "$dir/root"
    local f
    for f in bashrc profile; do
        if [ -f "/usr/share/base-files/dot.$f" ]; then
            cp "/usr/share/base-files/dot.$f" "$dir/root/.$f"
        elif [ -f "/etc/skel/.$f" ]; then
            cp "/etc/skel/.$f" "$dir/root/.$f"
        fi
    done
    { cat /etc/hosts 2>/dev/null || printf '127.0.0.1\tlocalhost\n'; printf '127.0.1.1\tbox%s\n' "$i"; } >"$dir/etc/upper/hosts"

    ip netns add "$ns"
    ip link add "$hif" type veth peer name "$bif" netns "$ns"
    ip addr add "$(host_ip "$i")/24" dev "$hif"
    ip link set "$hif" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(box_ip "$i")/24" dev "$bif"
    ip -n "$ns" link set "$bif" up

    spawn "$dir/init.log" ip netns exec "$ns" unshare --mount --uts --propagation private \
        bash "$SELF" __box-init "$i"
    for n in $(seq 1 300); do
        [ -f "$dir/ready" ] && [ -n "$(anchor_pid "$i")" ] && break
        [ -f "$dir/failed" ] && break
        sleep 0.1
    done
    if [ ! -f "$dir/ready" ] || [ -z "$(anchor_pid "$i")" ]; then
        cat "$dir/init.log" >&2 2>/dev/null || true
        die "box$i: setup did not complete"
    fi
}

start_sshd() {
    local i=$1 anchor dir
    dir=$(box_dir "$i")
    anchor=$(anchor_pid "$i")
    [ -n "$anchor" ] || die "box$i is not up (run: tools/lab.sh up)"
    if [ -z "$(sshd_pid "$i")" ]; then
        rm -f "$dir/sshd.pid"
        spawn "$dir/sshd.log" nsenter -t "$anchor" -m -u -n \
            /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log"
    fi
    if ! wait_ssh "$i"; then
        cat "$dir/sshd.log" >&2 2>/dev/null || true
        die "box$i: sshd does not accept logins"
    fi
}

stop_sshd() {
    local i=$1 anchor
    anchor=$(anchor_pid "$i")
    [ -n "$anchor" ] || die "box$i is not up"
    # listener first (no new connections), then the processes serving connections
    local listener
    listener=$(sshd_pid "$i")
    [ -n "$listener" ] && kill -KILL "$listener" 2>/dev/null || true
    local pids
    mapfile -t pids < <(sshd_pids_in "$anchor")
    [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
    kill_pids ${listener:+"$listener"} "${pids[@]}"
    rm -f "$(box_dir "$i")/sshd.pid"
}

# ---------------------------------------------------------------- commands

with_lock() {
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    flock -w 600 9 || die "could not get the lab lock $LOCK"
}

# in_parallel FN I...: runs FN I for each box index at once; false if one of them failed.
in_parallel() {
    local fn=$1 i k pids=() failed=0
    shift
    for i in "$@"; do
        ( "$fn" "$i" ) &
        pids+=($!)
    done
    for k in "${!pids[@]}"; do wait "${pids[$k]}" || failed=1; done
    return "$failed"
}

cmd_up() {
    local n=${1:-} i existing=() h
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    if [ -n "$n" ]; then
        [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le "$MAX_BOXES" ] || die "box count must be 1..$MAX_BOXES, got '$n'"
    fi
    if [ "${OVERLAY_FLEET_LAB_SKIP_DEPS:-}" != 1 ]; then
        sh "$REPO/tools/system-deps.sh"
    fi
    with_lock
    mapfile -t existing < <(existing_boxes)
    if [ -z "$n" ]; then
        n=2
        [ -s "$STATE/count" ] && n=$(cat "$STATE/count")
    fi
    prepare_state
    printf '%s\n' "$n" | write_if_changed "$STATE/count"
    write_known_hosts "$n"
    # boxes beyond N go
    for i in "${existing[@]}"; do
        [ "$i" -gt "$n" ] && { log "removing box$i"; destroy_box "$i"; }
    done
    # Check the boxes (in parallel: each check includes an SSH login).
    local tmp pids=() to_create=() to_start=() to_engine=()
    # engine binaries first, for the generations the boxes need (a first docker29 build takes
    # minutes; later runs are instant)
    local gen
    for gen in $(for i in $(seq 1 "$n"); do box_gen "$i"; echo; done | sort -u); do
        bash "$REPO/tools/lab-engines.sh" env "$gen" >/dev/null || die "up: no $gen engine binaries"
    done
    tmp=$(mktemp -d "$STATE/.up.XXXXXX")
    for i in $(seq 1 "$n"); do
        ( h=0; box_health "$i" || h=$?; echo "$h" >"$tmp/health.$i" ) &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    for i in $(seq 1 "$n"); do
        h=$(cat "$tmp/health.$i" 2>/dev/null || echo 2)
        case "$h" in
            0) ;;
            1) log "box$i: (re)starting sshd"
               stop_sshd "$i" 2>/dev/null || true
               to_start+=("$i")
               to_engine+=("$i") ;;
            3) log "box$i: (re)starting the engine"
               to_engine+=("$i") ;;
            *) if [ -e "$(box_dir "$i")" ] || [ -e "/run/netns/$(ns_name "$i")" ] || ip link show dev "$(host_if "$i")" >/dev/null 2>&1; then
                   log "box$i is incomplete: recreating"
                   destroy_box "$i"
               fi
               to_create+=("$i")
               to_start+=("$i")
               to_engine+=("$i") ;;
        esac
    done
    # Create the missing boxes in parallel, then start and wait for their sshds, then their
    # engines, in parallel.
    rm -rf "$tmp"
    in_parallel create_box "${to_create[@]}" || die "up: could not create all boxes"
    in_parallel start_sshd "${to_start[@]}" || die "up: not every sshd came up"
    in_parallel start_engine "${to_engine[@]}" || die "up: not every engine came up"
    if [ "${#to_create[@]}" -gt 0 ] || [ ! -s "$STATE/lab-id" ]; then
        date +%s%N >"$STATE/lab-id"
    fi
    log "up: $n box(es) ready"
}

cmd_down() {
    local i existing=() k v netns_dir=no netns_mounted=no run_sshd=no disks_dir_existed=no var_lib_of=yes disks data data_dir_existed=no
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    with_lock
    disks=$(disks_dir)
    data=$(data_dir)
    if [ -s "$STATE/host-before" ]; then
        while IFS='=' read -r k v; do
            case "$k" in
                netns_dir) netns_dir=$v ;;
                netns_mounted) netns_mounted=$v ;;
                run_sshd) run_sshd=$v ;;
                disks_dir) disks_dir_existed=$v ;;
                var_lib_of) var_lib_of=$v ;;
                data_dir) data_dir_existed=$v ;;
            esac
        done <"$STATE/host-before"
    fi
    mapfile -t existing < <(existing_boxes)
    for i in "${existing[@]}"; do destroy_box "$i"; done

    # Leftover engine cgroups and data of boxes the state no longer knows about.
    local d
    for d in $(cgroup_mounts | awk '{ print $1 }'); do
        for d in "$d"/of-lab-box*; do
            i=${d##*/of-lab-box}
            [[ "$i" =~ ^[1-9][0-9]*$ ]] || continue
            kill_pids $(cgroup_pids "$i")
            remove_cgroups "$i"
        done
    done
    for d in "$data"/box* "$DEFAULT_DATA"/box*; do rm -rf --one-file-system "$d"; done
    if [ "$data_dir_existed" != yes ]; then
        rmdir "$data" 2>/dev/null || true
        [ "$DEFAULT_DATA" = "$data" ] || rmdir "$DEFAULT_DATA" 2>/dev/null || true
    fi

    # Leftover loop devices backed by lab images (e.g. state dir lost).
    local l f
    while read -r l f; do
        case "$f" in "$disks"/box*.img* | "$DEFAULT_DISKS"/box*.img*) losetup -d "$l" 2>/dev/null || true ;; esac
    done < <(losetup -n -l -O NAME,BACK-FILE 2>/dev/null || true)

    # ip netns leaves /run/netns bind-mounted on itself; undo that if it was not so before
    # and no other namespace lives there.
    if [ -d /run/netns ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
        if [ "$netns_mounted" != yes ]; then
            while mountpoint -q /run/netns; do umount /run/netns 2>/dev/null || umount -l /run/netns || break; done
        fi
        [ "$netns_dir" = yes ] || rmdir /run/netns 2>/dev/null || true
    fi
    # The mount point of the boxes' /var/lib/overlay-fleet, if the lab made it.
    [ "$var_lib_of" = yes ] || rmdir /var/lib/overlay-fleet 2>/dev/null || true
    if [ "$run_sshd" != yes ] && [ -d /run/sshd ] && ! any_live_sshd; then
        rmdir /run/sshd 2>/dev/null || true
    fi

    rm -f "$disks"/box*.img "$DEFAULT_DISKS"/box*.img
    if [ "$disks_dir_existed" != yes ]; then
        rmdir "$disks" 2>/dev/null || true
        [ "$DEFAULT_DISKS" = "$disks" ] || rmdir "$DEFAULT_DISKS" 2>/dev/null || true
    fi
    if [ -e "$STATE/.overlay-fleet-lab" ]; then
        rm -rf "$STATE"
    elif [ -d "$STATE" ]; then
        rmdir "$STATE" 2>/dev/null || log "left $STATE alone: not a lab state dir"
    fi
    log "down: lab removed"
}

cmd_status() {
    local i boxes=() anchor sshd ok=0 h
    mapfile -t boxes < <(existing_boxes)
    if [ ${#boxes[@]} -eq 0 ]; then
        echo "lab: no boxes (state dir $STATE)"
        return 1
    fi
    printf '%-6s %-7s %-16s %-8s %-8s %-9s %-5s %s\n' BOX STATE ADDRESS ANCHOR SSHD ENGINE API NOTE
    local tmp pids=() api
    tmp=$(mktemp -d)
    for i in "${boxes[@]}"; do
        ( h=0; box_health "$i" || h=$?; echo "$h" >"$tmp/$i"; engine_api "$i" >"$tmp/api.$i" ) &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    for i in "${boxes[@]}"; do
        anchor=$(anchor_pid "$i")
        sshd=$(sshd_pid "$i")
        h=$(cat "$tmp/$i" 2>/dev/null || echo 2)
        api=$(cat "$tmp/api.$i" 2>/dev/null || true)
        local row=("box$i" "" "$(box_ip "$i"):22" "${anchor:--}" "${sshd:--}" "$(box_gen "$i")" "${api:--}")
        case "$h" in
            0) row[1]=up; row+=("ssh ok, engine ok") ;;
            1) ok=1; row[1]=no-ssh; row+=("namespaces up, sshd not answering") ;;
            3) ok=1; row[1]=no-engine; row+=("ssh ok, engine not answering") ;;
            *) ok=1; row[1]=broken; row+=("incomplete (run: tools/lab.sh up)") ;;
        esac
        printf '%-6s %-7s %-16s %-8s %-8s %-9s %-5s %s\n' "${row[@]}"
    done
    rm -rf "$tmp"
    return "$ok"
}

json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

cmd_env() {
    local n i first=1 key api
    [ -s "$STATE/count" ] || die "lab is not up (run: tools/lab.sh up)"
    n=$(cat "$STATE/count")
    key=$(host_key)
    printf '{\n  "stateDir": %s,\n  "boxes": [' "$(json_str "$STATE")"
    for i in $(seq 1 "$n"); do
        [ $first -eq 1 ] || printf ','
        first=0
        api=$(engine_api "$i")
        printf '\n    { "name": "box%s", "host": "%s", "port": 22, "user": "root", "hostKey": %s, "privateKeyPath": %s, "knownHostsPath": %s, "disk": %s, "lower": %s, "engine": %s, "apiVersion": %s, "dockerHost": %s, "cgroupParent": %s, "dataDir": %s }' \
            "$i" "$(box_ip "$i")" "$(json_str "$key")" "$(json_str "$STATE/id_ed25519")" \
            "$(json_str "$STATE/known_hosts")" "$(json_str "$DISK_MOUNT")" "$(json_str "$LOWER")" \
            "$(json_str "$(box_gen "$i")")" "$(if [ -n "$api" ]; then json_str "$api"; else printf null; fi)" \
            "$(json_str "unix://$DOCKER_SOCK")" "$(json_str "$(cgroup_parent "$i")")" "$(json_str "$(box_data "$i")")"
    done
    printf '\n  ]\n}\n'
}

cmd_exec() {
    local i anchor
    [ $# -ge 1 ] || die "usage: lab.sh exec BOX -- CMD..."
    i=$(parse_box "$1")
    shift
    [ "${1:-}" != -- ] || shift
    [ $# -ge 1 ] || die "usage: lab.sh exec BOX -- CMD..."
    anchor=$(anchor_pid "$i")
    [ -n "$anchor" ] || die "box$i is not up"
    exec nsenter -t "$anchor" -m -u -n -- "$@"
}

cmd_ssh() {
    local i opts
    [ $# -ge 1 ] || die "usage: lab.sh ssh BOX [CMD...]"
    i=$(parse_box "$1")
    shift
    [ "${1:-}" != -- ] || shift
    [ -s "$STATE/known_hosts" ] || die "lab is not up"
    mapfile -t opts < <(ssh_opts)
    exec ssh "${opts[@]}" "root@$(box_ip "$i")" "$@"
}

usage() {
    sed -n '2,/^$/p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd=${1:-}
    [ $# -eq 0 ] || shift
    case "$cmd" in
        up) [ $# -le 1 ] || usage; cmd_up "$@" ;;
        down) cmd_down ;;
        status) cmd_status ;;
        env) cmd_env ;;
        id) [ -s "$STATE/lab-id" ] || die "lab is not up (run: tools/lab.sh up)"; cat "$STATE/lab-id" ;;
        exec) cmd_exec "$@" ;;
        ssh) cmd_ssh "$@" ;;
        stop-sshd)
            [ $# -eq 1 ] || usage
            local i
            i=$(parse_box "$1")
            with_lock
            stop_sshd "$i" ;;
        start-sshd)
            [ $# -eq 1 ] || usage
            local i
            i=$(parse_box "$1")
            with_lock
            start_sshd "$i" ;;
        stop-engine | start-engine)
            [ $# -eq 1 ] || usage
            local i
            i=$(parse_box "$1")
            with_lock
            [ -n "$(anchor_pid "$i")" ] || die "box$i is not up"
            if [ "$cmd" = stop-engine ]; then stop_engine "$i"; else start_engine "$i"; fi ;;
        __box-init) box_init "$(parse_box "$1")" ;;
        -h | --help | help | "") usage ;;
        *) log "unknown command: $cmd"; usage ;;
    esac
}

main "$@"
