#!/bin/sh
# Benchmark of the box agent (host/agent, `overlay-fleet-host`) on one box, without SSH: 64
# instances created and read as the provider would, one agent process per operation, beside the
# floor (the seed's recipe: `mkdir -p; mount -t overlay; echo >> fstab` per instance, one shell).
# Not a test: it prints figures.
#
#   sudo sh bench/agent.sh [instances=64] [rounds=3]
#
# Goals (issue 25 item 5): a fresh create of the instances (their fstab entries and mounts) takes
# no longer than the floor (agent/floor <= 1.0); reading them back (64 `overlay-mount read` and
# 64 `fstab-entry read`, what a `pulumi refresh` issues) takes at most 50 ms.
#
# The agent is built once as a box gets it (CGO_ENABLED=0, -trimpath, -ldflags "-s -w"). All runs
# in a private mount namespace: /run is a tmpfs there (the agent's locks, /run/overlay-fleet;
# mount(8)'s utab), the lower and the instances' dirs are in a tmpfs, and the fstab is a private
# copy (the request names it: `fstab`), first in the tmpfs, then on the machine's disk (a temp
# dir in /tmp, the filesystem of /etc here: the agent's fsyncs cost there what they cost a box).
# Each round times the floor and the agent's creates (per instance `overlay-mount create` then
# `fstab-entry create`, each call timed), which goes first alternating between rounds, each
# followed by unmount and clean-up; while the agent's instances are mounted, the reads (per
# instance `overlay-mount read` then `fstab-entry read`). The figures are the median of the
# rounds, each round's in brackets; the machine being shared and noisy, a ratio is taken within
# a round (its agent time over its floor), then the median. Both sides are driven from bash
# (root's login shell, which runs the floor's commands over SSH in bench/run.ts), one process per
# command. Everything is removed at the end, on failure too. Needs root, util-linux (unshare,
# mount, findmnt), bash 5 and go.
#
# Where the time goes, printed per call: the process start (2 x 64 no-op agent starts, a bad
# subcommand that exits 2 before it reads anything; beside a minimal static Go program and
# /bin/true) and the packages' init in it (GODEBUG=inittrace=1); overlay-mount create over the
# first and the last quarter of the instances (its checks against the overlays already mounted
# grow with them); fstab-entry create in the tmpfs and on the disk (its fsyncs), and the
# findmnt --verify each edit runs, on the fstab before and with every line; a read beyond its
# process start.
#
# Seen on the 2-core development VM (host/agent as of dcec481, one process per operation): 64
# creates take 7-12 times the floor's ~0.2 s, 64 reads 0.5-0.7 s. 128 agent starts at ~3.6 ms are
# ~0.46 s by themselves (a minimal Go program starts in ~1.9 ms: 128 of them ~0.24 s, more than
# the floor's create and the read goal); overlay-mount create grows from ~7 to ~22 ms per call
# (about 8,900 stat calls at 64 mounted overlays, per strace: every pair of the instance's dirs
# and another overlay's layers is resolved again, component by component, by layout.Relation /
# Canon / EvalSymlinks); findmnt --verify, ~2.5 ms plus ~0.12 ms per fstab line, is most of an
# fstab-entry create beyond its start. A batch (one process, one lock, one mountinfo read and one
# fstab edit for a box's instances) is what could reach the goals.
set -eu

if [ "${OF_BENCH_IN_NS-}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "bench/agent.sh: run as root" >&2; exit 1; }
    for t in bash unshare go findmnt mount umount; do
        command -v "$t" >/dev/null 2>&1 || { echo "bench/agent.sh: $t is required" >&2; exit 1; }
    done
    OF_BENCH_IN_NS=1 exec unshare --mount --propagation private -- bash "$0" "$@"
fi
[ -n "${BASH_VERSION-}" ] || { echo "bench/agent.sh: run it as sh bench/agent.sh" >&2; exit 1; }
[ -n "${EPOCHREALTIME-}" ] || { echo "bench/agent.sh: needs bash 5 (EPOCHREALTIME)" >&2; exit 1; }

n=${1:-64}
rounds=${2:-3}
case "$n$rounds" in *[!0-9]*) n=0 ;; esac
if [ "$n" -lt 1 ] || [ "$rounds" -lt 1 ]; then
    echo "usage: sh bench/agent.sh [instances=64] [rounds=3]" >&2
    exit 2
fi
q=$((n / 4 > 0 ? n / 4 : 1)) # a quarter of the instances
here=$(cd "$(dirname "$0")/.." && pwd)
export LC_ALL=C

B=$(mktemp -d /tmp/of-bench-agent.XXXXXX)
cleanup() {
    set +e
    if [ -d "$B/w" ]; then
        for m in "$B"/w/disk/*/mnts; do umount -l "$m" 2>/dev/null; done
        umount -l "$B/w" 2>/dev/null
    fi
    rm -rf "$B"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

bin=$B/overlay-fleet-host
(cd "$here/host/agent" && GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w" -o "$bin" ./cmd/overlay-fleet-host)

# For comparison: the least a process of Go costs here (a static program that only exits 2),
# built alike, with the agent's Go version line (the runtime's defaults follow it).
mkdir "$B/min"
printf 'module bench/min\n\ngo %s\n' "$(sed -n 's/^go //p' "$here/host/agent/go.mod")" >"$B/min/go.mod"
printf 'package main\n\nimport "os"\n\nfunc main() { os.Exit(2) }\n' >"$B/min/main.go"
(cd "$B/min" && GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$B/min-go" .)

# /run of the namespace: the agent's locks and mount(8)'s utab, not the machine's.
mount -t tmpfs -o size=4m,mode=0755 of-bench-run /run
mkdir -p /run/mount /run/lock
chmod 1777 /run/lock

W=$B/w
mkdir "$W"
mount -t tmpfs -o size=256m,mode=0755 of-bench-agent "$W"
D=$W/disk
L=$D/static_cache
mkdir -p "$L/.yfnode/cache/d0" "$L/.yfnode/cache/d1" "$W/etc" "$W/req" "$B/etc"
for f in 0 1 2 3 4 5 6 7; do
    echo "lower file $f" >"$L/.yfnode/cache/d$((f % 2))/f$f.vdata"
done
echo "lower config" >"$L/.yfnode/config"

# A box's fstab: the machine's, then a root (the machine's root device: a UUID= that does not
# resolve would cost findmnt a probe of every disk) and a data disk as a box has them; foreign
# lines, checked by every findmnt --verify too.
fstab0=$B/fstab.orig
{
    cat /etc/fstab 2>/dev/null || :
    echo "$(findmnt -n -o SOURCE / || echo /dev/root) / ext4 defaults,noatime,errors=remount-ro 0 1"
    echo "/dev/sda1 $D ext4 defaults,nofail 0 2"
} >"$fstab0"

pinned=index=off,nfs_export=off,redirect_dir=off,metacopy=off
# The line's options as the provider writes them (test/host/harness.ts fstabOptions).
lineopts() { # DIR
    printf 'lowerdir=%s,upperdir=%s/upper,workdir=%s/work,%s,nofail,x-systemd.requires-mounts-for=%s,x-systemd.before=docker.service' \
        "$L" "$1" "$1" "$pinned" "$D"
}

# The requests, one file each: the driver only redirects stdin.
i=1
while [ "$i" -le "$n" ]; do
    d=$D/ttnode$i
    printf '{"merged":"%s/mnts","lower":"%s","upper":"%s/upper","work":"%s/work","options":"%s"}\n' \
        "$d" "$L" "$d" "$d" "$pinned" >"$W/req/om-$i.json"
    for where in mem disk; do
        if [ "$where" = mem ]; then fstab=$W/etc/fstab; else fstab=$B/etc/fstab; fi
        printf '{"fstab":"%s","id":"box1/ttnode%s","merged":"%s/mnts","options":"%s"}\n' \
            "$fstab" "$i" "$d" "$(lineopts "$d")" >"$W/req/fe-create-$where-$i.json"
        printf '{"fstab":"%s","id":"box1/ttnode%s"}\n' "$fstab" "$i" >"$W/req/fe-read-$where-$i.json"
    done
    i=$((i + 1))
done

# The floor's script: the seed's recipe as typed, one shell.
floor_script() { # FSTAB
    i=1
    while [ "$i" -le "$n" ]; do
        d=$D/ttnode$i
        echo "mkdir -p $d/upper $d/work $d/mnts"
        echo "mount -t overlay overlay -o lowerdir=$L,upperdir=$d/upper,workdir=$d/work,$pinned $d/mnts"
        echo "echo 'overlay $d/mnts overlay $(lineopts "$d") 0 0' >> $1"
        i=$((i + 1))
    done
}
floor_mem=$(printf 'set -e\n'; floor_script "$W/etc/fstab")
floor_disk=$(printf 'set -e\n'; floor_script "$B/etc/fstab")

# REPLY = microseconds since the epoch, without a process.
us() { local t=${EPOCHREALTIME/[.,]/}; REPLY=${t#0}; }
ms() { awk -v u="$1" 'BEGIN { printf "%.0f", u / 1000 }'; }
ms1() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
ms2() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
# median of the numbers on stdin
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() { printf '%s\n' "$@" | median; }
calc() { awk "BEGIN { printf \"%.10g\", $1 }"; }

reset_fstabs() {
    cp "$fstab0" "$W/etc/fstab"
    cp "$fstab0" "$B/etc/fstab"
    rm -f "$W/etc/fstab.overlay-fleet.bak" "$B/etc/fstab.overlay-fleet.bak"
}

# Every instance mounted as asked and its line in FSTAB, once each; else fail naming what is
# missing.
check() { # FSTAB WHO
    local mounted lines
    mounted=$(awk -v d="$D/" '$5 ~ "^" d "ttnode[0-9]+/mnts$" && $0 ~ / - overlay overlay / && $0 ~ /lowerdir=/ { n++ } END { print n + 0 }' /proc/self/mountinfo)
    lines=$(grep -c "^overlay $D/ttnode[0-9]*/mnts overlay lowerdir=$L,.*nofail" "$1" || :)
    if [ "$mounted" != "$n" ] || [ "$lines" != "$n" ]; then
        echo "bench/agent.sh: after the $2: $mounted of $n overlays mounted, $lines of $n fstab lines" >&2
        exit 1
    fi
}

clean() {
    local m
    for m in "$D"/ttnode*/mnts; do
        [ -d "$m" ] || continue
        umount "$m"
    done
    rm -rf "$D"/ttnode*
    reset_fstabs
    if grep -q " $D/ttnode" /proc/self/mountinfo; then
        echo "bench/agent.sh: an overlay stayed mounted after the clean-up" >&2
        exit 1
    fi
}

# The floor with the fstab of WHERE; sets FLOOR_US.
floor() { # mem|disk
    local t0 script
    if [ "$1" = mem ]; then script=$floor_mem; fstab=$W/etc/fstab; else script=$floor_disk; fstab=$B/etc/fstab; fi
    us; t0=$REPLY
    bash -c "$script"
    us; FLOOR_US=$((REPLY - t0))
    check "$fstab" "floor ($1)"
    clean
}

# Runs the agent: OUT is appended its answer; a failure stops the benchmark with its stderr.
agent() { # IN OUT ARGS...
    local in=$1 out=$2
    shift 2
    if ! "$bin" "$@" <"$in" >>"$out" 2>"$W/agent.err"; then
        echo "bench/agent.sh: overlay-fleet-host $* <$in failed: $(cat "$W/agent.err")" >&2
        exit 1
    fi
}

# pairs OP FE: per instance `overlay-mount OP` then `fstab-entry OP` (the request fe-FE-<i>.json),
# each call timed; sets PAIRS_US (all of them), OM_US and FE_US (the calls' times, one a line, in
# instance order).
pairs() {
    local i t0 t1 t2 t3 om=() fe=()
    : >"$W/answers"
    us; t0=$REPLY
    i=1
    while [ "$i" -le "$n" ]; do
        us; t1=$REPLY
        agent "$W/req/om-$i.json" "$W/answers" overlay-mount "$1"
        us; t2=$REPLY
        agent "$W/req/fe-$2-$i.json" "$W/answers" fstab-entry "$1"
        us; t3=$REPLY
        om+=($((t2 - t1)))
        fe+=($((t3 - t2)))
        i=$((i + 1))
    done
    PAIRS_US=$((t3 - t0))
    OM_US=$(printf '%s\n' "${om[@]}")
    FE_US=$(printf '%s\n' "${fe[@]}")
}

# The agent's creates with the fstab of WHERE; sets CREATE_US, OM_US and FE_US.
create() { # mem|disk
    if [ "$1" = mem ]; then fstab=$W/etc/fstab; else fstab=$B/etc/fstab; fi
    pairs create "create-$1"
    CREATE_US=$PAIRS_US
    check "$fstab" "agent's creates ($1)"
    local ok
    ok=$(grep -c '"mounted":true\|"present":true' "$W/answers" || :)
    [ "$ok" = $((2 * n)) ] || { echo "bench/agent.sh: $ok of $((2 * n)) answers of the creates say mounted/present" >&2; exit 1; }
}

# The reads (per instance `overlay-mount read` then `fstab-entry read`, as a refresh reads each
# resource); sets READ_US and ROM_US / RFE_US.
reads() { # mem|disk
    pairs read "read-$1"
    READ_US=$PAIRS_US ROM_US=$OM_US RFE_US=$FE_US
    local ok
    ok=$(grep -c "\"mounted\":true,\"lower\":\"$L\".*\"options\":\"$pinned\"\\|\"present\":true" "$W/answers" || :)
    [ "$ok" = $((2 * n)) ] || { echo "bench/agent.sh: $ok of $((2 * n)) answers of the reads report the instance" >&2; exit 1; }
}

# 2 x N process starts: the agent with a bad subcommand (exit 2 at once, after the Go runtime's
# start and the packages' init), and /bin/true for comparison; sets NOOP_US and TRUE_US (per call).
noop() {
    local i t0 t1 rc
    us; t0=$REPLY
    for ((i = 0; i < 2 * n; i++)); do
        rc=0
        "$bin" bench-noop 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || { echo "bench/agent.sh: the no-op call exited $rc, not 2" >&2; exit 1; }
    done
    us; t1=$REPLY
    NOOP_US=$(((t1 - t0) / (2 * n)))
    us; t0=$REPLY
    for ((i = 0; i < 2 * n; i++)); do "$B/min-go" || [ $? = 2 ]; done
    us; t1=$REPLY
    MIN_US=$(((t1 - t0) / (2 * n)))
    us; t0=$REPLY
    for ((i = 0; i < 2 * n; i++)); do /bin/true; done
    us; t1=$REPLY
    TRUE_US=$(((t1 - t0) / (2 * n)))
}

# The agent's package initialisation (GODEBUG=inittrace=1), N runs; sets INIT_US (all packages)
# and INIT_TOP (the costliest package and its microseconds, median of the runs).
init_cost() {
    local i
    for ((i = 0; i < n; i++)); do
        GODEBUG=inittrace=1 "$bin" bench-noop 2>&1 >/dev/null || :
    done | awk '$1 == "init" { c[$2] += $5 * 1000; all += $5 * 1000 } END { for (p in c) print p, c[p]; print "ALL", all }' >"$W/init"
    INIT_US=$(awk -v n="$n" '$1 == "ALL" { printf "%.0f", $2 / n }' "$W/init")
    INIT_TOP=$(awk -v n="$n" '$1 != "ALL" && $2 > m { m = $2; p = $1 } END { printf "%s %.0f", p, m / n }' "$W/init")
}

# What a read does beyond its process start: per instance a no-op start, an overlay-mount read and
# an fstab-entry read, one after the other (the machine's drift hits the three alike); sets
# BEYOND_OM_US and BEYOND_FE_US (median of the calls minus median of the no-op starts).
beyond() {
    local i t0 t1 t2 t3 nop=() om=() fe=()
    : >"$W/answers"
    for ((i = 1; i <= n; i++)); do
        us; t0=$REPLY
        "$bin" bench-noop 2>/dev/null || :
        us; t1=$REPLY
        agent "$W/req/om-$i.json" "$W/answers" overlay-mount read
        us; t2=$REPLY
        agent "$W/req/fe-read-mem-$i.json" "$W/answers" fstab-entry read
        us; t3=$REPLY
        nop+=($((t1 - t0))) om+=($((t2 - t1))) fe+=($((t3 - t2)))
    done
    local m0
    m0=$(med "${nop[@]}")
    BEYOND_OM_US=$(calc "$(med "${om[@]}") - $m0")
    BEYOND_FE_US=$(calc "$(med "${fe[@]}") - $m0")
}

# findmnt --verify of the full fstab (what each fstab-entry create runs, on a file that grows to
# this), N times; sets FINDMNT_US (per run).
findmnt_cost() { # FSTAB
    local i t0 t1
    us; t0=$REPLY
    for ((i = 0; i < n; i++)); do findmnt --verify --tab-file "$1" >/dev/null 2>&1 || :; done
    us; t1=$REPLY
    FINDMNT_US=$(((t1 - t0) / n))
}

# The agent's side with the fstab of WHERE: the creates, and with the fstab in the tmpfs, while the
# instances are mounted, the reads, the no-op starts and findmnt's cost; then the clean-up.
agent_pass() { # mem|disk
    create "$1"
    if [ "$1" = mem ]; then
        R_CREATE_MEM+=("$CREATE_US")
        R_OM+=("$(printf '%s\n' "$OM_US" | median)")
        R_OM_FIRST+=("$(printf '%s\n' "$OM_US" | head -n "$q" | median)")
        R_OM_LAST+=("$(printf '%s\n' "$OM_US" | tail -n "$q" | median)")
        R_FE_MEM+=("$(printf '%s\n' "$FE_US" | median)")
        reads mem
        R_READ+=("$READ_US")
        R_ROM+=("$(printf '%s\n' "$ROM_US" | median)")
        R_RFE+=("$(printf '%s\n' "$RFE_US" | median)")
        noop
        R_NOOP+=("$NOOP_US") R_TRUE+=("$TRUE_US") R_MIN+=("$MIN_US")
        beyond
        R_BEYOND_OM+=("$BEYOND_OM_US") R_BEYOND_FE+=("$BEYOND_FE_US")
        findmnt_cost "$fstab0"
        R_FINDMNT0+=("$FINDMNT_US")
        findmnt_cost "$W/etc/fstab"
        R_FINDMNT+=("$FINDMNT_US")
    else
        R_CREATE_DISK+=("$CREATE_US")
        R_FE_DISK+=("$(printf '%s\n' "$FE_US" | median)")
    fi
    clean
}

reset_fstabs
# each round's figures
declare -a R_FLOOR_MEM=() R_FLOOR_DISK=() R_CREATE_MEM=() R_CREATE_DISK=() R_READ=() R_ROM=() \
    R_RFE=() R_OM=() R_OM_FIRST=() R_OM_LAST=() R_FE_MEM=() R_FE_DISK=() R_NOOP0=() R_NOOP=() \
    R_TRUE=() R_MIN=() R_FINDMNT0=() R_FINDMNT=() R_INIT=() R_INIT_TOP=() R_BEYOND_OM=() R_BEYOND_FE=()
for ((r = 1; r <= rounds; r++)); do
    echo "round $r of $rounds ..."
    noop
    R_NOOP0+=("$NOOP_US")
    init_cost
    R_INIT+=("$INIT_US") R_INIT_TOP+=("${INIT_TOP##* }")
    for where in mem disk; do
        # which side goes first alternates: a drift of the machine favours neither
        if [ $((r % 2)) = 1 ]; then
            floor "$where"
            agent_pass "$where"
        else
            agent_pass "$where"
            floor "$where"
        fi
        if [ "$where" = mem ]; then R_FLOOR_MEM+=("$FLOOR_US"); else R_FLOOR_DISK+=("$FLOOR_US"); fi
    done
done
R_RATIO_MEM=() R_RATIO_DISK=()
for ((r = 0; r < rounds; r++)); do
    R_RATIO_MEM+=("$(ratio "${R_CREATE_MEM[r]}" "${R_FLOOR_MEM[r]}")")
    R_RATIO_DISK+=("$(ratio "${R_CREATE_DISK[r]}" "${R_FLOOR_DISK[r]}")")
done

# "median  [round figures]" of microsecond values, in ms (precision: ms | ms1 | ms2)
fig() { # FMT VALUES...
    local f=$1 v out=
    shift
    for v in "$@"; do out="$out $($f "$v")"; done
    printf '%s  [%s]' "$($f "$(med "$@")")" "${out# }"
}
rfig() { printf '%.2f  [%s]' "$(med "$@")" "$*"; }
verdict() { awk -v v="$1" -v g="$2" 'BEGIN { print (v <= g ? "met" : "MISSED") }'; }

rm_mem=$(printf '%.2f' "$(med "${R_RATIO_MEM[@]}")")
rm_disk=$(printf '%.2f' "$(med "${R_RATIO_DISK[@]}")")
read_ms=$(ms1 "$(med "${R_READ[@]}")")
noop_med=$(med "${R_NOOP[@]}")
starts=$(calc "$noop_med * 2 * $n")
fs=$(df -P -T "$B" | awk 'NR == 2 { print $2 }')
echo
echo "box agent: $n instances on one box, no SSH, one process per command (driven from bash, like the floor's commands);"
echo "ms of wall time, the median of $rounds rounds [each round]; a ratio is each round's agent over the same round's floor"
echo "create, fstab in the tmpfs: floor (mkdir -p; mount -t overlay; echo >> fstab) $(fig ms "${R_FLOOR_MEM[@]}"), agent (overlay-mount create + fstab-entry create) $(fig ms "${R_CREATE_MEM[@]}")"
echo "  agent/floor: $(rfig "${R_RATIO_MEM[@]}")  goal <= 1.0: $(verdict "$rm_mem" 1.0)"
echo "create, fstab on the machine's disk ($fs, the filesystem of /etc here): floor $(fig ms "${R_FLOOR_DISK[@]}"), agent $(fig ms "${R_CREATE_DISK[@]}")"
echo "  agent/floor: $(rfig "${R_RATIO_DISK[@]}")  goal <= 1.0: $(verdict "$rm_disk" 1.0)"
echo "read, $n overlay-mount read + $n fstab-entry read (what a refresh issues): $(fig ms1 "${R_READ[@]}")  goal <= 50 ms: $(verdict "$read_ms" 50)"
echo "  per call: overlay-mount read $(fig ms2 "${R_ROM[@]}"), fstab-entry read $(fig ms2 "${R_RFE[@]}")"
echo "where the time goes, ms per call (the median of the rounds' medians):"
echo "  process start: the agent exiting at once (a bad subcommand) $(fig ms2 "${R_NOOP[@]}"), $(ms2 "$(med "${R_NOOP0[@]}")") without the overlays mounted;"
echo "    of it the packages' init $(ms2 "$(med "${R_INIT[@]}")") (the costliest, ${INIT_TOP% *}, $(ms2 "$(med "${R_INIT_TOP[@]}")"))"
echo "    x$((2 * n)) calls = $(ms "$starts") ms of each create and each read, $(ratio "$starts" "$(med "${R_FLOOR_MEM[@]}")") x the floor's create"
echo "    a minimal static Go program $(fig ms2 "${R_MIN[@]}") (x$((2 * n)): $(ms "$(calc "$(med "${R_MIN[@]}") * 2 * $n")") ms, beside the floor's create and the read goal); /bin/true $(fig ms2 "${R_TRUE[@]}")"
echo "  overlay-mount create $(fig ms2 "${R_OM[@]}"): the first $q instances $(ms2 "$(med "${R_OM_FIRST[@]}")"), the last $q $(ms2 "$(med "${R_OM_LAST[@]}")") (checked against the overlays already mounted)"
echo "  fstab-entry create $(fig ms2 "${R_FE_MEM[@]}") in the tmpfs, $(fig ms2 "${R_FE_DISK[@]}") on the disk (fsync of the temp file, the backup, the directory)"
echo "    findmnt --verify, run by each edit on the file as it grows: $(fig ms2 "${R_FINDMNT0[@]}") on the fstab before, $(fig ms2 "${R_FINDMNT[@]}") with the $n lines"
echo "  a read beyond its process start (each beside a no-op start): overlay-mount $(fig ms2 "${R_BEYOND_OM[@]}"), fstab-entry $(fig ms2 "${R_BEYOND_FE[@]}")"
echo "agent: create/floor $rm_mem (fstab in the tmpfs), $rm_disk (on the disk), goal <= 1.0; read of $n instances $read_ms ms, goal <= 50 ms"
