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

# ---------------------------------------------------------------------------------------------
# fold_tool: the fold helper (host/foldtool) in FOLD_TOOL: OVERLAY_FLEET_FOLDTOOL if set, else
# `foldtool` in the directory the script runs from (its installed host library, which holds the
# helper gzipped per architecture; its activate names the box's in foldtool.arch, and the first
# use unpacks it). 1, saying what is missing, when there is none.
fold_tool() {
    FOLD_TOOL=${OVERLAY_FLEET_FOLDTOOL:-$OF_START_DIR/foldtool}
    if [ ! -x "$FOLD_TOOL" ] && [ -z "${OVERLAY_FLEET_FOLDTOOL-}" ] && [ -f "$OF_START_DIR/foldtool.arch" ]; then
        read -r fold_t_arch <"$OF_START_DIR/foldtool.arch" || fold_t_arch=
        gzip -dc -- "$OF_START_DIR/foldtool-$fold_t_arch.gz" >"$FOLD_TOOL.new.$$" && chmod 0755 "$FOLD_TOOL.new.$$" && mv -f -- "$FOLD_TOOL.new.$$" "$FOLD_TOOL" ||
            { rm -f -- "$FOLD_TOOL.new.$$"; of_err "cannot unpack the fold helper foldtool-$fold_t_arch.gz in '$OF_START_DIR'"; return 1; }
    fi
    [ -x "$FOLD_TOOL" ] && return 0
    of_err "the fold helper '$FOLD_TOOL' is missing or not executable: the host library lacks it (its build needs Go on the machine that runs pulumi; see the warning of pulumi preview), or set OVERLAY_FLEET_FOLDTOOL to its path"
    return 1
}

# drop_folded MANIFEST UPPER
#
# Called on an unmounted upper just before it is mounted on the generation the manifest was
# folded into: removes from UPPER what the fold put into that generation and that has not changed
# since, so the instance sees it through the new lower; keeps whatever changed after the fold,
# conflict losers, skipped entries and private paths; gives a folded entry deleted since the fold
# a whiteout, so it does not come back from the new lower. The instance sees exactly what it saw
# before. The fold helper's `drop` (host/foldtool/drop.go, where the rules are spelled out) does
# it; returns non-zero with an `overlay-fleet:` message on failure.
drop_folded() {
    fold_tool || return 1
    "$FOLD_TOOL" drop "$@"
}
