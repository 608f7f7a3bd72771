# of-fold <lower> <targetGeneration> <manifestDir> <conflictRule> <privatePathsCSV|-> <instanceName> <upper> [<instanceName> <upper>]...
# of-fold <lower> <targetGeneration> <manifestDir> <conflictRule> <privatePathsCSV|-> --fstab <fstabFile>
#
# The second form folds the box's live instances: those with a managed fstab line
# (x-overlay-fleet=<box>/<name>), in index order (ttnode2 before ttnode10); none is fine.
#
# Folds the instances' uppers into a new generation of the shared lower cache, without writing
# into the current lower (the instances keep running on it):
#
#  1. The current generation C is the highest complete one below the target (<lower> for 1,
#     <lower>.g<k> for k>1; <lower> may be the symlink to the current generation host/gc.sh
#     leaves). If the target already exists the fold is a no-op.
#  2. A hard-link farm of C is built in <lower>.g<target>.partial (new directories, hard-linked
#     files: extra disk is one directory entry per file and one block per directory), on C's
#     filesystem (refused otherwise).
#  3. For each instance, in the order given, a read-only overlay `lowerdir=<upper>:C` shows what
#     the instance sees; the kernel interprets whiteouts and opaque directories at any depth (char
#     0/0 and xattr whiteouts, trusted.* or user.* with userxattr). Redirect and metacopy content is
#     refused. Every entry of the upper is a claim on its path: a whiteout or a lower entry hidden
#     by an opaque directory says "absent", a directory "a directory with this mode, owner and
#     attributes", anything else "this object". Unclaimed paths are applied to the staging tree
#     (never in place: the hard link is unlinked and a copy made from the view, with owner, mode,
#     times, xattrs, sparseness; hard-link groups of the upper stay groups); a path already
#     claimed by an earlier instance is identical (same type, content, mode, owner, mtime,
#     xattrs: not a conflict) or a conflict, which <conflictRule> decides:
#       lowest-index-wins  the instance listed first wins;
#       newest-wins        the newer upper entry (file, symlink, device or whiteout: by mtime;
#                          ties: the instance listed first) wins. A conflict that involves a
#                          directory is decided as with lowest-index-wins.
#     A directory claimed by one instance cannot be deleted or replaced by a later one: a
#     conflict on the directory, and it is kept whole.
#  4. A file is folded only if its stat (type, inode, size, mtime, ctime) is the same before and
#     after the copy and the copy matches it; else it is reported `skipped` and stays in its upper.
#  5. Per instance, <manifestDir>/<name>.manifest lists every upper entry examined, with its
#     identity and whether it was folded (see host/lib-fold.sh), written before the new
#     generation appears; then the staging dir is synced and renamed to <lower>.g<target>.
#
# This script checks the arguments, the layout, the uppers and the free space, takes the lock,
# and then runs the fold helper in its place: host/foldtool, a static binary (Go, no cgo) at the
# path OVERLAY_FLEET_FOLDTOOL names, by default `foldtool` in the directory the script is run
# from: a box runs it from its installed host library, which holds the box's own foldtool
# gzipped (a library from generation 2 on), unpacked here by the first fold.
#
# Private paths (comma-separated, relative, e.g. `.yfnode/config`) are never read nor folded.
# Killed at any point, the current generation and the instances are untouched; a re-run discards
# the staging dir and builds it again. Before anything is written, free space and inodes are
# checked against the worst case (all files of the uppers copied, plus C's directories).
#
# Output: `conflict<TAB><path><TAB>winner=<name><TAB>others=<a,b>` per conflicting path,
# `skipped<TAB><path><TAB><name>` per entry that changed during the fold (paths with a backslash,
# newline or tab are shown with \\ \n \t escapes), and finally
# `folded <target> from <g>: files=<n> bytes=<n> deleted=<n> conflicts=<n> skipped=<n>`.
#
# Needs getfattr (package attr) to check the uppers' overlay attributes. Test hook:
# OVERLAY_FLEET_FOLD_PAUSE_AT=<step> makes the fold sleep at a step (farm, walk, instance-<n>,
# manifests, rename).

set -eu
fold_init

usage_text="usage: of-fold <lower> <targetGeneration> <manifestDir> <conflictRule> <privatePathsCSV|-> (<instanceName> <upper>... | --fstab <fstabFile>)"
[ "$#" -ge 7 ] && [ $((($# - 5) % 2)) -eq 0 ] || of_usage "$usage_text"

fold_check_path "lower dir" "$1"
lower=$FOLD_PATH
fold_check_generation "target generation" "$2"
target_gen=$2
fold_check_path "manifest dir" "$3"
manifests=$FOLD_PATH
case $4 in
    lowest-index-wins | newest-wins) rule=$4 ;;
    *) of_usage "conflict rule '$4' is not supported (supported: lowest-index-wins, the instance listed first wins; newest-wins, the newest change wins, ties to the instance listed first)" ;;
esac

# Private paths, normalised, comma-separated for the helper.
private=
if [ "$5" != - ]; then
    rest=$5,
    while [ -n "$rest" ]; do
        item=${rest%%,*}
        rest=${rest#*,}
        [ -n "$item" ] || continue
        case $item in
            *[[:cntrl:]]*) of_usage "private path '$item' contains control characters" ;;
        esac
        while :; do
            case $item in
                /*) item=${item#/} ;;
                ./*) item=${item#./} ;;
                *) break ;;
            esac
        done
        case /$item/ in
            */./* | */../*) of_usage "private path '$item' must not contain . or .. components" ;;
        esac
        of_norm "$item"
        item=$OF_NORM
        [ -n "$item" ] && [ "$item" != / ] && [ "$item" != . ] ||
            of_usage "private path list '$5' contains an empty path or the whole tree"
        private=$private${private:+,}$item
    done
fi
shift 5

fold_gen_path "$lower" "$target_gen"
target=$FOLD_GP
# A complete generation is never rebuilt (a fold builds `.partial` and renames it): with the target
# there, the box's apply re-runs this as a no-op whatever state its instances are in.
if [ -d "$target" ] && [ ! -L "$target" ]; then
    printf 'fold %s: generation %s already exists; nothing to do\n' "$target_gen" "$target"
    exit 0
fi

# From here on "$@" is the instances: <name> <upper> pairs, in fold order.
if [ "$1" = --fstab ]; then
    [ -f "$2" ] && [ -r "$2" ] || of_die "fstab file '$2' is not readable"
    # Managed lines carry every path in their options; our paths never contain blanks or commas.
    fstab_instances=$(awk '
        $1 !~ /^#/ && $4 ~ /(^|,)x-overlay-fleet=/ {
            n = split($4, opt, ","); id = ""; up = ""
            for (i = 1; i <= n; i++) {
                if (opt[i] ~ /^x-overlay-fleet=/) id = substr(opt[i], 17)
                else if (opt[i] ~ /^upperdir=/) up = substr(opt[i], 10)
            }
            name = id; sub(/.*\//, "", name)
            index_ = name; sub(/^.*[^0-9]/, "", index_)
            if (name != "" && up != "") printf "%d\t%s\t%s\n", index_ + 0, name, up
        }' "$2" | LC_ALL=C sort -n -k1,1 | cut -f2,3)
    set --
    while IFS="$FOLD_TAB" read -r name upper; do
        [ -z "$name" ] || set -- "$@" "$name" "$upper"
    done <<EOF
$fstab_instances
EOF
fi

staging=$lower$OF_GENERATION_SUFFIX$target_gen.partial
work=$lower$OF_GENERATION_SUFFIX$target_gen.work
parent=${lower%/*}
[ -n "$parent" ] || parent=/

# check_instance NAME UPPER [<name> <upper>]...: NAME and UPPER are valid, and differ from and do
# not overlap the instances that follow; uppers and the manifest dir are outside every
# generation, and the other way round. The normalised upper in FOLD_PATH.
check_instance() {
    ci_name=$1
    case $ci_name in
        '' | . | .. | *[!A-Za-z0-9._-]*) of_usage "instance name '$ci_name' must be non-empty and use only A-Z a-z 0-9 . _ -" ;;
    esac
    fold_check_path "upper dir of instance '$ci_name'" "$2"
    ci_upper=$FOLD_PATH
    shift 2
    while [ "$#" -gt 0 ]; do
        [ "$1" != "$ci_name" ] || of_usage "instance name '$ci_name' is given twice"
        of_norm "$2"
        if fold_within "$ci_upper" "$OF_NORM" || fold_within "$OF_NORM" "$ci_upper"; then
            of_usage "upper dir '$ci_upper' of instance '$ci_name' overlaps the upper dir '$OF_NORM' of instance '$1'"
        fi
        shift 2
    done
    case $ci_upper/ in
        "$lower"/* | "$lower$OF_GENERATION_SUFFIX"[0-9]*) of_usage "upper dir '$ci_upper' of instance '$ci_name' is inside the lower '$lower' or one of its generations" ;;
    esac
    fold_within "$lower" "$ci_upper" && of_usage "lower '$lower' is inside the upper dir '$ci_upper' of instance '$ci_name'"
    fold_within "$manifests" "$ci_upper" && of_usage "manifest dir '$manifests' is inside the upper dir '$ci_upper' of instance '$ci_name'"
    [ -d "$ci_upper" ] && [ ! -L "$ci_upper" ] || of_die "upper dir '$ci_upper' of instance '$ci_name' does not exist or is not a directory"
    FOLD_PATH=$ci_upper
}

# Every instance checked and its upper normalised: "$@" is rotated once, pair by pair.
n_instances=$(($# / 2))
k=0
while [ "$k" -lt "$n_instances" ]; do
    check_instance "$@"
    name=$1
    shift 2
    set -- "$@" "$name" "$FOLD_PATH"
    k=$((k + 1))
done
case $manifests/ in
    "$lower"/* | "$lower$OF_GENERATION_SUFFIX"[0-9]*) of_usage "manifest dir '$manifests' must be outside the lower '$lower' and its generations (e.g. under $parent/.overlay-fleet/)" ;;
esac
# Generation 1 (lower itself) is gone once every instance moved past it and it was retired.
if [ ! -d "$lower" ] || [ -L "$lower" ]; then
    any=
    for d in "$lower$OF_GENERATION_SUFFIX"*; do
        fold_is_generation "${d#"$lower$OF_GENERATION_SUFFIX"}" || continue
        [ ! -d "$d" ] || any=1
    done
    [ -n "$any" ] || of_die "lower dir '$lower' does not exist or is not a directory, and no later generation of it does"
fi

of_have getfattr || of_die "getfattr (package attr) is required to read the overlay attributes of the uppers (whiteouts, opaque directories, redirects); install attr on this box"
for tool in stat du df find umount; do
    of_have "$tool" || of_die "$tool is required by fold but is not installed"
done
fold_tool || exit 1
foldtool=$FOLD_TOOL

fold_lock "$lower" fold

if [ -d "$target" ]; then
    printf 'fold %s: generation %s already exists; nothing to do\n' "$target_gen" "$target"
    exit 0
fi

# The current generation: the highest complete one below the target.
from_gen=1
current=$lower
for d in "$lower$OF_GENERATION_SUFFIX"*; do
    g=${d#"$lower$OF_GENERATION_SUFFIX"}
    fold_is_generation "$g" && [ -d "$d" ] || continue
    if [ "$g" -gt "$target_gen" ]; then
        of_die "generation $g ('$d') is newer than the target generation $target_gen; refusing to fold backwards"
    fi
    if [ "$g" -lt "$target_gen" ] && [ "$g" -gt "$from_gen" ]; then
        from_gen=$g
        current=$d
    fi
done

[ -d "$current" ] || of_die "no generation of '$lower' older than $target_gen exists to fold from"
dev_current=$(stat -c '%d' -- "$current/") || of_die "cannot stat the current lower '$current'"
dev_parent=$(stat -c '%d' -- "$parent/") || of_die "cannot stat '$parent'"
if [ "$dev_current" != "$dev_parent" ]; then
    of_die "the staging dir '$staging' would be on a different filesystem (device $dev_parent, '$parent') than the current lower '$current' (device $dev_current); the new generation is a hard-link farm of the current one and must be on its filesystem"
fi

# upper_namespace NAME UPPER: the xattr namespace of the instance's overlay attributes (trusted,
# or user with userxattr), in NS. A mounted upper must be mounted on the current generation;
# attributes a plain overlay cannot interpret are refused.
upper_namespace() {
    NS=
    if fold_upper_mount "$2"; then
        case $FOLD_UM_LOWER in
            *:*) of_die "instance '$1': upper '$2' is mounted at $FOLD_UM_MP with several lower layers ($FOLD_UM_LOWER); fold handles one lower" ;;
        esac
        if ! of_same_path "$FOLD_UM_LOWER" "$current"; then
            of_die "instance '$1': upper '$2' is mounted at $FOLD_UM_MP on lower '$FOLD_UM_LOWER', but the fold starts from generation $from_gen ('$current'); switch it to generation $from_gen first"
        fi
        case ,$FOLD_UM_SUPER, in
            *,userxattr,*) NS=user ;;
            *) NS=trusted ;;
        esac
    fi
    un_user=
    un_trusted=
    un_file=
    un_scan=$(getfattr -R -P -h --absolute-names -m '^(trusted|user)\.overlay\.' -- "$2" 2>/dev/null) || :
    while IFS= read -r un_line; do
        case $un_line in
            '# file: '*) un_file=${un_line#'# file: '} ;;
            trusted.overlay.redirect | user.overlay.redirect)
                of_die "instance '$1': '$un_file' has $un_line (a directory renamed with redirect_dir=on); fold cannot interpret redirects; mount with redirect_dir=off and copy the directory instead" ;;
            trusted.overlay.metacopy | user.overlay.metacopy)
                of_die "instance '$1': '$un_file' has $un_line (metadata-only copy-up, metacopy=on); fold needs full copies; mount with metacopy=off" ;;
            user.overlay.*) un_user=1 ;;
            trusted.overlay.*) un_trusted=1 ;;
        esac
    done <<EOF
$un_scan
EOF
    if [ -z "$NS" ]; then
        if [ -n "$un_user" ] && [ -n "$un_trusted" ]; then
            of_die "instance '$1': upper '$2' has both trusted.overlay.* and user.overlay.* attributes; mount it once (with or without userxattr) so fold knows which apply"
        fi
        NS=trusted
        [ -z "$un_user" ] || NS=user
    elif [ "$NS" = trusted ] && [ -n "$un_user" ]; then
        of_die "instance '$1': upper '$2' has user.overlay.* attributes but is mounted without userxattr; they would be copied into the lower as plain attributes"
    fi
}

# Per instance: its namespace, and the worst case of its upper (every file copied). "$@" becomes
# <name> <namespace> <upper> triples, the helper's arguments.
need_bytes=0
need_inodes=0
k=0
while [ "$k" -lt "$n_instances" ]; do
    name=$1
    upper=$2
    shift 2
    upper_namespace "$name" "$upper"
    du_out=$(du -s -x -B1 -- "$upper") || of_die "cannot measure the upper '$upper'"
    need_bytes=$((need_bytes + ${du_out%%[!0-9]*}))
    n_files=$(find "$upper" -xdev ! -type d -printf x | wc -c) || of_die "cannot count the files of '$upper'"
    need_inodes=$((need_inodes + n_files))
    set -- "$@" "$name" "$NS" "$upper"
    k=$((k + 1))
done

# Leftovers of an interrupted fold of this target: views still mounted, staging and work dirs.
leftover_mounts=
leftover_cb() {
    if fold_within "$FOLD_MI_MP" "$work"; then
        leftover_mounts="$FOLD_MI_MP$FOLD_NL$leftover_mounts"
    fi
    return 0
}
fold_mi_each leftover_cb
while IFS= read -r mp; do
    [ -n "$mp" ] || continue
    umount -- "$mp" 2>/dev/null || umount -l -- "$mp" ||
        of_die "cannot unmount '$mp' left by an interrupted fold"
done <<EOF
$leftover_mounts
EOF
rm -rf --one-file-system -- "$work" "$staging" "$manifests.partial" ||
    of_die "cannot remove what an interrupted fold left ('$staging', '$work')"

# Free space and inodes: plus one block and one inode per directory of the current generation.
files_bytes=$need_bytes
n_dirs=$(find "$current/" -xdev -type d -printf x | wc -c) || of_die "cannot count the directories of '$current'"
block=$(stat -f -c '%S' -- "$current/") || block=4096
need_bytes=$((need_bytes + n_dirs * block))
need_inodes=$((need_inodes + n_dirs))
avail=$(df -B1 --output=avail -- "$parent/" | tail -n 1) || of_die "df cannot tell the free space of '$parent'"
avail=$((avail))
fs_mount=$(df --output=target -- "$parent/" | tail -n 1) || fs_mount=$parent
if [ "$need_bytes" -gt "$avail" ]; then
    fold_mib "$need_bytes"
    m_need=$FOLD_MIB
    fold_mib "$avail"
    m_avail=$FOLD_MIB
    fold_mib "$files_bytes"
    of_die "not enough free space on $fs_mount to fold generation $target_gen: need $need_bytes bytes ($m_need MiB: $FOLD_MIB MiB of files in the uppers + $n_dirs directories of '$current'), available $avail bytes ($m_avail MiB); nothing was changed"
fi
free_inodes=$(df --output=iavail -- "$parent/" | tail -n 1) || free_inodes=
free_inodes=${free_inodes##* }
case $free_inodes in
    '' | *[!0-9]*) ;;
    *)
        # filesystems without an inode limit (btrfs) report 0
        if [ "$free_inodes" -gt 0 ] && [ "$need_inodes" -gt "$free_inodes" ]; then
            of_die "not enough free inodes on $fs_mount to fold generation $target_gen: need $need_inodes, available $free_inodes; nothing was changed"
        fi
        ;;
esac

# The fold itself, in this process's place: the helper keeps the lock (fd 9). Killed, it leaves
# the staging and work dirs, which the next run discards above.
exec "$foldtool" fold "$current" "$from_gen" "$staging" "$work" "$target" "$target_gen" \
    "$manifests" "$rule" "${private:--}" "$@"
