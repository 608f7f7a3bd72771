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
    lowest-index-wins) ;;
    *) of_usage "conflict rule '$4' is not supported (supported: lowest-index-wins, the instance listed first wins)" ;;
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
for f_tool in cp xargs stat du df find mount umount mknod tac; do
    of_have "$f_tool" || of_die "$f_tool is required by fold but is not installed"
done
f_cmp=
of_have cmp && f_cmp=1

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

f_pause() {
    [ "${OVERLAY_FLEET_FOLD_PAUSE_AT-}" = "$1" ] || return 0
    sleep 3600 9>&- &
    printf 'overlay-fleet: fold paused at %s\n' "$1" >&2
    wait "$!" || :
}

# From here on, an error or signal removes the staging and work dirs (a kill -9 leaves them for
# the next run to discard).
f_views=
f_done=
f_on_exit() {
    f_st=$?
    trap - EXIT
    for f_v in $f_views; do
        umount -- "$f_v" 2>/dev/null || umount -l -- "$f_v" 2>/dev/null || :
    done
    if [ -z "$f_done" ]; then
        rm -rf --one-file-system -- "$W" "$S" "$M.partial" 2>/dev/null || :
    else
        rm -rf --one-file-system -- "$W" 2>/dev/null || :
    fi
    exit "$f_st"
}
trap f_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -- "$W" || of_die "cannot create the work dir '$W'"
: >"$W/conflicts"
: >"$W/mtimes"
cp -R -P --link --preserve=mode,ownership,timestamps,xattr -- "$C" "$S" ||
    of_die "cannot build the hard-link farm of '$C' in '$S'"
f_pause farm

f_files=0
f_bytes=0
f_deleted=0
f_skipped=0

f_is_private() {
    [ -n "$f_priv" ] || return 1
    while IFS= read -r f_pp; do
        [ -n "$f_pp" ] || continue
        [ "$1" = "$f_pp" ] && return 0
        case $1 in "$f_pp"/*) return 0 ;; esac
    done <<EOF
$f_priv
EOF
    return 1
}

# f_claim REL: the first earlier instance that claimed REL: f_ck (index) and f_ckind
# (dir, nondir, absent). 1 if none.
f_claim() {
    f_ck=1
    while [ "$f_ck" -lt "$f_i" ]; do
        f_sp=$W/s$f_ck/$1
        if [ -d "$f_sp" ]; then
            f_ckind=dir
            return 0
        elif [ -e "$f_sp" ]; then
            if [ -e "$S/$1" ] || [ -L "$S/$1" ]; then f_ckind=nondir; else f_ckind=absent; fi
            return 0
        fi
        f_ck=$((f_ck + 1))
    done
    f_ck=
    return 1
}

# f_conflict REL WINNER: records that instance f_i lost REL to WINNER.
f_conflict() {
    fold_enc "$1"
    printf '%s\t%s\t%s\n' "${FOLD_ENC#?}" "$2" "$f_i" >>"$W/conflicts"
}

# f_skip REL: reports REL of instance f_i as skipped.
f_skip() {
    fold_enc "$1"
    printf 'skipped\t%s\t%s\n' "${FOLD_ENC#?}" "$f_name"
    f_skipped=$((f_skipped + 1))
}

# f_man FLAG REL: a manifest line for REL with the identity of the current entry (s_*).
f_man() {
    fold_enc "$2"
    printf '%s %s %s %s %s %s %s\n' "$1" "$s_f" "$s_i" "$s_s" "$s_y" "$s_z" "$FOLD_ENC" >>"$W/m$f_i"
}

# f_same_nondir NAME: the view's DIR/NAME (d_v) equals the staged d_s/NAME: type, mode, owner,
# size, mtime, device numbers, content or symlink target, xattrs.
f_same_nondir() {
    f_st=$(stat -c '%f %s %.9Y %u %g %t %T' -- "$d_s/$1" 2>/dev/null) || return 1
    [ "$f_st" = "$s_f $s_s $s_y $s_u $s_g $s_t $s_T" ] || return 1
    case $((0x$s_f & 61440)) in
        32768)
            if [ -n "$f_cmp" ]; then
                cmp -s -- "$d_v/$1" "$d_s/$1" || return 1
            else
                f_h1=$(sha256sum <"$d_v/$1") && f_h2=$(sha256sum <"$d_s/$1") || return 1
                [ "$f_h1" = "$f_h2" ] || return 1
            fi
            ;;
        40960)
            f_t1=$(readlink -- "$d_v/$1"; echo x) && f_t2=$(readlink -- "$d_s/$1"; echo x) || return 1
            [ "$f_t1" = "$f_t2" ] || return 1
            ;;
    esac
    fold_xdump "$d_v" "$1"
    f_x1=$FOLD_X
    fold_xdump "$d_s" "$1"
    [ "$f_x1" = "$FOLD_X" ]
}

# f_same_dirmeta NAME: the view's directory d_v/NAME has the staged directory's mode, owner, xattrs.
f_same_dirmeta() {
    f_st=$(stat -c '%f %u %g' -- "$d_s/$1" 2>/dev/null) || return 1
    [ "$f_st" = "$s_f $s_u $s_g" ] || return 1
    fold_xdump "$d_v" "$1"
    f_x1=$FOLD_X
    fold_xdump "$d_s" "$1"
    [ "$f_x1" = "$FOLD_X" ]
}

# f_dir_apply NAME: makes d_s/NAME a directory with the mode, owner and xattrs of d_v/NAME
# (f_meta_same: the staging dir has them already; f_dw_x: so have the xattrs).
f_dir_apply() {
    f_t=$d_s/$1
    if [ -L "$f_t" ] || { [ -e "$f_t" ] && [ ! -d "$f_t" ]; }; then
        rm -f -- "$f_t" || of_die "cannot replace '$f_t' by a directory"
    fi
    if [ -z "$f_meta_same" ] || [ ! -d "$f_t" ]; then
        [ -d "$f_t" ] || mkdir -- "$f_t" || of_die "cannot create the directory '$f_t'"
        chown -h "$s_u:$s_g" -- "$f_t" || of_die "cannot set the owner of '$f_t'"
        fold_oct $((0x$s_f & 4095))
        chmod "$FOLD_OCT" -- "$f_t" || of_die "cannot set the mode of '$f_t'"
    fi
    # the xattrs of all the directories of this batch already match
    [ -z "$f_dw_x" ] || [ "$f_dk" != s ] || return 0
    fold_xdump "$d_v" "$1"
    f_xv=$FOLD_X
    fold_xdump "$d_s" "$1"
    [ "$f_xv" != "$FOLD_X" ] || return 0
    while IFS= read -r f_xl; do
        [ -n "$f_xl" ] || continue
        f_xn=${f_xl%%=*}
        case $FOLD_NL$f_xv in
            *"$FOLD_NL$f_xn="* | *"$FOLD_NL$f_xn$FOLD_NL"*) ;;
            *) setfattr -h -x "$f_xn" -- "$f_t" || of_die "cannot remove attribute $f_xn of '$f_t'" ;;
        esac
    done <<EOF
$FOLD_X
EOF
    while IFS= read -r f_xl; do
        [ -n "$f_xl" ] || continue
        case $f_xl in
            *=*) setfattr -h -n "${f_xl%%=*}" -v "${f_xl#*=}" -- "$f_t" ;;
            *) setfattr -h -n "$f_xl" -- "$f_t" ;;
        esac || of_die "cannot set attribute ${f_xl%%=*} of '$f_t'"
    done <<EOF
$f_xv
EOF
}

# f_revert REL: puts the current generation's REL back into the staging tree.
f_revert() {
    rm -rf --one-file-system -- "$S/$1" || of_die "cannot remove '$S/$1'"
    if [ -d "$C/$1" ] && [ ! -L "$C/$1" ]; then
        cp -R -P --link --preserve=mode,ownership,timestamps,xattr -- "$C/$1" "$S/$1" ||
            of_die "cannot restore '$S/$1' from '$C/$1'"
    elif [ -e "$C/$1" ] || [ -L "$C/$1" ]; then
        ln -P -- "$C/$1" "$S/$1" || of_die "cannot restore '$S/$1' from '$C/$1'"
    fi
}

# f_stat_batch LIST OUT FORMAT: stat FORMAT of the NUL-separated paths in LIST, one line each in
# OUT, "gone" for a path that cannot be read.
f_stat_batch() {
    : >"$2"
    [ -s "$1" ] || return 0
    if xargs -0 stat -c "$3" -- <"$1" >"$2" 2>/dev/null; then
        return 0
    fi
    xargs -0 -n 1 sh -c 'stat -c "$1" -- "$2" 2>/dev/null || echo gone' sh "$3" <"$1" >"$2"
}

# f_dir REL: folds the entries of directory REL of instance f_i (see the header).
f_dir() {
    d_rel=$1
    d_pre=${d_rel:+$d_rel/}
    d_u=$f_U${d_rel:+/$d_rel}
    d_v=$V${d_rel:+/$d_rel}
    d_c=$C${d_rel:+/$d_rel}
    d_s=$S${d_rel:+/$d_rel}
    [ -d "$d_u" ] && [ ! -L "$d_u" ] || return 0
    [ -d "$d_s" ] && [ ! -L "$d_s" ] || of_die "internal error: staging directory '$d_s' is missing"

    set -- "$d_u"/* "$d_u"/.[!.]* "$d_u"/..?*
    : >"$W/jmap"
    : >"$W/ulist"
    : >"$W/dec"
    : >"$W/cplist"
    : >"$W/slist"
    : >"$W/dlist"
    : >"$W/mklist"
    : >"$W/dwlist"
    for e; do
        case $e in
            "$d_u/*" | "$d_u/.[!.]*" | "$d_u/..?*")
                if [ ! -e "$e" ] && [ ! -L "$e" ]; then
                    echo j >>"$W/jmap"
                    continue
                fi
                ;;
        esac
        echo e >>"$W/jmap"
        printf '%s\0' "$e" >>"$W/ulist"
    done
    f_stat_batch "$W/ulist" "$W/before" "$FOLD_STFMT"

    # Pass 1: decide.
    exec 4<"$W/jmap" 5<"$W/before"
    for e; do
        read -r f_j <&4
        if [ "$f_j" = j ]; then
            echo junk >>"$W/dec"
            continue
        fi
        read -r s_f s_i s_s s_y s_z s_h s_u s_g s_t s_T <&5
        n=${e##*/}
        rp=$d_pre$n
        if [ "$s_f" = gone ]; then
            echo gone >>"$W/dec"
            continue
        fi
        if f_is_private "$rp"; then
            echo priv >>"$W/dec"
            continue
        fi
        s_type=$((0x$s_f & 61440))
        if [ ! -e "$d_v/$n" ] && [ ! -L "$d_v/$n" ]; then
            f_wh=
            if [ "$s_type" -eq 8192 ] && [ "$s_t" = 0 ] && [ "$s_T" = 0 ]; then
                f_wh=1
            elif [ "$s_type" -eq 32768 ] && [ "$s_s" = 0 ]; then
                f_wh=1
            fi
            if [ -z "$f_wh" ]; then
                echo skip >>"$W/dec"
            elif ! f_claim "$rp"; then
                echo wh-apply >>"$W/dec"
            elif [ "$f_ckind" = absent ]; then
                echo "wh-same $f_ck" >>"$W/dec"
            else
                echo "wh-lost $f_ck" >>"$W/dec"
            fi
        elif [ "$s_type" -eq 16384 ]; then
            if [ ! -d "$d_v/$n" ] || [ -L "$d_v/$n" ]; then
                echo skip >>"$W/dec"
            elif ! f_claim "$rp"; then
                if [ -d "$d_s/$n" ] && [ ! -L "$d_s/$n" ]; then
                    echo "dir-win s" >>"$W/dec"
                    printf '%s\0' "$n" >>"$W/dwlist"
                    printf '%s\0' "$d_s/$n" >>"$W/slist"
                else
                    echo dir-win >>"$W/dec"
                fi
            elif [ "$f_ckind" != dir ]; then
                echo "dir-lost $f_ck" >>"$W/dec"
            elif f_same_dirmeta "$n"; then
                echo "dir-same $f_ck" >>"$W/dec"
            else
                echo "dir-meta $f_ck" >>"$W/dec"
            fi
        else
            if [ -d "$d_v/$n" ] && [ ! -L "$d_v/$n" ]; then
                echo skip >>"$W/dec"
            elif ! f_claim "$rp"; then
                if [ -d "$d_s/$n" ] && [ ! -L "$d_s/$n" ]; then
                    rm -rf --one-file-system -- "$d_s/$n" || of_die "cannot remove '$d_s/$n'"
                fi
                if [ "$s_type" -eq 32768 ] && [ "$s_h" -gt 1 ]; then
                    echo f-link >>"$W/dec"
                else
                    echo f-copy >>"$W/dec"
                    printf '%s\0' "$d_v/$n" >>"$W/cplist"
                fi
                printf '%s\0' "$d_s/$n" >>"$W/slist"
            elif [ "$f_ckind" = nondir ] && f_same_nondir "$n"; then
                echo "f-same $f_ck" >>"$W/dec"
            else
                echo "f-lost $f_ck" >>"$W/dec"
            fi
        fi
    done
    exec 4<&- 5<&-

    # Pass 2: copy from the view (new inodes; the hard link to the current lower is unlinked).
    if [ -s "$W/cplist" ]; then
        xargs -0 cp -R -P --preserve=mode,ownership,timestamps,xattr --remove-destination \
            --sparse=auto -t "$d_s" -- <"$W/cplist" 2>>"$W/cperr" || :
    fi
    exec 4<"$W/jmap" 5<"$W/before" 6<"$W/dec"
    for e; do
        read -r f_j <&4
        read -r f_dec f_dk <&6
        [ "$f_j" = j ] && continue
        read -r s_f s_i s_s s_y s_z s_h s_u s_g s_t s_T <&5
        [ "$f_dec" = f-link ] || continue
        n=${e##*/}
        f_map=$W/ino$f_i/$s_i
        if [ -f "$f_map" ]; then
            IFS= read -r f_first <"$f_map"
            fold_dec "$f_first"
            ln -f -P -- "$S/$FOLD_DEC" "$d_s/$n" 2>>"$W/cperr" || :
        else
            cp -R -P --preserve=mode,ownership,timestamps,xattr --remove-destination --sparse=auto \
                -- "$d_v/$n" "$d_s/$n" 2>>"$W/cperr" || :
            fold_enc "$d_pre$n"
            printf '%s\n' "$FOLD_ENC" >"$f_map"
        fi
    done
    exec 4<&- 5<&- 6<&-
    [ "$f_first_dir_done" = 1 ] || {
        f_first_dir_done=1
        f_pause walk
    }

    # Pass 3: verify (the upper entry did not change meanwhile, the copy matches it) and commit.
    # Directories: the staging dirs' owner/mode, and whether all their xattrs already match.
    f_dw_x=
    if [ -s "$W/dwlist" ]; then
        f_xv=$(cd -- "$d_v" && xargs -0 getfattr -h -d -m - -e hex -- <"$W/dwlist" 2>/dev/null) || f_xv=x
        f_xs=$(cd -- "$d_s" && xargs -0 getfattr -h -d -m - -e hex -- <"$W/dwlist" 2>/dev/null) || f_xs=y
        [ "$f_xv" != "$f_xs" ] || f_dw_x=1
    fi
    f_stat_batch "$W/ulist" "$W/after" "$FOLD_STFMT"
    f_stat_batch "$W/slist" "$W/sst" '%f %s %.9Y %u %g'
    exec 4<"$W/jmap" 5<"$W/before" 6<"$W/dec" 7<"$W/after" 8<"$W/sst"
    for e; do
        read -r f_j <&4
        read -r f_dec f_dk <&6
        [ "$f_j" = j ] && continue
        read -r s_f s_i s_s s_y s_z s_h s_u s_g s_t s_T <&5
        read -r a_f a_i a_s a_y a_z a_h a_u a_g a_t a_T <&7
        case $f_dec in junk | gone | priv) continue ;; esac
        f_sst=
        case $f_dec/$f_dk in
            f-copy/* | f-link/* | dir-win/s) read -r f_sst <&8 ;;
        esac
        n=${e##*/}
        rp=$d_pre$n
        s_type=$((0x$s_f & 61440))
        case $f_dec in
            dir-*) [ "$a_f $a_i" = "$s_f $s_i" ] && f_stable=1 || f_stable= ;;
            wh-*) [ "$a_f $a_s $a_t $a_T" = "$s_f $s_s $s_t $s_T" ] && f_stable=1 || f_stable= ;;
            *) [ "$a_f $a_i $a_s $a_y $a_z" = "$s_f $s_i $s_s $s_y $s_z" ] && f_stable=1 || f_stable= ;;
        esac
        case $f_dec in
            f-copy | f-link)
                if [ -n "$f_stable" ] && [ "$f_sst" = "$s_f $s_s $s_y $s_u $s_g" ]; then
                    : >"$W/s$f_i/$rp"
                    f_man D "$rp"
                    f_files=$((f_files + 1))
                    [ "$s_type" -ne 32768 ] || f_bytes=$((f_bytes + s_s))
                    [ "$f_dec" != f-link ] || printf '%s %s D\n' "$s_i" "$s_h" >>"$W/hl$f_i"
                else
                    f_revert "$rp"
                    if [ "$f_dec" = f-link ]; then
                        rm -f -- "$W/ino$f_i/$s_i"
                        printf '%s %s K\n' "$s_i" "$s_h" >>"$W/hl$f_i"
                    fi
                    f_skip "$rp"
                    f_man K "$rp"
                fi
                ;;
            f-same)
                if [ -n "$f_stable" ]; then f_man D "$rp"; else f_skip "$rp"; f_man K "$rp"; fi
                if [ "$s_type" -eq 32768 ] && [ "$s_h" -gt 1 ]; then
                    if [ -n "$f_stable" ]; then
                        if [ ! -f "$W/ino$f_i/$s_i" ]; then
                            fold_enc "$rp"
                            printf '%s\n' "$FOLD_ENC" >"$W/ino$f_i/$s_i"
                        fi
                        printf '%s %s D\n' "$s_i" "$s_h" >>"$W/hl$f_i"
                    else
                        printf '%s %s K\n' "$s_i" "$s_h" >>"$W/hl$f_i"
                    fi
                fi
                ;;
            f-lost)
                f_conflict "$rp" "$f_dk"
                f_man K "$rp"
                [ "$s_type" -ne 32768 ] || [ "$s_h" -le 1 ] || printf '%s %s K\n' "$s_i" "$s_h" >>"$W/hl$f_i"
                ;;
            wh-apply)
                if [ -n "$f_stable" ]; then
                    if [ -e "$d_s/$n" ] || [ -L "$d_s/$n" ]; then
                        printf '%s\0' "$d_s/$n" >>"$W/dlist"
                        f_deleted=$((f_deleted + 1))
                    fi
                    : >"$W/s$f_i/$rp"
                    f_man D "$rp"
                else
                    f_skip "$rp"
                    f_man K "$rp"
                fi
                ;;
            wh-same)
                if [ -n "$f_stable" ]; then f_man D "$rp"; else f_skip "$rp"; f_man K "$rp"; fi
                ;;
            wh-lost)
                f_conflict "$rp" "$f_dk"
                f_man K "$rp"
                ;;
            dir-*)
                if [ -z "$f_stable" ]; then
                    f_skip "$rp"
                    f_man K "$rp"
                    continue
                fi
                FOLD_OPQ=
                [ -z "$f_has_opq" ] || fold_opaque_val "$d_u/$n" "$f_ns"
                f_o=
                [ -z "$FOLD_OPQ" ] || f_o=o
                case $f_dec in
                    dir-lost)
                        f_conflict "$rp" "$f_dk"
                        f_man "K$f_o" "$rp"
                        continue
                        ;;
                    dir-win)
                        f_meta_same=
                        if [ "$f_dk" = s ]; then
                            x_f=${f_sst%% *}
                            x_ug=${f_sst#* * * }
                            [ "$x_f $x_ug" != "$s_f $s_u $s_g" ] || f_meta_same=1
                        fi
                        f_dir_apply "$n"
                        fold_enc "$rp"
                        printf '%s %s\n' "$s_y" "$FOLD_ENC" >>"$W/mtimes"
                        f_man "D$f_o" "$rp"
                        ;;
                    dir-same) f_man "D$f_o" "$rp" ;;
                    dir-meta)
                        f_conflict "$rp" "$f_dk"
                        f_man "K$f_o" "$rp"
                        ;;
                esac
                printf '%s\0' "$W/s$f_i/$rp" >>"$W/mklist"
                fold_enc "$rp"
                printf '%s\n' "$FOLD_ENC" >>"$W/q"
                ;;
            skip)
                f_skip "$rp"
                f_man K "$rp"
                ;;
        esac
    done
    exec 4<&- 5<&- 6<&- 7<&- 8<&-
    if [ -s "$W/mklist" ]; then
        xargs -0 mkdir -- <"$W/mklist" || of_die "cannot record the claims below '$d_rel'"
    fi

    # Pass 4: entries of the current lower that the view hides without a whiteout in the upper
    # (below an opaque directory): absent for this instance.
    if [ -d "$d_c" ] && [ ! -L "$d_c" ]; then
        for e in "$d_c"/* "$d_c"/.[!.]* "$d_c"/..?*; do
            [ -e "$e" ] || [ -L "$e" ] || continue
            n=${e##*/}
            if [ -e "$d_u/$n" ] || [ -L "$d_u/$n" ] || [ -e "$d_v/$n" ] || [ -L "$d_v/$n" ]; then
                continue
            fi
            rp=$d_pre$n
            ! f_is_private "$rp" || continue
            if ! f_claim "$rp"; then
                if [ -e "$d_s/$n" ] || [ -L "$d_s/$n" ]; then
                    printf '%s\0' "$d_s/$n" >>"$W/dlist"
                    f_deleted=$((f_deleted + 1))
                fi
                : >"$W/s$f_i/$rp"
            elif [ "$f_ckind" != absent ]; then
                f_conflict "$rp" "$f_ck"
            fi
        done
    fi
    if [ -s "$W/dlist" ]; then
        xargs -0 rm -rf --one-file-system -- <"$W/dlist" || of_die "cannot delete entries in '$d_s'"
    fi
}

# f_hardlinks: hard-link groups of instance f_i that were not folded whole are kept in the upper
# (the manifest marks all their names K), so the instance keeps one inode for them.
f_hardlinks() {
    [ -s "$W/hl$f_i" ] || return 0
    f_taint=
    f_cur=
    f_cnt=0
    f_bad=
    sort -n -k1,1 "$W/hl$f_i" >"$W/hls"
    printf 'end 0 D\n' >>"$W/hls"
    while read -r f_hi f_hn f_hf; do
        if [ "$f_hi" != "$f_cur" ]; then
            if [ -n "$f_cur" ] && { [ -n "$f_bad" ] || [ "$f_cnt" -ne "$f_curn" ]; }; then
                f_taint="$f_taint $f_cur "
            fi
            f_cur=$f_hi
            f_curn=$f_hn
            f_cnt=0
            f_bad=
        fi
        if [ "$f_hf" = D ]; then f_cnt=$((f_cnt + 1)); else f_bad=1; fi
    done <"$W/hls"
    [ -n "$f_taint" ] || return 0
    : >"$W/m.new"
    while IFS=' ' read -r m_flag m_f m_i m_rest; do
        if [ "$m_flag" = D ] && [ $((0x$m_f & 61440)) -eq 32768 ]; then
            case $f_taint in *" $m_i "*) m_flag=K ;; esac
        fi
        printf '%s %s %s %s\n' "$m_flag" "$m_f" "$m_i" "$m_rest" >>"$W/m.new"
    done <"$W/m$f_i"
    mv -f -- "$W/m.new" "$W/m$f_i"
}

# Fold each instance, in the order given (the first one wins conflicts).
f_first_dir_done=0
f_i=1
while [ "$f_i" -le "$f_n" ]; do
    eval "f_U=\$f_up_$f_i f_name=\$f_name_$f_i f_ns=\$f_ns_$f_i f_has_opq=\$f_opq_$f_i"
    f_pause "instance-$f_i"
    V=$W/v$f_i
    mkdir -- "$V" "$W/s$f_i" "$W/ino$f_i" || of_die "cannot create '$V'"
    : >"$W/m$f_i"
    : >"$W/hl$f_i"
    f_opts="ro,lowerdir=$f_U:$C,redirect_dir=nofollow,metacopy=off"
    [ "$f_ns" != user ] || f_opts="$f_opts,userxattr"
    f_out=$(mount -t overlay overlay -o "$f_opts" "$V" 2>&1) ||
        of_die "instance '$f_name': cannot mount the read-only view of '$f_U' on '$C' ($f_opts): $f_out"
    f_views="$f_views $V"
    printf 'R\n' >"$W/q"
    exec 3<"$W/q"
    while IFS= read -r f_ql <&3; do
        fold_dec "$f_ql" || of_die "internal error: bad queue entry '$f_ql'"
        f_dir "$FOLD_DEC"
    done
    exec 3<&-
    f_hardlinks
    umount -- "$V" || of_die "cannot unmount the view '$V'"
    f_views=
    f_i=$((f_i + 1))
done

# Directory mtimes (after every change below them): the first instance's that claimed them.
while IFS=' ' read -r f_mt f_enc; do
    fold_dec "$f_enc"
    fold_set_mtime "$S/$FOLD_DEC" "$f_mt" || of_die "cannot set the mtime of '$S/$FOLD_DEC'"
done <"$W/mtimes"
fold_mtime "$C"
fold_set_mtime "$S" "$FOLD_MT" || of_die "cannot set the mtime of '$S'"

# Conflicts, one line per path.
f_conflicts=0
if [ -s "$W/conflicts" ]; then
    LC_ALL=C sort -s -t "$FOLD_TAB" -k1,1 "$W/conflicts" >"$W/conflicts.sorted"
    printf '/\t0\t0\n' >>"$W/conflicts.sorted"
    f_cp=
    f_cw=
    f_co=
    f_first=1
    while IFS="$FOLD_TAB" read -r f_p f_w f_l; do
        if [ -n "$f_first" ] || [ "$f_p" != "$f_cp" ]; then
            if [ -z "$f_first" ]; then
                eval "f_wn=\$f_name_$f_cw"
                printf 'conflict\t%s\twinner=%s\tothers=%s\n' "$f_cp" "$f_wn" "$f_co"
                f_conflicts=$((f_conflicts + 1))
            fi
            f_first=
            f_cp=$f_p
            f_cw=$f_w
            f_co=
        fi
        [ "$f_l" != 0 ] || continue
        eval "f_ln=\$f_name_$f_l"
        case ,$f_co, in
            *,"$f_ln",*) ;;
            *) f_co=$f_co${f_co:+,}$f_ln ;;
        esac
    done <"$W/conflicts.sorted"
fi

f_pause manifests
# Manifests, complete before the new generation appears.
mkdir -p -- "$M.partial" || of_die "cannot create '$M.partial'"
: >"$M.partial/.overlay-fleet-manifests"
f_i=1
while [ "$f_i" -le "$f_n" ]; do
    eval "f_U=\$f_up_$f_i f_name=\$f_name_$f_i f_ns=\$f_ns_$f_i"
    {
        printf '# overlay-fleet fold manifest 1\n'
        printf '# instance %s\n# upper %s\n# lower %s\n# from %s\n# ns %s\n' "$f_name" "$f_U" "$T" "$C" "$f_ns"
        cat -- "$W/m$f_i"
    } >"$M.partial/$f_name.manifest" || of_die "cannot write the manifest of '$f_name' in '$M.partial'"
    f_i=$((f_i + 1))
done
if [ -e "$M" ] || [ -L "$M" ]; then
    if [ -e "$M/.overlay-fleet-manifests" ] || fold_dir_is_empty "$M"; then
        rm -rf -- "$M" || of_die "cannot replace the stale manifest dir '$M'"
    else
        of_die "manifest dir '$M' exists and was not written by fold; refusing to replace it"
    fi
fi
mv -- "$M.partial" "$M" || of_die "cannot move the manifests into '$M'"

f_pause rename
sync -f -- "$S" 2>/dev/null || sync
mv -T -- "$S" "$T" || of_die "cannot rename '$S' to '$T'"
f_done=1
sync -f -- "$T" 2>/dev/null || sync

printf 'folded %s from %s: files=%s bytes=%s deleted=%s conflicts=%s skipped=%s\n' \
    "$f_target" "$f_g" "$f_files" "$f_bytes" "$f_deleted" "$f_conflicts" "$f_skipped"
