# overlay-fleet: shared functions of the cache-generation fold (host/fold.sh, host/gc.sh) and the
# `drop_folded` entry point that host/mount.sh calls between the unmount of an instance and its
# mount on a new lower generation.
#
# This file is part of every host script bundle (lib.sh + lib-fold.sh + <name>.sh): it only defines
# functions (prefix fold_, variables fold_*/FOLD_*) and does nothing when included.
# Strict POSIX sh (tested with dash). Needs coreutils, findutils, util-linux; getfattr/setfattr
# (package attr) where noted.
#
# Generations of a lower L: generation 1 is L itself, generation g>1 is the sibling `L.g<g>`.
# Once generation 1 is retired, L is a symlink to the current generation (host/gc.sh).
# While generation g is built it is `L.g<g>.partial` (staging) with a work dir `L.g<g>.work`;
# both are siblings of L so that they are on L's filesystem. `L.fold.lock` serialises fold and gc.
#
# Manifest (one per instance, written by fold, read by drop_folded), text, one entry a line:
#   # overlay-fleet fold manifest 1
#   # instance <name>
#   # upper <upper dir>
#   # lower <new generation dir>
#   # from <generation the upper was used with>
#   # ns <trusted|user>
#   <flag> <mode-hex> <ino> <size> <mtime> <ctime> <path>
# flag: D = folded into the new lower (won, or identical to the winner): drop it if unchanged;
#       K = examined but not folded (conflict loser, changed during the fold, hard-link group not
#           folded whole): always kept. A trailing `o` marks a directory that was opaque (`y`).
# identity: stat %f %i %s %.9Y %.9Z of the upper entry when it was folded.
# path: relative to the upper; `R<path>` verbatim, or `E<path>` with \\, \n, \t escapes (names
# with a backslash, newline or tab; host/foldtool's enc). Entries are in breadth-first order:
# every directory before its children, and the children of one directory on consecutive lines.

# fold_init: the constants below; every entry point calls it first.
fold_init() {
    FOLD_NL='
'
    FOLD_TAB='	'
}


# fold_check_path LABEL VALUE: of_check_path (host/lib.sh, bundled first), and not / either.
# Normalised path in FOLD_PATH.
fold_check_path() {
    of_check_path "$1" "$2"
    [ "$OF_PATH" != / ] || of_usage "$1 must not be /"
    FOLD_PATH=$OF_PATH
}

# fold_is_generation VALUE: VALUE is a generation number, 1..OF_MAX_GENERATION (digits only, no
# leading zero; the length is checked first, so no comparison can overflow).
fold_is_generation() {
    case $1 in
        '' | *[!0-9]* | 0*) return 1 ;;
    esac
    [ "${#1}" -le "${#OF_MAX_GENERATION}" ] && [ "$1" -le "$OF_MAX_GENERATION" ]
}

# fold_check_generation LABEL VALUE: exits 2 unless VALUE is a generation number.
fold_check_generation() {
    fold_is_generation "$2" || of_usage "$1 must be a whole number 1..$OF_MAX_GENERATION, got '$2'"
}

# fold_within PATH DIR: PATH is DIR or below it (normalised strings).
fold_within() {
    [ "$1" = "$2" ] && return 0
    case $1 in
        "$2"/*) return 0 ;;
    esac
    return 1
}

# fold_gen_path L G: directory of generation G of lower L, in FOLD_GP.
fold_gen_path() {
    if [ "$2" -eq 1 ]; then FOLD_GP=$1; else FOLD_GP=$1$OF_GENERATION_SUFFIX$2; fi
}

# fold_dec FIELD: the string a manifest path field holds, in FOLD_DEC; 1 if FIELD is not an encoded string.
fold_dec() {
    case $1 in
        R*) FOLD_DEC=${1#R} ;;
        E*)
            FOLD_DEC=$(printf '%bx' "${1#E}") || return 1
            FOLD_DEC=${FOLD_DEC%x}
            ;;
        *) return 1 ;;
    esac
}

# fold_mib BYTES: BYTES in MiB with one decimal, in FOLD_MIB.
fold_mib() {
    fold_m_t=$(($1 * 10 / 1048576))
    FOLD_MIB=$((fold_m_t / 10)).$((fold_m_t % 10))
}

# fold_mi_each CALLBACK: calls CALLBACK for every line of /proc/self/mountinfo with FOLD_MI_MP
# (mount point), FOLD_MI_FSTYPE and FOLD_MI_SUPER (superblock options) set; a callback returning
# non-zero stops the walk. Values are as the kernel escapes them (\040 ...); paths accepted by
# fold_check_path contain no escaped character.
fold_mi_each() {
    while IFS=' ' read -r fold_mi_id fold_mi_par fold_mi_dev fold_mi_root FOLD_MI_MP fold_mi_opts fold_mi_rest; do
        case $fold_mi_rest in
            '- '*) fold_mi_tail=${fold_mi_rest#- } ;;
            *' - '*) fold_mi_tail=${fold_mi_rest#* - } ;;
            *) continue ;;
        esac
        FOLD_MI_FSTYPE=${fold_mi_tail%% *}
        FOLD_MI_SUPER=${fold_mi_tail##* }
        "$1" || break
    done </proc/self/mountinfo
}

# fold_opt_get KEY OPTS: value of the first KEY=value in the comma-separated OPTS, in FOLD_OPT;
# 1 if absent.
fold_opt_get() {
    fold_og_rest=$2,
    while [ -n "$fold_og_rest" ]; do
        fold_og_o=${fold_og_rest%%,*}
        fold_og_rest=${fold_og_rest#*,}
        case $fold_og_o in
            "$1"=*)
                FOLD_OPT=${fold_og_o#*=}
                return 0
                ;;
        esac
    done
    return 1
}

# fold_refs_path VALUE PATH: VALUE (a layer path) is PATH or below it, by string or by inode.
fold_refs_path() {
    [ -n "$1" ] || return 1
    of_norm "$1"
    fold_within "$OF_NORM" "$2" && return 0
    of_same_path "$OF_NORM" "$2"
}

# fold_mount_users PATH: mounts that use PATH (or something below it) as an overlay layer or
# have their mount point at or below PATH. One line each in FOLD_USERS; 0 if there is any.
fold_mount_users() {
    FOLD_USERS=
    fold_mu_path=$1
    fold_mi_each fold_mount_users_cb
    [ -n "$FOLD_USERS" ]
}
fold_mount_users_cb() {
    fold_mu_hit=
    if fold_within "$FOLD_MI_MP" "$fold_mu_path"; then
        fold_mu_hit="mount point"
    elif [ "$FOLD_MI_FSTYPE" = overlay ]; then
        for fold_mu_k in lowerdir upperdir workdir; do
            fold_opt_get "$fold_mu_k" "$FOLD_MI_SUPER" || continue
            fold_mu_rest=$FOLD_OPT:
            while [ -n "$fold_mu_rest" ]; do
                fold_mu_l=${fold_mu_rest%%:*}
                fold_mu_rest=${fold_mu_rest#*:}
                if fold_refs_path "$fold_mu_l" "$fold_mu_path"; then
                    fold_mu_hit=$fold_mu_k
                    break 2
                fi
            done
        done
    fi
    if [ "$fold_mu_hit" = "mount point" ]; then
        FOLD_USERS="$FOLD_USERS${FOLD_USERS:+$FOLD_NL}mount $FOLD_MI_MP ($FOLD_MI_FSTYPE)"
    elif [ -n "$fold_mu_hit" ]; then
        FOLD_USERS="$FOLD_USERS${FOLD_USERS:+$FOLD_NL}overlay mount $FOLD_MI_MP ($fold_mu_hit)"
    fi
    return 0
}

# fold_upper_mount UPPER: the overlay that has UPPER as its upperdir, if any: FOLD_UM_MP,
# FOLD_UM_LOWER (its lowerdir option), FOLD_UM_SUPER. 0 if there is one.
fold_upper_mount() {
    FOLD_UM_MP=
    FOLD_UM_LOWER=
    FOLD_UM_SUPER=
    fold_um_upper=$1
    fold_mi_each fold_upper_mount_cb
    [ -n "$FOLD_UM_MP" ]
}
fold_upper_mount_cb() {
    [ "$FOLD_MI_FSTYPE" = overlay ] || return 0
    fold_opt_get upperdir "$FOLD_MI_SUPER" || return 0
    of_norm "$FOLD_OPT"
    of_same_path "$OF_NORM" "$fold_um_upper" || return 0
    FOLD_UM_MP=$FOLD_MI_MP
    FOLD_UM_SUPER=$FOLD_MI_SUPER
    if fold_opt_get lowerdir "$FOLD_MI_SUPER"; then FOLD_UM_LOWER=$FOLD_OPT; fi
    return 1
}

# fold_lock L WHAT: takes the fold/gc lock of lower L on fd 9 (released when the process ends).
fold_lock() {
    of_have flock || of_die "flock (util-linux) is required to $2 safely"
    FOLD_LOCKFILE=$1.fold.lock
    exec 9>>"$FOLD_LOCKFILE" || of_die "cannot open lock file '$FOLD_LOCKFILE'"
    flock -n 9 || of_die "another fold or gc of '$1' is running (lock '$FOLD_LOCKFILE' is held); retry when it has finished"
}

# fold_same_plain_xattrs UPPERPATH LOWERPATH: both have the same extended attributes, overlay's
# own left aside (one getfattr for both; LOWERPATH must not be below UPPERPATH).
fold_same_plain_xattrs() {
    fold_sx=$(getfattr -h -d -m - -e hex --absolute-names -- "$1" "$2" 2>/dev/null) || return 1
    fold_sx_a=
    fold_sx_b=
    fold_sx_in=
    while IFS= read -r fold_sx_l; do
        case $fold_sx_l in
            "# file: $2") fold_sx_in=b ;;
            '# file: '*) fold_sx_in=a ;;
            '' | trusted.overlay.* | user.overlay.*) ;;
            *)
                if [ "$fold_sx_in" = b ]; then
                    fold_sx_b="$fold_sx_b$fold_sx_l$FOLD_NL"
                else
                    fold_sx_a="$fold_sx_a$fold_sx_l$FOLD_NL"
                fi
                ;;
        esac
    done <<EOF
$fold_sx
EOF
    [ "$fold_sx_a" = "$fold_sx_b" ]
}

# fold_opaque_val PATH NS: the value of NS.overlay.opaque on PATH (y, x or empty), in FOLD_OPQ.
fold_opaque_val() {
    FOLD_OPQ=$(getfattr -h --absolute-names --only-values -n "$2.overlay.opaque" -- "$1" 2>/dev/null) || FOLD_OPQ=
}

# fold_mtime PATH: mtime (seconds.nanoseconds) of PATH itself, in FOLD_MT.
fold_mtime() {
    FOLD_MT=$(stat -c '%.9Y' -- "$1" 2>/dev/null) || FOLD_MT=
}

# fold_set_mtime PATH MTIME: sets the mtime of PATH itself (not following a symlink).
fold_set_mtime() {
    [ -n "$2" ] || return 0
    touch -h -m -d "@$2" -- "$1"
}

# ---------------------------------------------------------------------------------------------
# drop_folded MANIFEST UPPER
#
# Called on an unmounted upper just before it is mounted on the generation the manifest was
# folded into. Removes from UPPER what the fold put into that generation and that has not changed
# since (identity: type, inode, size, mtime, ctime), so the instance sees it through the new lower:
#   - unchanged folded files, symlinks, special files and whiteouts are removed;
#   - a folded directory is removed when it is empty afterwards and its mode, owner, mtime and
#     attributes equal the new lower's; otherwise it stays with its mtime restored;
#   - an opaque directory stays opaque (with everything below it) unless every name of the new
#     lower's directory is also in the upper's, recursively; then the opaque mark is removed
#     first and its folded children are dropped like any others (needs getfattr/setfattr);
#   - entries changed after the fold, conflict losers, entries skipped by the fold and private
#     paths are kept; an entry that was folded but deleted after the fold gets a whiteout, so it
#     does not reappear from the new lower.
# Whatever the instance had changed, it sees exactly as before; everything else shows the new
# lower. Idempotent: the whiteout step runs once (marker `<MANIFEST>.drop-a`), and removal only
# removes unchanged entries. Runs in a subshell: no variable, directory or trap of the caller is
# touched; returns non-zero with an `overlay-fleet:` message on failure.
drop_folded() (
    set +e
    fold_init
    if [ "$#" -ne 2 ]; then
        of_err "usage: drop_folded <manifest> <upper>"
        exit 2
    fi
    fdm=$1
    of_norm "$2"
    fdu=$OF_NORM
    [ -f "$fdm" ] || { of_err "drop_folded: manifest '$fdm' does not exist"; exit 1; }
    [ -d "$fdu" ] && [ ! -L "$fdu" ] || { of_err "drop_folded: upper '$fdu' is not a directory"; exit 1; }

    fdm_upper=
    fdm_lower=
    fdm_ns=trusted
    fdm_magic=
    while IFS= read -r fd_l; do
        case $fd_l in
            '# overlay-fleet fold manifest 1') fdm_magic=1 ;;
            '# upper '*) fdm_upper=${fd_l#'# upper '} ;;
            '# lower '*) fdm_lower=${fd_l#'# lower '} ;;
            '# ns '*) fdm_ns=${fd_l#'# ns '} ;;
            '#'*) ;;
            *) break ;;
        esac
    done <"$fdm"
    [ -n "$fdm_magic" ] || { of_err "drop_folded: '$fdm' is not an overlay-fleet fold manifest"; exit 1; }
    case $fdm_ns in
        trusted | user) ;;
        *) of_err "drop_folded: '$fdm' names an unknown xattr namespace '$fdm_ns'"; exit 1 ;;
    esac
    if ! of_same_path "$fdm_upper" "$fdu"; then
        of_err "drop_folded: manifest '$fdm' was written for upper '$fdm_upper', not '$fdu'"
        exit 1
    fi
    [ -d "$fdm_lower" ] || { of_err "drop_folded: the generation '$fdm_lower' of manifest '$fdm' does not exist"; exit 1; }
    if fold_upper_mount "$fdu"; then
        of_err "drop_folded: upper '$fdu' is mounted (overlay on $FOLD_UM_MP); unmount it first"
        exit 1
    fi
    fd_attr=
    if of_have getfattr && of_have setfattr; then fd_attr=1; fi

    fd_whiteouts=0
    fd_unopaqued=0
    fd_removed=0
    fd_kept=0

    # Phase A (once): whiteouts for folded entries deleted since the fold; opaque marks removed
    # where the new lower's directory adds nothing the instance did not see.
    if [ ! -e "$fdm.drop-a" ]; then
        while IFS=' ' read -r fd_flag fd_f fd_i fd_s fd_y fd_z fd_p; do
            case $fd_flag in '#'* | '') continue ;; esac
            fold_dec "$fd_p" || { of_err "drop_folded: bad line in '$fdm': $fd_flag $fd_p"; exit 1; }
            fd_rel=$FOLD_DEC
            fd_u=$fdu/$fd_rel
            if [ -e "$fd_u" ] || [ -L "$fd_u" ]; then
                case $fd_flag in
                    Do)
                        [ -n "$fd_attr" ] || continue
                        [ -d "$fd_u" ] && [ ! -L "$fd_u" ] || continue
                        [ "$(stat -c '%i' -- "$fd_u")" = "$fd_i" ] || continue
                        fold_opaque_val "$fd_u" "$fdm_ns"
                        [ "$FOLD_OPQ" = y ] || continue
                        if [ -d "$fdm_lower/$fd_rel" ] && [ ! -L "$fdm_lower/$fd_rel" ]; then
                            fold_unopaque_ok "$fd_u" "$fdm_lower/$fd_rel" "$fdm_ns" || continue
                        fi
                        if ! setfattr -h -x "$fdm_ns.overlay.opaque" -- "$fd_u"; then
                            of_err "drop_folded: cannot remove the opaque mark of '$fd_u'"
                            exit 1
                        fi
                        fd_unopaqued=$((fd_unopaqued + 1))
                        ;;
                esac
                continue
            fi
            # Deleted since the fold. Its directory must still be there (else the directory
            # itself is handled), and the new lower must have something to hide.
            case $fd_rel in
                */*) fd_par=$fdu/${fd_rel%/*} ;;
                *) fd_par=$fdu ;;
            esac
            [ -d "$fd_par" ] && [ ! -L "$fd_par" ] || continue
            [ -e "$fdm_lower/$fd_rel" ] || [ -L "$fdm_lower/$fd_rel" ] || continue
            fold_mtime "$fd_par"
            if ! mknod -- "$fd_u" c 0 0; then
                of_err "drop_folded: cannot create a whiteout at '$fd_u'"
                exit 1
            fi
            fold_set_mtime "$fd_par" "$FOLD_MT"
            fd_whiteouts=$((fd_whiteouts + 1))
        done <"$fdm"
        if ! printf '%s\n' "$fdu" >"$fdm.drop-a"; then
            of_err "drop_folded: cannot write '$fdm.drop-a'"
            exit 1
        fi
    fi

    # Opaque directories that stay opaque: nothing below them may be dropped. (With getfattr, one
    # look at the whole upper first: most uppers have none.)
    fd_keep_under=
    fd_any_opq=1
    if [ -n "$fd_attr" ]; then
        fd_any_opq=$(getfattr -R -P -h --absolute-names -m "^$fdm_ns\\.overlay\\.opaque\$" -- "$fdu" 2>/dev/null) || fd_any_opq=1
    fi
    [ -z "$fd_any_opq" ] || while IFS=' ' read -r fd_flag fd_f fd_i fd_s fd_y fd_z fd_p; do
        case $fd_flag in
            D | Do | K | Ko) ;;
            *) continue ;;
        esac
        [ $((0x$fd_f & 61440)) -eq 16384 ] || continue
        fold_dec "$fd_p" || continue
        fd_u=$fdu/$FOLD_DEC
        [ -d "$fd_u" ] && [ ! -L "$fd_u" ] || continue
        if [ -n "$fd_attr" ]; then
            fold_opaque_val "$fd_u" "$fdm_ns"
            [ -n "$FOLD_OPQ" ] || continue
        else
            case $fd_flag in *o) ;; *) continue ;; esac
        fi
        fd_keep_under="$fd_keep_under${fd_p#?}/$FOLD_NL"
    done <"$fdm"

    # Phase B1: decide for every non-directory before anything is removed (removing one name of
    # a hard-link group changes the ctime of the others); one stat for all of them.
    fd_dec=$fdm.drop-b.$$
    fd_chk=$fdm.drop-c.$$
    fd_chkst=$fdm.drop-d.$$
    fd_tmp=$fdm.drop-e.$$
    fd_tmp2=$fdm.drop-f.$$
    fd_rml=$fdm.drop-g.$$
    : >"$fd_dec" && : >"$fd_chk" || { of_err "drop_folded: cannot write next to '$fdm'"; exit 1; }
    while IFS=' ' read -r fd_flag fd_f fd_i fd_s fd_y fd_z fd_p; do
        case $fd_flag in
            '#'* | '') continue ;;
            D | Do) ;;
            *)
                echo keep >>"$fd_dec"
                continue
                ;;
        esac
        fd_skip=
        if [ -n "$fd_keep_under" ]; then
            while IFS= read -r fd_k; do
                [ -n "$fd_k" ] || continue
                case ${fd_p#?} in "$fd_k"*) fd_skip=1; break ;; esac
            done <<EOF
$fd_keep_under
EOF
        fi
        if [ -n "$fd_skip" ] || ! fold_dec "$fd_p"; then
            echo keep >>"$fd_dec"
        elif [ $((0x$fd_f & 61440)) -eq 16384 ]; then
            echo dir >>"$fd_dec"
        elif [ -e "$fdu/$FOLD_DEC" ] || [ -L "$fdu/$FOLD_DEC" ]; then
            echo chk >>"$fd_dec"
            printf '%s\0' "$fdu/$FOLD_DEC" >>"$fd_chk"
        else
            echo none >>"$fd_dec"
        fi
    done <"$fdm"
    : >"$fd_chkst"
    if [ -s "$fd_chk" ]; then
        xargs -0 stat -c '%f %i %s %.9Y %.9Z %t %T' -- <"$fd_chk" >"$fd_chkst" 2>/dev/null ||
            xargs -0 -n 1 sh -c 'stat -c "%f %i %s %.9Y %.9Z %t %T" -- "$1" 2>/dev/null || echo gone' sh \
                <"$fd_chk" >"$fd_chkst"
    fi
    : >"$fd_tmp"
    exec 4<"$fd_dec" 5<"$fd_chkst"
    while IFS=' ' read -r fd_flag fd_f fd_i fd_s fd_y fd_z fd_p; do
        case $fd_flag in '#'* | '') continue ;; esac
        IFS= read -r fd_d <&4 || fd_d=keep
        if [ "$fd_d" = chk ]; then
            IFS= read -r fd_now <&5 || fd_now=
            fd_d=keep
            if [ $((0x$fd_f & 61440)) -eq 8192 ] && [ "$fd_s" = 0 ] && [ "${fd_now%% *}" = "$fd_f" ]; then
                # A whiteout: any 0/0 character device will do (the kernel shares whiteout
                # inodes, so their inode and ctime change with unrelated deletions).
                case $fd_now in *' 0 0') fd_d=rm ;; esac
            fi
            [ "${fd_now% * *}" != "$fd_f $fd_i $fd_s $fd_y $fd_z" ] || fd_d=rm
        fi
        echo "$fd_d" >>"$fd_tmp"
    done <"$fdm"
    exec 4<&- 5<&-

    # Phase B2: children before their directories (reverse of the breadth-first order); the
    # files of one directory are removed together and its mtime is put back.
    if ! tac -- "$fdm" >"$fd_tmp2" || ! tac -- "$fd_tmp" >"$fd_dec"; then
        of_err "drop_folded: cannot read '$fdm'"
        rm -f -- "$fd_dec" "$fd_chk" "$fd_chkst" "$fd_tmp" "$fd_tmp2" "$fd_rml"
        exit 1
    fi
    : >"$fd_rml"
    fd_cur_par=
    fd_cur_mt=
    fd_cur_dirty=
    exec 4<"$fd_dec"
    while :; do
        fd_eof=
        IFS=' ' read -r fd_flag fd_f fd_i fd_s fd_y fd_z fd_p || fd_eof=1
        if [ -z "$fd_eof" ]; then
            case $fd_flag in '#'* | '') continue ;; esac
            IFS= read -r fd_d <&4 || fd_d=keep
            case $fd_d in
                rm | dir) ;;
                none) continue ;;
                *)
                    fd_kept=$((fd_kept + 1))
                    continue
                    ;;
            esac
            fold_dec "$fd_p" || continue
            fd_rel=$FOLD_DEC
            case $fd_rel in
                */*) fd_par=$fdu/${fd_rel%/*} ;;
                *) fd_par=$fdu ;;
            esac
        fi
        if [ -n "$fd_eof" ] || [ "$fd_par" != "$fd_cur_par" ]; then
            if [ -s "$fd_rml" ]; then
                if ! xargs -0 rm -f -- <"$fd_rml"; then
                    of_err "drop_folded: cannot remove files in '$fd_cur_par'"
                    rm -f -- "$fd_dec" "$fd_chk" "$fd_chkst" "$fd_tmp" "$fd_tmp2" "$fd_rml"
                    exit 1
                fi
                : >"$fd_rml"
            fi
            [ -z "$fd_cur_dirty" ] || fold_set_mtime "$fd_cur_par" "$fd_cur_mt"
            [ -z "$fd_eof" ] || break
            fd_cur_par=$fd_par
            fd_cur_mt=
            fd_cur_dirty=
        fi
        fd_u=$fdu/$fd_rel
        [ -e "$fd_u" ] || [ -L "$fd_u" ] || continue
        if [ "$fd_d" = dir ]; then
            fd_d=keep
            # the files below it were removed when their group ended
            if [ -d "$fd_u" ] && [ ! -L "$fd_u" ] && [ -n "$fd_attr" ] && fold_dir_is_empty "$fd_u"; then
                fd_now=$(stat -c '%f %i %u %g %.9Y' -- "$fd_u" "$fdm_lower/$fd_rel" 2>/dev/null) || fd_now=
                fd_low=${fd_now#*"$FOLD_NL"}
                fd_now=${fd_now%%"$FOLD_NL"*}
                fd_ni=${fd_now#* }
                fd_ni=${fd_ni%% *}
                if [ -n "$fd_now" ] && [ "$fd_ni" = "$fd_i" ] && [ "${fd_now%% *} ${fd_now#* * }" = "${fd_low%% *} ${fd_low#* * }" ]; then
                    fold_same_plain_xattrs "$fd_u" "$fdm_lower/$fd_rel" && fd_d=rmdir
                fi
            fi
            if [ "$fd_d" = keep ]; then
                fd_kept=$((fd_kept + 1))
                continue
            fi
        fi
        if [ -z "$fd_cur_dirty" ]; then
            fold_mtime "$fd_par"
            fd_cur_mt=$FOLD_MT
            fd_cur_dirty=1
        fi
        if [ "$fd_d" = rmdir ]; then
            if ! rmdir -- "$fd_u"; then
                of_err "drop_folded: cannot remove directory '$fd_u'"
                rm -f -- "$fd_dec" "$fd_chk" "$fd_chkst" "$fd_tmp" "$fd_tmp2" "$fd_rml"
                exit 1
            fi
        else
            printf '%s\0' "$fd_u" >>"$fd_rml"
        fi
        fd_removed=$((fd_removed + 1))
    done <"$fd_tmp2"
    exec 4<&-
    rm -f -- "$fd_dec" "$fd_chk" "$fd_chkst" "$fd_tmp" "$fd_tmp2" "$fd_rml"
    printf 'dropped %s: removed=%s kept=%s whiteouts=%s unopaqued=%s\n' \
        "$fdu" "$fd_removed" "$fd_kept" "$fd_whiteouts" "$fd_unopaqued"
    exit 0
)

# fold_dir_is_empty DIR: DIR has no entries.
fold_dir_is_empty() {
    for fold_de_e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        [ -e "$fold_de_e" ] || [ -L "$fold_de_e" ] || continue
        return 1
    done
    return 0
}

# fold_unopaque_ok UPPERDIR LOWERDIR NS: removing the opaque mark of UPPERDIR would show nothing
# new: every name in LOWERDIR is also in UPPERDIR (any entry, a whiteout included), and the same
# holds below for every directory present in both unless the upper one stays opaque.
fold_unopaque_ok() (
    for e in "$2"/* "$2"/.[!.]* "$2"/..?*; do
        [ -e "$e" ] || [ -L "$e" ] || continue
        n=${e##*/}
        [ -e "$1/$n" ] || [ -L "$1/$n" ] || exit 1
        if [ -d "$e" ] && [ ! -L "$e" ] && [ -d "$1/$n" ] && [ ! -L "$1/$n" ]; then
            fold_opaque_val "$1/$n" "$3"
            case $FOLD_OPQ in
                y) continue ;;
                '') fold_unopaque_ok "$1/$n" "$e" "$3" || exit 1 ;;
                *) exit 1 ;;
            esac
        fi
    done
    exit 0
)
