#!/bin/sh
# Benchmark of the cache-generation fold (host/fold.sh + host/foldtool) against plain copies, on a
# loop ext4 image. Not a test: it prints figures.
#
#   sudo sh bench/fold.sh [files=10000] [changedPercent=10] [fileKiB=64] [workDir=/var/tmp] [bigFiles=100000] [bigFileKiB=4] [wideEntries=100000]
#
# Case 1 builds a lower cache of <files> files of <fileKiB> KiB in 100 directories, mounts two
# overlay instances on it, changes <changedPercent>% of the files through each instance (rewrites,
# new files, deletes; a few paths changed by both, to make conflicts), then times:
#   - fold into generation 2 (hard-link farm + copies of the changed files);
#   - for comparison, `cp -al` of the lower plus `rsync -aHAX upper/ farm/` of both uppers and a
#     `sync` (the seed's approach without its whiteout handling: the same data moved and, as the
#     fold does, written back);
#   - drop_folded of each upper (the switch).
# and prints files/s, MB/s, the extra disk each used, the peak memory of the fold and
# `fold/rsync: <ratio>` (fold time over cp -al + rsync time). Case 2 does the same fold with
# <bigFiles> files of <bigFileKiB> KiB (linearity) and prints `100k: ...`. Case 3 folds one
# directory of <wideEntries> entries that one instance changes a few of and the other empties and
# starts over (an opaque directory hiding all of them) and prints `wide: ...`. These are the shapes
# of the host tests' 100,000-file and 100,000-entry folds (test/host/fold.test.ts), which check
# what the fold does, not how fast. Runs in a private mount namespace; everything is removed at
# the end. Needs root, util-linux, e2fsprogs, attr, rsync, go
# (to build host/foldtool).
set -eu

if [ "${OF_BENCH_IN_NS-}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "bench/fold.sh: run as root" >&2; exit 1; }
    OF_BENCH_IN_NS=1 exec unshare --mount --propagation private -- sh "$0" "$@"
fi

files=${1:-10000}
pct=${2:-10}
kib=${3:-64}
base=${4:-/var/tmp}
bigfiles=${5:-100000}
bigkib=${6:-4}
wide=${7:-100000}
here=$(cd "$(dirname "$0")/.." && pwd)
for t in getfattr setfattr rsync mkfs.ext4 go; do
    command -v "$t" >/dev/null 2>&1 || { echo "bench/fold.sh: $t is required" >&2; exit 1; }
done

B=$(mktemp -d "$base/of-bench.XXXXXX")
cleanup() {
    for m in "$B"/*/disk/n1/mnts "$B"/*/disk/n2/mnts "$B"/*/disk; do umount -l "$m" 2>/dev/null || :; done
    rm -rf "$B"
}
trap cleanup EXIT INT TERM

OVERLAY_FLEET_FOLDTOOL=$B/foldtool
export OVERLAY_FLEET_FOLDTOOL
(cd "$here/host/foldtool" && CGO_ENABLED=0 go build -trimpath -o "$OVERLAY_FLEET_FOLDTOOL" .)
timer=
[ ! -x /usr/bin/time ] || timer="/usr/bin/time -f %M -o"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "inf" }'; }
mbrate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / 1048576 / s; else print "inf" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
mib() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1048576 }'; }
used() { sync; df -P -k "$D" | awk 'NR == 2 { print $3 * 1024 }'; }
# The facts preamble comes from the TypeScript that owns it (components/hostScripts.ts).
facts=$(cd "$here" && node -r ts-node/register/transpile-only -e 'process.stdout.write(require("./components/hostScripts").hostFactsPreamble())')
lib=$(printf '%s\n' "$facts"; cat "$here/host/lib.sh" "$here/host/lib-fold.sh")
bundle=$(printf '%s\n' "$lib"; cat "$here/host/fold.sh")

# run_case NAME FILES PERCENT KIB: builds, changes, folds and compares; prints the figures and
# leaves fold_ratio, fold_rate, fold_secs, rss_kib set.
run_case() {
files=$2
pct=$3
kib=$4
T=$B/$1
mkdir "$T"
img_mib=$(((files * kib * 3) / 1024 + files / 50 + 512))
truncate -s "${img_mib}M" "$T/disk.img"
mkfs.ext4 -q -F -N $((files * 3 + 100000)) "$T/disk.img"
mkdir "$T/disk"
mount -o loop "$T/disk.img" "$T/disk"
D=$T/disk
L=$D/static_cache

echo "building a lower of $files files x $kib KiB ..."
i=0
while [ "$i" -lt 100 ]; do
    mkdir -p "$L/.yfnode/cache/d$i"
    # distinct random content per file, one process per directory: file i is d<i%100>/f<i/100>.vdata
    # (7 digits)
    head -c $(((files / 100) * kib * 1024)) /dev/urandom |
        (cd "$L/.yfnode/cache/d$i" && split -b "${kib}K" -a 7 -d --additional-suffix=.vdata - f)
    i=$((i + 1))
done
head -c $((kib * 1024)) /dev/urandom >"$T/block"

for n in 1 2; do
    mkdir -p "$D/n$n/upper" "$D/n$n/work" "$D/n$n/mnts"
    mount -t overlay overlay -o "lowerdir=$L,upperdir=$D/n$n/upper,workdir=$D/n$n/work,index=off,nfs_export=off,redirect_dir=off,metacopy=off" "$D/n$n/mnts"
done

echo "changing $pct% of the files through each instance ..."
changed=$((files * pct / 100))
for n in 1 2; do
    M=$D/n$n/mnts
    k=0
    while [ "$k" -lt "$changed" ]; do
        # n1 takes files 0.., n2 the next ones; 1% of them are n1's too (conflicts)
        if [ "$n" = 1 ]; then f=$k; else f=$((changed - changed / 100 + k)); fi
        f=$((f % files))
        pad=0000000$((f / 100))
        p=$M/.yfnode/cache/d$((f % 100))/f${pad#"${pad%???????}"}.vdata
        case $((k % 4)) in
            0 | 1) { printf 'n%s%06d' "$n" "$k"; cat "$T/block"; } >"$p" ;;
            2) rm -f "$p" ;;
            3) { printf 'new%s%06d' "$n" "$k"; cat "$T/block"; } >"$M/.yfnode/cache/d$((f % 100))/new$n-$k.vdata" ;;
        esac
        k=$((k + 1))
    done
    mkdir -p "$M/.yfnode"
    echo "identity $n" >"$M/.yfnode/config"
done
sync

changed_bytes=$(du -s -B1 "$D/n1/upper" "$D/n2/upper" | awk '{ s += $1 } END { print s }')
changed_files=$(find "$D/n1/upper" "$D/n2/upper" -type f | wc -l)

echo "fold ..."
u0=$(used)
t0=$(now)
out=$($timer "$T/rss" sh -c "$bundle" of-fold "$L" 2 "$D/.overlay-fleet/gen2" lowest-index-wins .yfnode/config \
    n1 "$D/n1/upper" n2 "$D/n2/upper")
t1=$(now)
u1=$(used)
summary=$(printf '%s\n' "$out" | tail -n 1)
ffiles=$(printf '%s\n' "$summary" | sed -n 's/.* files=\([0-9]*\).*/\1/p')
fbytes=$(printf '%s\n' "$summary" | sed -n 's/.* bytes=\([0-9]*\).*/\1/p')
tf=$(elapsed "$t0" "$t1")

echo "cp -al + rsync -aHAX of the same uppers ..."
t2=$(now)
cp -al "$L" "$D/rsync-farm"
t3=$(now)
rsync -aHAX "$D/n1/upper/" "$D/rsync-farm/"
rsync -aHAX "$D/n2/upper/" "$D/rsync-farm/"
sync # the fold syncs its generation before it renames it into place: the floor writes back too
t4=$(now)
u2=$(used)
tcp=$(elapsed "$t2" "$t3")
trs=$(elapsed "$t3" "$t4")
rm -rf "$D/rsync-farm"

echo "switch (umount, drop_folded, mount) ..."
t5=$(now)
dropout=
longest=0
for n in 1 2; do
    tdown=$(now)
    umount "$D/n$n/mnts"
    dropout="$dropout$(sh -c "$lib
drop_folded \"\$1\" \"\$2\"" x "$D/.overlay-fleet/gen2/n$n.manifest" "$D/n$n/upper")
"
    mount -t overlay overlay -o "lowerdir=$L.g2,upperdir=$D/n$n/upper,workdir=$D/n$n/work,index=off,nfs_export=off,redirect_dir=off,metacopy=off" "$D/n$n/mnts"
    # One instance is down from its unmount to its mount on the new generation.
    longest=$(awk -v a="$longest" -v b="$(elapsed "$tdown" "$(now)")" 'BEGIN { print (b > a ? b : a) }')
done
t6=$(now)
td=$(elapsed "$t5" "$t6")
u3=$(used)

cache_bytes=$(du -s -B1 "$L" | awk '{ print $1 }')
echo
echo "cache: $files files, $(mib "$cache_bytes") MiB; changed through 2 instances: $changed_files files in the uppers, $(mib "$changed_bytes") MiB"
printf '%s\n' "$out" | grep -c '^conflict' | sed 's/^/conflicts reported: /'
echo "fold:            ${tf}s  $(rate "$ffiles" "$tf") files/s  $(mbrate "$fbytes" "$tf") MB/s  ($ffiles files, $(mib "$fbytes") MiB copied)  extra disk $(mib $((u1 - u0))) MiB"
echo "cp -al:          ${tcp}s  (hard-link farm of the lower alone)"
echo "rsync -aHAX:     ${trs}s  $(rate "$changed_files" "$trs") files/s  $(mbrate "$changed_bytes" "$trs") MB/s  (both uppers into the farm; no whiteout/opaque handling)  extra disk $(mib $((u2 - u1))) MiB"
echo "switch (2 inst): ${td}s  longest single instance down: ${longest}s  disk freed by drop_folded $(mib $((u1 - u3))) MiB"
printf '%s' "$dropout"
echo "fold summary: $summary"
tall=$(awk -v a="$tcp" -v b="$trs" 'BEGIN { printf "%.2f", a + b }')
fold_ratio=$(ratio "$tf" "$tall")
fold_rate=$(rate "$ffiles" "$tf")
fold_secs=$tf
rss_kib=
[ ! -s "$T/rss" ] || rss_kib=$(tail -n 1 "$T/rss")
[ -z "$rss_kib" ] || echo "fold peak memory: $rss_kib KiB"
echo "fold/rsync: $fold_ratio  (fold ${tf}s / cp -al + rsync ${tall}s)"
for m in "$D"/n1/mnts "$D"/n2/mnts "$D"; do umount -l "$m" 2>/dev/null || :; done
rm -rf "$T"
}

run_case small "$files" "$pct" "$kib"
echo
run_case big "$bigfiles" "$pct" "$bigkib"
echo "100k: $bigfiles files of $bigkib KiB: fold $fold_rate files/s (changed files), $fold_secs s, fold/rsync: $fold_ratio${rss_kib:+, peak memory $rss_kib KiB}"

# run_wide NAME ENTRIES: one directory of ENTRIES files of 8 bytes; n1 rewrites three of them,
# deletes the last and adds one, n2 deletes the directory and makes it again with one file; times
# the fold. Leaves wide_secs and wide_summary set.
run_wide() {
T=$B/$1
entries=$2
mkdir "$T"
# a block (4 KiB) per file, twice over
truncate -s "$((entries * 8 / 1024 + 512))M" "$T/disk.img"
mkfs.ext4 -q -F -N $((entries * 3 + 100000)) "$T/disk.img"
mkdir "$T/disk"
mount -o loop "$T/disk.img" "$T/disk"
D=$T/disk
L=$D/static_cache
echo "building a lower of one directory of $entries entries ..."
mkdir -p "$L/big"
head -c $((entries * 8)) /dev/urandom | (cd "$L/big" && split -b 8 -a 7 -d - e)
for n in 1 2; do
    mkdir -p "$D/n$n/upper" "$D/n$n/work" "$D/n$n/mnts"
    mount -t overlay overlay -o "lowerdir=$L,upperdir=$D/n$n/upper,workdir=$D/n$n/work,index=off,nfs_export=off,redirect_dir=off,metacopy=off" "$D/n$n/mnts"
done
M1=$D/n1/mnts
for j in 1 2 3; do echo n1 >"$M1/big/e000000$j"; done
rm "$M1/big/e$(printf '%07d' $((entries - 1)))"
echo new >"$M1/big/n1new"
rm -rf "$D/n2/mnts/big"
mkdir "$D/n2/mnts/big"
echo only >"$D/n2/mnts/big/n2only"
sync
echo "fold ..."
t0=$(now)
out=$(sh -c "$bundle" of-fold "$L" 2 "$D/.overlay-fleet/gen2" lowest-index-wins - n1 "$D/n1/upper" n2 "$D/n2/upper")
t1=$(now)
wide_secs=$(elapsed "$t0" "$t1")
wide_summary=$(printf '%s\n' "$out" | tail -n 1)
echo "fold:            ${wide_secs}s  $(rate "$entries" "$wide_secs") entries/s  ($wide_summary)"
for m in "$D"/n1/mnts "$D"/n2/mnts "$D"; do umount -l "$m" 2>/dev/null || :; done
rm -rf "$T"
}

echo
run_wide wide "$wide"
echo "wide: one directory of $wide entries (opaque in one instance): fold $wide_secs s ($wide_summary)"
