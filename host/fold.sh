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
#     <lower>.g<k> for k>1). If the target already exists the fold is a no-op.
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
#     mtime, xattrs, sparseness; hard-link groups of the upper stay groups); a path already
#     claimed by an earlier instance is identical (same type, content, mode, owner, mtime,
#     xattrs: not a conflict) or a conflict, which the earlier instance wins (lowest-index-wins).
#     A directory claimed by one instance cannot be deleted or replaced by a later one: a
#     conflict on the directory, and it is kept whole.
#  4. A file is folded only if its stat (type, inode, size, mtime, ctime) is the same before and
#     after the copy and the copy matches it; else it is reported `skipped` and stays in its upper.
#  5. Per instance, <manifestDir>/<name>.manifest lists every upper entry examined, with its
#     identity and whether it was folded (see host/lib-fold.sh), written before the new
#     generation appears; then the staging dir is synced and renamed to <lower>.g<target>.
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
# Needs getfattr/setfattr (package attr). Test hook: OVERLAY_FLEET_FOLD_PAUSE_AT=<step> makes the
# fold sleep at a step (farm, walk, instance-<n>, manifests, rename).

set -eu
fold_init

f_usage_text="usage: of-fold <lower> <targetGeneration> <manifestDir> <conflictRule> <privatePathsCSV|-> (<instanceName> <upper>... | --fstab <fstabFile>)"
[ "$#" -ge 7 ] && [ $((($# - 5) % 2)) -eq 0 ] || of_usage "$f_usage_text"

fold_check_path "lower dir" "$1"
L=$FOLD_PATH
fold_check_generation "target generation" "$2"
f_target=$2
fold_check_path "manifest dir" "$3"
M=$FOLD_PATH
case $4 in
    lowest-index-wins | newest-wins) f_rule=$4 ;;
    *) of_usage "conflict rule '$4' is not supported (supported: lowest-index-wins, the instance listed first wins; newest-wins, the newest modification time wins, ties to the instance listed first)" ;;
esac

# Private paths, newline-separated, normalised.
f_priv=
if [ "$5" != - ]; then
    f_rest=$5,
    while [ -n "$f_rest" ]; do
        f_item=${f_rest%%,*}
        f_rest=${f_rest#*,}
        [ -n "$f_item" ] || continue
        case $f_item in
            *[[:cntrl:]]*) of_usage "private path '$f_item' contains control characters" ;;
        esac
        while :; do
            case $f_item in
                /*) f_item=${f_item#/} ;;
                ./*) f_item=${f_item#./} ;;
                *) break ;;
            esac
        done
        case /$f_item/ in
            */./* | */../*) of_usage "private path '$f_item' must not contain . or .. components" ;;
        esac
        of_norm "$f_item"
        f_item=$OF_NORM
        [ -n "$f_item" ] && [ "$f_item" != / ] && [ "$f_item" != . ] ||
            of_usage "private path list '$5' contains an empty path or the whole tree"
        f_priv="$f_priv$f_item$FOLD_NL"
    done
fi
shift 5

if [ "$1" = --fstab ]; then
    [ -f "$2" ] && [ -r "$2" ] || of_die "fstab file '$2' is not readable"
    # Managed lines carry every path in their options; our paths never contain blanks or commas.
    f_list=$(awk '
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
    while IFS="$FOLD_TAB" read -r f_a f_b; do
        [ -z "$f_a" ] || set -- "$@" "$f_a" "$f_b"
    done <<EOF
$f_list
EOF
fi

f_n=0
while [ "$#" -gt 0 ]; do
    f_n=$((f_n + 1))
    case $1 in
        '' | . | .. | *[!A-Za-z0-9._-]*) of_usage "instance name '$1' must be non-empty and use only A-Z a-z 0-9 . _ -" ;;
    esac
    fold_check_path "upper dir of instance '$1'" "$2"
    f_j=1
    while [ "$f_j" -lt "$f_n" ]; do
        eval "f_oname=\$f_name_$f_j f_oup=\$f_up_$f_j"
        [ "$f_oname" != "$1" ] || of_usage "instance name '$1' is given twice"
        if fold_within "$FOLD_PATH" "$f_oup" || fold_within "$f_oup" "$FOLD_PATH"; then
            of_usage "upper dir '$FOLD_PATH' of instance '$1' overlaps the upper dir '$f_oup' of instance '$f_oname'"
        fi
        f_j=$((f_j + 1))
    done
    eval "f_name_$f_n=\$1 f_up_$f_n=\$FOLD_PATH"
    shift 2
done

fold_gen_path "$L" "$f_target"
T=$FOLD_GP
S=$L.g$f_target.partial
W=$L.g$f_target.work
f_parent=${L%/*}
[ -n "$f_parent" ] || f_parent=/

# Layout: uppers and the manifest dir outside every generation, and the other way round.
f_i=1
while [ "$f_i" -le "$f_n" ]; do
    eval "f_U=\$f_up_$f_i f_name=\$f_name_$f_i"
    case $f_U/ in
        "$L"/* | "$L".g[0-9]*) of_usage "upper dir '$f_U' of instance '$f_name' is inside the lower '$L' or one of its generations" ;;
    esac
    fold_within "$L" "$f_U" && of_usage "lower '$L' is inside the upper dir '$f_U' of instance '$f_name'"
    fold_within "$M" "$f_U" && of_usage "manifest dir '$M' is inside the upper dir '$f_U' of instance '$f_name'"
    [ -d "$f_U" ] && [ ! -L "$f_U" ] || of_die "upper dir '$f_U' of instance '$f_name' does not exist or is not a directory"
    f_i=$((f_i + 1))
done
case $M/ in
    "$L"/* | "$L".g[0-9]*) of_usage "manifest dir '$M' must be outside the lower '$L' and its generations (e.g. $f_parent/.overlay-fleet/gen$f_target)" ;;
esac
# Generation 1 (L itself) is gone once every instance moved past it and it was retired.
if [ ! -d "$L" ] || [ -L "$L" ]; then
    f_any=
    for f_d in "$L".g*; do
        case ${f_d#"$L".g} in '' | *[!0-9]* | 0*) continue ;; esac
        [ ! -d "$f_d" ] || f_any=1
    done
    [ -n "$f_any" ] || of_die "lower dir '$L' does not exist or is not a directory, and no later generation of it does"
fi

for f_tool in getfattr setfattr; do
    of_have "$f_tool" || of_die "$f_tool (package attr) is required to read the overlay attributes of the uppers (whiteouts, opaque directories, redirects) and to copy extended attributes; install attr on this box"
done
for f_tool in stat du df find umount; do
    of_have "$f_tool" || of_die "$f_tool is required by fold but is not installed"
done
# The fold helper: a static binary built from host/foldtool (CGO_ENABLED=0 go build), delivered
# with the host scripts. OVERLAY_FLEET_FOLDTOOL names it.
f_tool=${OVERLAY_FLEET_FOLDTOOL:-/usr/local/lib/overlay-fleet/foldtool}
[ -x "$f_tool" ] || of_die "the fold helper '$f_tool' is missing or not executable (build host/foldtool with CGO_ENABLED=0 go build and install it there, or set OVERLAY_FLEET_FOLDTOOL to its path)"

fold_lock "$L" fold

if [ -d "$T" ]; then
    printf 'fold %s: generation %s already exists; nothing to do\n' "$f_target" "$T"
    exit 0
fi

# The current generation: the highest complete one below the target.
f_g=1
C=$L
for f_d in "$L".g*; do
    f_k=${f_d#"$L".g}
    case $f_k in
        '' | *[!0-9]* | 0*) continue ;;
    esac
    [ "${#f_k}" -le 9 ] && [ -d "$f_d" ] || continue
    if [ "$f_k" -gt "$f_target" ]; then
        of_die "generation $f_k ('$f_d') is newer than the target generation $f_target; refusing to fold backwards"
    fi
    if [ "$f_k" -lt "$f_target" ] && [ "$f_k" -gt "$f_g" ]; then
        f_g=$f_k
        C=$f_d
    fi
done

[ -d "$C" ] || of_die "no generation of '$L' older than $f_target exists to fold from"
f_dev_c=$(stat -c '%d' -- "$C/") || of_die "cannot stat the current lower '$C'"
f_dev_p=$(stat -c '%d' -- "$f_parent/") || of_die "cannot stat '$f_parent'"
if [ "$f_dev_c" != "$f_dev_p" ]; then
    of_die "the staging dir '$S' would be on a different filesystem (device $f_dev_p, '$f_parent') than the current lower '$C' (device $f_dev_c); the new generation is a hard-link farm of the current one and must be on its filesystem"
fi

# Instances: a mounted upper must be mounted on the current generation; its xattr namespace.
f_i=1
while [ "$f_i" -le "$f_n" ]; do
    eval "f_U=\$f_up_$f_i f_name=\$f_name_$f_i"
    f_ns=
    if fold_upper_mount "$f_U"; then
        case $FOLD_UM_LOWER in
            *:*) of_die "instance '$f_name': upper '$f_U' is mounted at $FOLD_UM_MP with several lower layers ($FOLD_UM_LOWER); fold handles one lower" ;;
        esac
        if ! of_same_path "$FOLD_UM_LOWER" "$C"; then
            of_die "instance '$f_name': upper '$f_U' is mounted at $FOLD_UM_MP on lower '$FOLD_UM_LOWER', but the fold starts from generation $f_g ('$C'); switch it to generation $f_g first"
        fi
        case ,$FOLD_UM_SUPER, in
            *,userxattr,*) f_ns=user ;;
            *) f_ns=trusted ;;
        esac
    fi
    # Overlay attributes of the upper: refuse what a plain overlay cannot interpret.
    f_has_user=
    f_has_trusted=
    f_has_opq=
    f_file=
    f_scan=$(getfattr -R -P -h --absolute-names -m '^(trusted|user)\.overlay\.' -- "$f_U" 2>/dev/null) || :
    while IFS= read -r f_line; do
        case $f_line in
            '# file: '*) f_file=${f_line#'# file: '} ;;
            trusted.overlay.redirect | user.overlay.redirect)
                of_die "instance '$f_name': '$f_file' has $f_line (a directory renamed with redirect_dir=on); fold cannot interpret redirects; mount with redirect_dir=off and copy the directory instead" ;;
            trusted.overlay.metacopy | user.overlay.metacopy)
                of_die "instance '$f_name': '$f_file' has $f_line (metadata-only copy-up, metacopy=on); fold needs full copies; mount with metacopy=off" ;;
            *.overlay.opaque) f_has_opq=1 ;;
        esac
        case $f_line in
            user.overlay.*) f_has_user=1 ;;
            trusted.overlay.*) f_has_trusted=1 ;;
        esac
    done <<EOF
$f_scan
EOF
    if [ -z "$f_ns" ]; then
        if [ -n "$f_has_user" ] && [ -n "$f_has_trusted" ]; then
            of_die "instance '$f_name': upper '$f_U' has both trusted.overlay.* and user.overlay.* attributes; mount it once (with or without userxattr) so fold knows which apply"
        fi
        f_ns=trusted
        [ -z "$f_has_user" ] || f_ns=user
    elif [ "$f_ns" = trusted ] && [ -n "$f_has_user" ]; then
        of_die "instance '$f_name': upper '$f_U' has user.overlay.* attributes but is mounted without userxattr; they would be copied into the lower as plain attributes"
    fi
    eval "f_ns_$f_i=\$f_ns f_opq_$f_i=\$f_has_opq"
    f_i=$((f_i + 1))
done

# Leftovers of an interrupted fold of this target: views still mounted, staging and work dirs.
f_leftover_mounts=
f_leftover_cb() {
    if fold_within "$FOLD_MI_MP" "$W"; then
        f_leftover_mounts="$FOLD_MI_MP$FOLD_NL$f_leftover_mounts"
    fi
    return 0
}
fold_mi_each f_leftover_cb
while IFS= read -r f_mp; do
    [ -n "$f_mp" ] || continue
    umount -- "$f_mp" 2>/dev/null || umount -l -- "$f_mp" ||
        of_die "cannot unmount '$f_mp' left by an interrupted fold"
done <<EOF
$f_leftover_mounts
EOF
rm -rf --one-file-system -- "$W" "$S" "$M.partial" ||
    of_die "cannot remove what an interrupted fold left ('$S', '$W')"

# Free space: worst case, every file of the uppers is copied; plus one block per directory of C.
f_need=0
f_inodes=0
f_i=1
while [ "$f_i" -le "$f_n" ]; do
    eval "f_U=\$f_up_$f_i"
    f_du=$(du -s -x -B1 -- "$f_U") || of_die "cannot measure the upper '$f_U'"
    f_need=$((f_need + ${f_du%%[!0-9]*}))
    f_cnt=$(find "$f_U" -xdev ! -type d -printf x | wc -c) || of_die "cannot count the files of '$f_U'"
    f_inodes=$((f_inodes + f_cnt))
    f_i=$((f_i + 1))
done
f_files_need=$f_need
f_ndirs=$(find "$C" -xdev -type d -printf x | wc -c) || of_die "cannot count the directories of '$C'"
f_bs=$(stat -f -c '%S' -- "$C/") || f_bs=4096
f_need=$((f_need + f_ndirs * f_bs))
f_inodes=$((f_inodes + f_ndirs))
f_df=$(df -P -k -- "$f_parent/" | tail -n 1) || of_die "df cannot tell the free space of '$f_parent'"
set -f
set -- $f_df
set +f
f_avail=$(($4 * 1024))
f_mnt=$6
if [ "$f_need" -gt "$f_avail" ]; then
    fold_mib "$f_need"
    f_m1=$FOLD_MIB
    fold_mib "$f_avail"
    f_m2=$FOLD_MIB
    fold_mib "$f_files_need"
    of_die "not enough free space on $f_mnt to fold generation $f_target: need $f_need bytes ($f_m1 MiB: $FOLD_MIB MiB of files in the uppers + $f_ndirs directories of '$C'), available $f_avail bytes ($f_m2 MiB); nothing was changed"
fi
f_df=$(df -P -i -- "$f_parent/" | tail -n 1) || f_df=
if [ -n "$f_df" ]; then
    set -f
    set -- $f_df
    set +f
    case $2$4 in
        *[!0-9]*) ;;
        *)
            if [ "$2" -gt 0 ] && [ "$f_inodes" -gt "$4" ]; then
                of_die "not enough free inodes on $f_mnt to fold generation $f_target: need $f_inodes, available $4; nothing was changed"
            fi
            ;;
    esac
fi

# The fold itself: the static helper host/foldtool (see its main.go and fold.go), in this
# process's place (it keeps the lock on fd 9; kill -9 leaves the staging and work dirs, which the
# next run discards above).
f_private_csv=$(printf '%s' "$f_priv" | tr '\n' ',')
set -- fold "$C" "$f_g" "$S" "$W" "$T" "$f_target" "$M" "$f_rule" "${f_private_csv:--}"
f_i=1
while [ "$f_i" -le "$f_n" ]; do
    eval "set -- \"\$@\" \"\$f_name_$f_i\" \"\$f_ns_$f_i\" \"\$f_up_$f_i\""
    f_i=$((f_i + 1))
done
exec "$f_tool" "$@"
