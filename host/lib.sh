# overlay-fleet host library. Shared functions for host/<name>.sh.
#
# Delivery: a box runs `sh -c '<facts><lib.sh><lib-fold.sh><name>.sh' of-<name> 'arg1' ...`, so this
# file is plain function definitions (nothing is sourced). <facts> assigns the values the
# TypeScript owns (components/hostScripts.ts hostFacts: OF_PINNED_OPTIONS, OF_MAX_MOUNT_DATA,
# OF_GENERATION_SUFFIX, OF_MAX_GENERATION, OF_PLAN_DIR, OF_INSTANCE_LABEL, OF_BOX_LABEL); no host
# file writes one of those values itself.
# Strict POSIX sh (tested with dash); needs coreutils, util-linux and awk on the box (README: What
# a box needs). Every name defined here starts with `of_`/`OF_`.
#
# Conventions: errors print `overlay-fleet: <message>` on stderr; exit 1 for a failure, 2 for a
# bad invocation or a value that is refused before anything is touched.

set -eu

OF_PROG=${0##*/}
# Where the script was started: an installed host library is the working directory of its calls.
OF_START_DIR=$PWD
# A tab (the field separator of the records the box's commands read), without a fork; a newline.
OF_TAB='	'
OF_NL='
'

# of_lines TEXT, then of_line while it returns 0: each non-empty line of TEXT in OF_LINE, in
# order, without a fork (dash's `read` takes a byte per system call). One walk at a time, of a
# text of few lines (each step copies the rest): the records of a box's plan.
of_lines() {
    of_lines_rest=$1$OF_NL
}
of_line() {
    while [ -n "$of_lines_rest" ]; do
        OF_LINE=${of_lines_rest%%"$OF_NL"*}
        of_lines_rest=${of_lines_rest#*"$OF_NL"}
        [ -z "$OF_LINE" ] || return 0
    done
    return 1
}

# of_fields TEXT, then of_field while it returns 0: the tab-separated fields of TEXT one by one in
# OF_FIELD (empty for an empty field), what follows in of_fields_rest. One split at a time.
of_fields() {
    of_fields_rest=$1$OF_TAB
}
of_field() {
    [ -n "$of_fields_rest" ] || return 1
    OF_FIELD=${of_fields_rest%%"$OF_TAB"*}
    of_fields_rest=${of_fields_rest#*"$OF_TAB"}
}

of_err() { printf 'overlay-fleet: %s\n' "$*" >&2; }
of_warn() { printf 'overlay-fleet: warning: %s\n' "$*" >&2; }
of_die() { of_err "$@"; exit 1; }
of_usage() { of_err "$@"; exit 2; }
of_have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------------
# Values

# of_norm PATH: collapses repeated slashes and strips trailing slashes. Result in OF_NORM.
of_norm() {
    OF_NORM=$1
    while :; do
        case $OF_NORM in
            *//*) OF_NORM=${OF_NORM%%//*}/${OF_NORM#*//} ;;
            *) break ;;
        esac
    done
    while :; do
        case $OF_NORM in
            /) break ;;
            */) OF_NORM=${OF_NORM%/} ;;
            *) break ;;
        esac
    done
}

# of_check_path LABEL VALUE: an absolute path that overlay mount options, /proc/self/mountinfo
# and fstab can all carry verbatim (no whitespace, control characters, `,` `:` `\` `"`, and no
# `.`/`..` components). Exits 2 naming the value otherwise. Normalised path in OF_PATH.
of_check_path() {
    case $2 in
        '') of_usage "$1 must not be empty" ;;
        /*) ;;
        *) of_usage "$1 must be an absolute path, got '$2'" ;;
    esac
    case $2 in
        *[[:space:]]* | *[[:cntrl:]]*)
            of_usage "$1 '$2' contains whitespace or control characters; overlay options and fstab cannot carry them" ;;
        *,* | *:* | *\\* | *\"*)
            of_usage "$1 '$2' contains one of , : \\ \" which overlay mount options cannot carry" ;;
    esac
    case /$2/ in
        */./* | */../*) of_usage "$1 '$2' must not contain . or .. components" ;;
    esac
    of_norm "$2"
    OF_PATH=$OF_NORM
}

# of_check_relpath LABEL VALUE: a relative path below a directory (no leading /, no . or ..).
of_check_relpath() {
    case $2 in
        '') of_usage "$1 must not be empty" ;;
        /*) of_usage "$1 '$2' must be relative to the lower dir" ;;
        *[[:cntrl:]]*) of_usage "$1 '$2' contains control characters" ;;
    esac
    case /$2/ in
        */./* | */../*) of_usage "$1 '$2' must not contain . or .. components" ;;
    esac
    of_norm "$2"
    case $OF_NORM in
        /*) OF_NORM=${OF_NORM#/} ;;
    esac
    OF_PATH=$OF_NORM
}

# of_check_options LABEL VALUE MODE: a comma-separated option list that is safe to put in
# `mount -o` (MODE `mount`) or in the 4th field of fstab (MODE `fstab`). Only options on an
# allow-list pass: overlay options and per-mount flags; in `fstab` mode also the layers (lowerdir=,
# upperdir=, workdir=, their paths checked like of_check_path) and what only fstab readers use
# (nofail, noauto, x-systemd.*, ...). mount(8) action words (bind, move, remount, make-*, loop,
# ...), which would turn the overlay mount into something else, are refused like any other.
of_check_options() {
    case $2 in
        '') of_usage "$1 must not be empty" ;;
        *[[:space:]]* | *[[:cntrl:]]*) of_usage "$1 '$2' contains whitespace or control characters" ;;
        *\\* | *\"* | *\'*) of_usage "$1 '$2' contains a quote or backslash" ;;
    esac
    of_co_rest=$2,
    while [ -n "$of_co_rest" ]; do
        of_co_o=${of_co_rest%%,*}
        of_co_rest=${of_co_rest#*,}
        case $of_co_o in
            lowerdir=* | lowerdir+=* | upperdir=* | workdir=* | datadir+=*)
                [ "$3" = fstab ] ||
                    of_usage "$1 '$2' must not set ${of_co_o%%=*}: the layers are given as separate arguments"
                of_co_v=${of_co_o#*=}:
                while [ -n "$of_co_v" ]; do
                    of_check_path "${of_co_o%%=*} in $1" "${of_co_v%%:*}"
                    of_co_v=${of_co_v#*:}
                done
                ;;
            x-overlay-fleet=*)
                of_usage "$1 '$2' must not contain the x-overlay-fleet= marker; it is added by the script" ;;
            *)
                of_option_allowed "$3" "$of_co_o" ||
                    of_usage "$1 '$2' contain '$of_co_o', which is not an overlay mount option overlay-fleet accepts (overlay options such as xino=, uuid=, volatile, redirect_dir=; flags such as ro, noatime, nodev; in fstab also nofail, noauto, x-systemd.*)"
                ;;
        esac
    done
}

# of_option_allowed MODE OPTION: OPTION (not a layer option) is on the allow-list of MODE
# (`mount` or `fstab`, see of_check_options). An empty option (`a,,b`) is harmless.
of_option_allowed() {
    case $2 in
        '' | index=on | index=off | nfs_export=on | nfs_export=off | metacopy=on | metacopy=off | \
            redirect_dir=on | redirect_dir=follow | redirect_dir=nofollow | redirect_dir=off | \
            xino=on | xino=off | xino=auto | uuid=on | uuid=off | uuid=null | uuid=auto | \
            verity=on | verity=off | verity=require | volatile | userxattr | default_permissions)
            return 0 ;;
        ro | rw | noatime | atime | nodiratime | diratime | relatime | norelatime | strictatime | \
            nostrictatime | lazytime | nolazytime | nodev | dev | nosuid | suid | noexec | exec | \
            sync | async | dirsync | nosymfollow | symfollow | silent | loud)
            return 0 ;;
    esac
    [ "$1" = fstab ] || return 1
    case $2 in
        defaults | auto | noauto | nofail | nouser | _netdev | x-initrd.mount | x-systemd.?*) return 0 ;;
    esac
    return 1
}

# of_check_id VALUE: an instance id <box>/<name> as model/config.ts builds them: the box name of
# a-z 0-9 and `-` (1 to 32, no `-` at either end), the instance name of a-z 0-9 and `-` starting
# with a letter (1 to 63). So no `.` or `..` component, no further `/`, no upper case.
of_check_id() {
    of_ci_msg="instance id '$1' must be <box>/<name>: box of a-z 0-9 - (at most 32, no - at either end), name of a-z 0-9 - starting with a letter (at most 63)"
    case $1 in
        */*) ;;
        *) of_usage "$of_ci_msg" ;;
    esac
    of_ci_box=${1%%/*}
    of_ci_name=${1#*/}
    case $of_ci_box in
        '' | *[!a-z0-9-]* | -* | *-) of_usage "$of_ci_msg" ;;
    esac
    case $of_ci_name in
        '' | *[!a-z0-9-]* | [!a-z]*) of_usage "$of_ci_msg" ;;
    esac
    [ "${#of_ci_box}" -le 32 ] && [ "${#of_ci_name}" -le 63 ] || of_usage "$of_ci_msg"
}

# of_check_on_box ID BOX: a record's instance id names BOX (`BOX/<name>`); exits 2 otherwise.
of_check_on_box() {
    case $1 in
        "$2"/*) ;;
        *) of_usage "instance '$1' is not on box '$2'" ;;
    esac
}

# of_opt_get KEY OPTS: value of the last KEY=value in the comma-separated OPTS, in OF_OPT_VAL.
# Returns 1 when KEY is absent.
of_opt_get() {
    # Option values never hold a comma, so `,KEY=` starts an option; `##` finds the last one.
    case ,$2 in
        *,"$1"=*)
            of_og_v=,$2
            of_og_v=${of_og_v##*,"$1"=}
            OF_OPT_VAL=${of_og_v%%,*}
            return 0
            ;;
    esac
    return 1
}

# of_opt_has FLAG OPTS: whether the comma-separated OPTS contain the bare FLAG.
of_opt_has() {
    case ,$2, in
        *,"$1",*) return 0 ;;
    esac
    return 1
}

# of_devino PATH: "dev:inode" of PATH (following symlinks) in OF_DEVINO; returns 1 if unreadable.
of_devino() {
    OF_DEVINO=$(stat -L -c '%d:%i' -- "$1" 2>/dev/null) || { OF_DEVINO=; return 1; }
}

# of_same_path A B: same path as written (after normalisation) or the same directory on disk.
of_same_path() {
    of_norm "$1"; of_sp_a=$OF_NORM
    of_norm "$2"
    [ "$of_sp_a" = "$OF_NORM" ] && return 0
    of_devino "$1" || return 1
    of_sp_a=$OF_DEVINO
    of_devino "$2" || return 1
    [ "$of_sp_a" = "$OF_DEVINO" ]
}

# of_is_within PATH DIR: PATH is DIR or below it (string test on normalised paths).
of_is_within() {
    of_norm "$1"; of_iw_p=$OF_NORM
    of_norm "$2"
    [ "$of_iw_p" = "$OF_NORM" ] && return 0
    [ "$OF_NORM" = / ] && return 0
    case $of_iw_p in
        "$OF_NORM"/*) return 0 ;;
    esac
    return 1
}

# of_canon PATH: the canonical path (symlinks resolved) if it exists, else PATH normalised.
of_canon() {
    # A directory: of_dir_canon, which needs no fork when no symlink is on the way.
    case $1 in
        /*)
            if [ -d "$1" ]; then
                of_dir_canon "$1"
                OF_CANON=$OF_DCANON
                return 0
            fi
            ;;
    esac
    if [ -e "$1" ] && OF_CANON=$(readlink -f -- "$1" 2>/dev/null) && [ -n "$OF_CANON" ]; then
        return 0
    fi
    of_norm "$1"
    OF_CANON=$OF_NORM
}

# of_sync PATH CONSEQUENCE: flushes PATH (a file or a dir) to disk with sync(1) (coreutils 8.24 or
# later take a file); when that fails, dies naming the error and CONSEQUENCE.
of_sync() {
    of_sy_out=$(sync -- "$1" 2>&1) || {
        of_oneline "$of_sy_out"
        of_die "cannot sync '$1'${OF_ONELINE:+ ($OF_ONELINE)}; $2"
    }
}

# of_dir_empty DIR: DIR has no entries.
of_dir_empty() {
    # Globs, not ls: no fork. An unreadable DIR lists nothing, as with ls.
    for of_de_f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        if [ -e "$of_de_f" ] || [ -L "$of_de_f" ]; then
            return 1
        fi
    done
    return 0
}

# ---------------------------------------------------------------------------------------------
# /proc/self/mountinfo
#
# Line format: id parent major:minor root mountpoint mountopts [optional...] - fstype source superopts
# Paths are octal-escaped by the kernel (\040 for space, \054 for comma in overlay options, ...).
# Paths accepted by of_check_path contain none of the escaped characters, so a plain string
# comparison against an escaped entry can never give a false match.

# of_mi_each CALLBACK [ARGS...]: calls CALLBACK ARGS for each mount with OF_MI_ID, OF_MI_DEV
# (major:minor), OF_MI_MP, OF_MI_OPTS, OF_MI_FSTYPE, OF_MI_SOURCE and OF_MI_SUPER set. A callback returning non-zero stops the walk.
of_mi_each() {
    of_mi_walk "$@" </proc/self/mountinfo
}

# of_mi_select mp=MOUNTPOINT|fstype=TYPE CALLBACK [ARGS...]: of_mi_each over the mounts on
# MOUNTPOINT (as the kernel writes it) or of TYPE only. awk picks them: dash's `read` takes one
# byte per system call, and with dozens of overlays the whole table is tens of kilobytes.
of_mi_select() {
    of_ms_lines=$(OF_MS_FILTER=$1 awk '
        BEGIN { f = ENVIRON["OF_MS_FILTER"]; k = substr(f, 1, index(f, "=") - 1); v = substr(f, index(f, "=") + 1) }
        k == "mp" { if ($5 == v) print; next }
        { for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == v) print; next } }
    ' /proc/self/mountinfo) || of_die "cannot read /proc/self/mountinfo with awk"
    shift
    of_mi_walk "$@" <<EOF
$of_ms_lines
EOF
}

# of_mi_walk CALLBACK [ARGS...]: of_mi_each over the mountinfo lines on stdin.
of_mi_walk() {
    of_mi_cb=$1
    shift
    while IFS= read -r of_mi_line; do
        of_mi_parse "$of_mi_line" || continue
        "$of_mi_cb" "$@" || break
    done
}
# of_mi_parse LINE: the OF_MI_* of one mountinfo line (fields separated by one blank); returns 1
# for a line without the ` - ` that ends its optional fields.
of_mi_parse() {
    of_mi_rest=$1
    OF_MI_ID=${of_mi_rest%% *} of_mi_rest=${of_mi_rest#* }
    OF_MI_PARENT=${of_mi_rest%% *} of_mi_rest=${of_mi_rest#* }
    OF_MI_DEV=${of_mi_rest%% *} of_mi_rest=${of_mi_rest#* }
    OF_MI_ROOT=${of_mi_rest%% *} of_mi_rest=${of_mi_rest#* }
    OF_MI_MP=${of_mi_rest%% *} of_mi_rest=${of_mi_rest#* }
    OF_MI_OPTS=${of_mi_rest%% *} of_mi_rest=${of_mi_rest#* }
    case $of_mi_rest in
        '- '*) of_mi_tail=${of_mi_rest#- } ;;
        *' - '*) of_mi_tail=${of_mi_rest#* - } ;;
        *) return 1 ;;
    esac
    OF_MI_FSTYPE=${of_mi_tail%% *}
    of_mi_tail=${of_mi_tail#"$OF_MI_FSTYPE"}
    of_mi_tail=${of_mi_tail# }
    OF_MI_SOURCE=${of_mi_tail%% *}
    of_mi_tail=${of_mi_tail#"$OF_MI_SOURCE"}
    OF_MI_SUPER=${of_mi_tail# }
}

# of_mi_at MOUNTPOINT: the top-most mount on MOUNTPOINT (canonical path). OF_AT_FOUND=1|0 and
# OF_AT_FSTYPE, OF_AT_SOURCE, OF_AT_DEV, OF_AT_OPTS (per-mount), OF_AT_SUPER (superblock options).
of_mi_at() {
    of_at_reset
    of_at_target=$1
    of_mi_select "mp=$1" of_mi_at_cb
}
# of_at_reset: OF_AT_* say nothing is mounted.
of_at_reset() {
    OF_AT_FOUND=0 OF_AT_DEV= OF_AT_FSTYPE= OF_AT_SOURCE= OF_AT_OPTS= OF_AT_SUPER=
}
# of_mi_at_line MOUNTPOINT LINE: of_mi_at from LINE, the top-most mountinfo line on MOUNTPOINT read
# before (empty or `-`: nothing mounted there), without reading the mount table.
of_mi_at_line() {
    of_at_reset
    of_at_target=$1
    case $2 in '' | -) return 0 ;; esac
    ! of_mi_parse "$2" || of_mi_at_cb
}
of_mi_at_cb() {
    if [ "$OF_MI_MP" = "$of_at_target" ]; then
        OF_AT_FOUND=1
        OF_AT_FSTYPE=$OF_MI_FSTYPE
        OF_AT_DEV=$OF_MI_DEV
        OF_AT_SOURCE=$OF_MI_SOURCE
        OF_AT_OPTS=$OF_MI_OPTS
        OF_AT_SUPER=$OF_MI_SUPER
    fi
    return 0
}

# of_overlay_mounted_at PATH: whether the top-most mount on PATH is an overlay.
of_overlay_mounted_at() {
    of_canon "$1"
    of_mi_at "$OF_CANON"
    [ "$OF_AT_FOUND" = 1 ] && [ "$OF_AT_FSTYPE" = overlay ]
}

# of_layer_users PATH KINDS: mount points of overlays that use PATH as one of the layer KINDS
# (comma list of lower, upper, work), compared as written or by inode. The result
# (newline-separated "<mountpoint> (<kind>)") in OF_USERS; returns 0 if there is at least one.
of_layer_users() {
    of_layer_scan same "$@"
}

# of_layer_near PATH KINDS: like of_layer_users, but also counts layers PATH is inside of or
# contains, and for a lower its whole family of generations (of_lower_relation). Findings in
# OF_NEAR, each as of_near_finding, joined by "; "; returns 0 if there is one.
of_layer_near() {
    of_layer_scan near "$@"
}

# of_layers_near EXCEPT_MOUNTPOINT EXCEPT_DEV LABEL:PATH:KINDS...: of_layer_near of several paths
# (no `:` in them) against the instance overlays (those with an upper dir, not read-only views
# such as the fold's) other than the one on EXCEPT_MOUNTPOINT or of the superblock EXCEPT_DEV
# (major:minor) and the planned siblings in OF_SIBLINGS, in one walk of the mount table: the
# first finding in OF_NEAR_LABEL, OF_NEAR_PATH and OF_NEAR; returns 0 if there is one.
of_layers_near() {
    of_ln_except=$1
    of_ln_except_dev=$2
    shift 2
    OF_NEAR=
    of_relation_forget
    # A batch of mounts under the box lock (of_mount_snapshot) read the other overlays once.
    [ -n "${OF_SNAP-}" ] || of_other_overlays
    of_mi_walk of_layers_near_cb "$@" <<EOF
$OF_OTHER_OVERLAYS
EOF
    [ -n "$OF_NEAR" ]
}

# of_other_overlays: the mountinfo lines of the instance overlays (with an upper dir, not
# read-only views such as the fold's) in OF_OTHER_OVERLAYS, but for another instance of the box's
# plan mounted as planned (of-apply lists them in OF_SIBLINGS, `<merged> <upper> <work> <lower>`
# per line): the plan keeps their dirs apart, one dir per instance name. One awk over the mount table.
of_other_overlays() {
    OF_OTHER_OVERLAYS=$(OF_LN_SIBLINGS=${OF_SIBLINGS-} awk '
        BEGIN {
            n = split(ENVIRON["OF_LN_SIBLINGS"], s, "\n")
            for (i = 1; i <= n; i++) { split(s[i], f, " "); sibling[f[1] " " f[2] " " f[3]] = 1 }
        }
        {
            for (i = 7; i < NF; i++) if ($i == "-") break
            if ($(i + 1) != "overlay") next
            up = ""; wk = ""; c = split($(i + 3), o, ",")
            for (k = 1; k <= c; k++) {
                if (substr(o[k], 1, 9) == "upperdir=") up = substr(o[k], 10)
                else if (substr(o[k], 1, 8) == "workdir=") wk = substr(o[k], 9)
            }
            if (up != "" && !(($5 " " up " " wk) in sibling)) print
        }' /proc/self/mountinfo) || of_die "cannot read /proc/self/mountinfo with awk"
}
of_layers_near_cb() {
    [ "$OF_MI_MP" != "$of_ln_except" ] || return 0
    [ "$OF_MI_DEV" != "$of_ln_except_dev" ] || return 0
    of_opt_get upperdir "$OF_MI_SUPER" || return 0
    for of_ln_spec in "$@"; do
        of_ln_rest=${of_ln_spec#*:}
        of_layer_match near "${of_ln_rest%:*}" "${of_ln_rest##*:}" "$OF_MI_SUPER" || continue
        OF_NEAR_LABEL=${of_ln_spec%%:*}
        OF_NEAR_PATH=${of_ln_rest%:*}
        of_near_finding
        OF_NEAR=$OF_FINDING
        return 1
    done
}

# of_layer_scan same|near PATH KINDS: of_layer_users or of_layer_near, over the overlays only.
of_layer_scan() {
    OF_USERS=
    OF_NEAR=
    of_lu_mode=$1
    of_lu_path=$2
    of_lu_kinds=$3
    of_relation_forget
    of_mi_select fstype=overlay of_layer_scan_cb
    [ -n "$OF_USERS" ]
}
of_layer_scan_cb() {
    of_layer_match "$of_lu_mode" "$of_lu_path" "$of_lu_kinds" "$OF_MI_SUPER" || return 0
    OF_USERS="$OF_USERS${OF_USERS:+
}$OF_MI_MP ($OF_MATCH_KIND)"
    of_near_finding
    OF_NEAR="$OF_NEAR${OF_NEAR:+; }$OF_FINDING"
    return 0
}

# of_near_finding: the last of_layer_match of the mount in OF_MI_* as words, in OF_FINDING:
# "<relation> the <kind> of another overlay on '<mountpoint>' (<kind> '<layer>')".
of_near_finding() {
    OF_FINDING="$OF_REL the $OF_MATCH_KIND of another overlay on '$OF_MI_MP' ($OF_MATCH_KIND '$OF_MATCH_LAYER')"
}

# of_layer_match same|near PATH KINDS OPTS: whether PATH matches a layer of the KINDS named in
# the overlay option list OPTS (upperdir=, workdir=, lowerdir= as in mountinfo or fstab); `same`
# compares with of_same_path, `near` with of_relation (of_lower_relation for lowers). The first
# match in OF_MATCH_KIND (upperdir, workdir, lowerdir, or "lowerdir generation" for another
# generation of a lower), OF_MATCH_LAYER (the dir matched) and OF_REL.
of_layer_match() {
    OF_MATCH_KIND=
    for of_lm_kind in upper work lower; do
        of_opt_has "$of_lm_kind" "$3" || continue
        of_opt_get "${of_lm_kind}dir" "$4" || continue
        of_lm_rest=$OF_OPT_VAL:
        while [ -n "$of_lm_rest" ]; do
            of_lm_l=${of_lm_rest%%:*}
            of_lm_rest=${of_lm_rest#*:}
            [ -n "$of_lm_l" ] || continue
            case $1:$of_lm_kind in
                same:*) of_same_path "$2" "$of_lm_l" && OF_REL="is the same as" ;;
                near:lower) of_lower_relation "$2" "$of_lm_l" ;;
                *) of_relation "$2" "$of_lm_l" ;;
            esac || continue
            OF_MATCH_KIND=${of_lm_kind}dir
            OF_MATCH_LAYER=$of_lm_l
            if [ "$1:$of_lm_kind" = near:lower ] && [ "$OF_LOWER_HIT" != "$of_lm_l" ]; then
                OF_MATCH_KIND="lowerdir generation"
                OF_MATCH_LAYER=$OF_LOWER_HIT
            fi
            return 0
        done
    done
    return 1
}

# of_relation A B: how path A stands to path B, in OF_REL: "is the same as", "is inside" or
# "contains"; returns 1 when neither is within the other. Compared as written (normalised), by
# inode (`test -ef`: another name of the same dir) and with symlinks resolved. Costs one fork per
# existing B (a scan compares many layers B with one path A, whose canonical path is kept).
of_relation() {
    of_rel_pair "$1" "$2" && return 0
    if [ "$1" -ef "$2" ]; then
        OF_REL="is the same as"
        return 0
    fi
    # The canonical A of the last three A's (a scan compares up to three paths with every layer).
    if [ "$1" = "$of_rl_k1" ]; then
        of_rl_val=$of_rl_v1
    elif [ "$1" = "$of_rl_k2" ]; then
        of_rl_val=$of_rl_v2
    elif [ "$1" = "$of_rl_k3" ]; then
        of_rl_val=$of_rl_v3
    else
        of_dir_canon "$1"
        of_rl_val=$OF_DCANON
        of_rl_k3=$of_rl_k2 of_rl_v3=$of_rl_v2
        of_rl_k2=$of_rl_k1 of_rl_v2=$of_rl_v1
        of_rl_k1=$1 of_rl_v1=$of_rl_val
    fi
    of_dir_canon "$2"
    # Both already canonical (no symlink on either way): the string test above was the answer.
    [ "$of_rl_val" != "$of_rp_a" ] || [ "$OF_DCANON" != "$of_rp_b" ] || return 1
    of_rel_norm "$of_rl_val" "$OF_DCANON"
}
# of_relation_forget: drops of_relation's canonical paths (the directories may have changed).
of_relation_forget() {
    of_rl_k1= of_rl_k2= of_rl_k3=
    of_rl_v1= of_rl_v2= of_rl_v3=
}
of_relation_forget
of_rl_val=

# of_dir_canon PATH: PATH with the symlinks of its longest existing directory prefix resolved
# (cd -P in a subshell: no exec), the rest appended; in OF_DCANON.
of_dir_canon() {
    of_norm "$1"
    OF_DCANON=$OF_NORM
    # A relative path (docker's overlay2 writes its layers relative to its own directory) names
    # nothing from here: it is compared as written only.
    case $OF_NORM in
        /*) ;;
        *) return 0 ;;
    esac
    of_dc_dir=$OF_NORM
    of_dc_rest=
    while [ ! -d "$of_dc_dir" ] && [ -n "$of_dc_dir" ] && [ "$of_dc_dir" != / ]; do
        of_dc_rest=/${of_dc_dir##*/}$of_dc_rest
        of_dc_dir=${of_dc_dir%/*}
    done
    [ -d "$of_dc_dir" ] || return 0
    # No `.` or `..` component and no symlink on the way down (builtin tests only): the path is
    # already canonical. Scans compare one path with every layer of every overlay, so this keeps
    # them free of forks.
    case /$of_dc_dir/ in
        */./* | */../*) of_dc_p=$of_dc_dir ;;
        *)
            of_dc_p=$of_dc_dir
            while [ -n "$of_dc_p" ] && [ ! -L "$of_dc_p" ]; do
                of_dc_p=${of_dc_p%/*}
            done
            ;;
    esac
    [ -n "$of_dc_p" ] || return 0
    of_dc_canon=$(cd -P -- "${of_dc_dir:-/}" 2>/dev/null && pwd -P) || return 0
    [ -n "$of_dc_canon" ] || return 0
    OF_DCANON=${of_dc_canon%/}$of_dc_rest
    [ -n "$OF_DCANON" ] || OF_DCANON=/
}
of_rel_pair() {
    OF_REL=
    of_norm "$1"
    of_rp_a=$OF_NORM
    of_norm "$2"
    of_rp_b=$OF_NORM
    of_rel_norm "$of_rp_a" "$of_rp_b"
}
# of_rel_norm A B: of_rel_pair of two normalised paths (string tests only).
of_rel_norm() {
    if [ "$1" = "$2" ]; then
        OF_REL="is the same as"
        return 0
    fi
    case $2 in
        /) OF_REL="is inside"; return 0 ;;
    esac
    case $1 in
        /) OF_REL=contains; return 0 ;;
        "$2"/*) OF_REL="is inside"; return 0 ;;
    esac
    case $2 in
        "$1"/*) OF_REL=contains; return 0 ;;
    esac
    OF_REL=
    return 1
}

# of_lower_relation PATH LOWER: of_relation of PATH against a lower dir and its family of
# generations (host/lib-fold.sh): LOWER is generation 1, `L`, or generation N, `L.g<N>`; the family
# is L and every `L.g<N>`, `L.g<N>.partial` and `L.g<N>.work` beside it. The member PATH touches in
# OF_LOWER_HIT, the relation in OF_REL; returns 1 when PATH is apart from all of them.
of_lower_relation() {
    OF_LOWER_HIT=$2
    of_relation "$1" "$2" && return 0
    of_norm "$2"
    of_lr_base=$OF_NORM
    case ${of_lr_base##*/} in
        *"$OF_GENERATION_SUFFIX"[0-9]*)
            case ${of_lr_base##*"$OF_GENERATION_SUFFIX"} in
                *[!0-9]*) ;;
                *) of_lr_base=${of_lr_base%"$OF_GENERATION_SUFFIX"*} ;;
            esac
            ;;
    esac
    OF_LOWER_HIT=$of_lr_base
    of_relation "$1" "$of_lr_base" && return 0
    # A generation sibling: PATH is one or inside one (containing one means containing L too).
    of_dir_canon "$1"
    for of_lr_p in "$1" "$OF_DCANON"; do
        of_norm "$of_lr_p"
        case $OF_NORM in
            "$of_lr_base$OF_GENERATION_SUFFIX"[0-9]*) ;;
            *) continue ;;
        esac
        of_lr_rest=${OF_NORM#"$of_lr_base$OF_GENERATION_SUFFIX"}
        of_lr_gen=${of_lr_rest%%/*}
        of_lr_n=${of_lr_gen%.partial}
        of_lr_n=${of_lr_n%.work}
        case $of_lr_n in
            *[!0-9]*) continue ;;
        esac
        OF_LOWER_HIT=$of_lr_base$OF_GENERATION_SUFFIX$of_lr_gen
        OF_REL="is inside"
        [ "$OF_NORM" != "$OF_LOWER_HIT" ] || OF_REL="is the same as"
        return 0
    done
    return 1
}

# of_mounts_below DIR: mount points at or below DIR, newline-separated, in OF_BELOW.
of_mounts_below() {
    OF_BELOW=
    of_canon "$1"
    of_mb_dir=$OF_CANON
    of_mi_each of_mounts_below_cb
    [ -n "$OF_BELOW" ]
}
of_mounts_below_cb() {
    if of_is_within "$OF_MI_MP" "$of_mb_dir"; then
        OF_BELOW="$OF_BELOW${OF_BELOW:+
}$OF_MI_MP ($OF_MI_FSTYPE)"
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Overlay options as the kernel shows them
#
# The kernel prints in the superblock options only values that differ from its defaults (the
# overlay module parameters), so index=off,nfs_export=off,redirect_dir=off,metacopy=off usually
# print nothing at all; redirect_dir=off is stored as follow/nofollow; xino is not printed when
# all layers share one filesystem; uuid=on appears or not depending on the upper's history.

# of_ovl_param NAME: the overlay module parameter NAME (Y, N, ...) in OF_PARAM, empty if unknown.
of_ovl_param() {
    OF_PARAM=
    if [ -r "/sys/module/overlay/parameters/$1" ]; then
        IFS= read -r OF_PARAM <"/sys/module/overlay/parameters/$1" || OF_PARAM=
    fi
}

# of_ovl_norm KEY VALUE: the value the kernel stores for KEY=VALUE, in OF_NV.
of_ovl_norm() {
    OF_NV=$2
    case $1=$2 in
        redirect_dir=off)
            of_ovl_param redirect_always_follow
            case $OF_PARAM in
                N) OF_NV=nofollow ;;
                *) OF_NV=follow ;;
            esac
            ;;
        *=Y | *=y | *=1) case $1 in index | nfs_export | metacopy) OF_NV=on ;; esac ;;
        *=N | *=n | *=0) case $1 in index | nfs_export | metacopy) OF_NV=off ;; esac ;;
    esac
}

# of_ovl_default KEY: the kernel default value for KEY in OF_DEF; returns 1 if not known.
of_ovl_default() {
    OF_DEF=
    case $1 in
        index | nfs_export | metacopy)
            of_ovl_param "$1"
            case $OF_PARAM in
                Y) OF_DEF=on ;;
                N) OF_DEF=off ;;
                *) return 1 ;;
            esac
            ;;
        redirect_dir)
            of_ovl_param redirect_dir
            case $OF_PARAM in
                Y) OF_DEF=on ;;
                N)
                    of_ovl_param redirect_always_follow
                    case $OF_PARAM in
                        Y) OF_DEF=follow ;;
                        N) OF_DEF=nofollow ;;
                        *) return 1 ;;
                    esac
                    ;;
                *) return 1 ;;
            esac
            ;;
        *) return 1 ;;
    esac
}

# of_ovl_match PINNED SUPEROPTS MOUNTOPTS: whether a mounted overlay (superblock and per-mount
# options from mountinfo) has the PINNED options in effect, and nothing else that changes
# behaviour. Layer options are compared elsewhere. Differences are listed in OF_MISMATCH.
of_ovl_match() {
    OF_MISMATCH=
    of_om_pinned=$1
    of_om_super=$2
    of_om_mnt=$3
    of_om_rest=$of_om_pinned,
    while [ -n "$of_om_rest" ]; do
        of_om_o=${of_om_rest%%,*}
        of_om_rest=${of_om_rest#*,}
        case $of_om_o in
            '' | defaults | nofail | auto | noauto | user | nouser | users | owner | group | _netdev | \
                rw | async | dev | suid | exec | atime | diratime | nostrictatime | loud | silent | \
                comment=* | x-* | X-*)
                ;;
            ro | noatime | nodiratime | nodev | nosuid | noexec | relatime | strictatime | sync | \
                dirsync | lazytime | nosymfollow | mand)
                if ! of_opt_has "$of_om_o" "$of_om_mnt" && ! of_opt_has "$of_om_o" "$of_om_super"; then
                    of_om_add "$of_om_o not in effect"
                fi
                ;;
            *=*)
                of_om_k=${of_om_o%%=*}
                of_om_v=${of_om_o#*=}
                # The last of repeated options wins, as in the kernel.
                of_opt_get "$of_om_k" "$of_om_pinned"
                [ "$OF_OPT_VAL" = "$of_om_v" ] || continue
                of_ovl_norm "$of_om_k" "$of_om_v"
                of_om_want=$OF_NV
                if of_opt_get "$of_om_k" "$of_om_super"; then
                    of_ovl_norm "$of_om_k" "$OF_OPT_VAL"
                    [ "$OF_NV" = "$of_om_want" ] ||
                        of_om_add "$of_om_o pinned but mounted with $of_om_k=$OF_OPT_VAL"
                else
                    case $of_om_k=$of_om_want in
                        xino=*) ;; # not shown when all layers share one filesystem
                        uuid=auto) ;;
                        # An explicit uuid value is always shown; none shown means auto.
                        uuid=*) of_om_add "$of_om_o pinned but mounted with uuid=auto" ;;
                        *)
                            if of_ovl_default "$of_om_k" && [ "$OF_DEF" != "$of_om_want" ]; then
                                of_om_add "$of_om_o pinned but mounted with the default $of_om_k=$OF_DEF"
                            fi
                            ;;
                    esac
                fi
                ;;
            volatile)
                # Newer kernels show it as fsync=volatile.
                if ! of_opt_has volatile "$of_om_super" &&
                    ! { of_opt_get fsync "$of_om_super" && [ "$OF_OPT_VAL" = volatile ]; }; then
                    of_om_add "volatile pinned but not in effect"
                fi
                ;;
            *)
                of_opt_has "$of_om_o" "$of_om_super" || of_om_add "$of_om_o pinned but not in effect"
                ;;
        esac
    done
    # Options in effect that were not asked for.
    of_om_rest=$of_om_super,
    while [ -n "$of_om_rest" ]; do
        of_om_o=${of_om_rest%%,*}
        of_om_rest=${of_om_rest#*,}
        case $of_om_o in
            '' | rw | ro | lowerdir=* | upperdir=* | workdir=* | datadir=* | uuid=*) ;;
            fsync=volatile) of_opt_has volatile "$of_om_pinned" || of_om_add "mounted with $of_om_o which is not pinned" ;;
            *=*)
                of_opt_get "${of_om_o%%=*}" "$of_om_pinned" ||
                    of_om_add "mounted with $of_om_o which is not pinned"
                ;;
            *)
                of_opt_has "$of_om_o" "$of_om_pinned" || of_om_add "mounted with $of_om_o which is not pinned"
                ;;
        esac
    done
    if of_opt_has ro "$of_om_mnt" && ! of_opt_has ro "$of_om_pinned"; then
        of_om_add "mounted read-only"
    fi
    [ -z "$OF_MISMATCH" ]
}
of_om_add() {
    OF_MISMATCH="$OF_MISMATCH${OF_MISMATCH:+; }$1"
}

# of_ovl_layers_match LOWER UPPER WORK SUPEROPTS: the mounted layers are exactly these.
# The differences are in OF_MISMATCH.
of_ovl_layers_match() {
    OF_MISMATCH=
    for of_lm_k in lowerdir upperdir workdir; do
        case $of_lm_k in
            lowerdir) of_lm_want=$1 ;;
            upperdir) of_lm_want=$2 ;;
            workdir) of_lm_want=$3 ;;
        esac
        if of_opt_get "$of_lm_k" "$4"; then
            of_same_path "$OF_OPT_VAL" "$of_lm_want" ||
                of_om_add "$of_lm_k is $OF_OPT_VAL, want $of_lm_want"
        else
            of_om_add "no $of_lm_k"
        fi
    done
    [ -z "$OF_MISMATCH" ]
}

# ---------------------------------------------------------------------------------------------
# Mounting

# of_dmesg_mark: remembers when, so of_kernel_says can show what the kernel said since: the
# uptime, in seconds (reading the whole kernel log for a mark would cost every mount a few ms).
of_dmesg_mark() {
    OF_DMESG_MARK=0
    IFS=' ' read -r OF_DMESG_MARK of_dm_idle </proc/uptime 2>/dev/null || OF_DMESG_MARK=0
    : "${of_dm_idle-}"
}

# of_kernel_says: the overlay-related kernel messages since of_dmesg_mark (a second of slack for
# the clocks), in OF_KERNEL (one line, at most the last 5). Messages without a time stamp
# (printk.time off) cannot be placed: the last 5 overlay messages are shown.
of_kernel_says() {
    OF_KERNEL=$(dmesg 2>/dev/null | OF_KS_MARK=${OF_DMESG_MARK:-0} awk '
        BEGIN { mark = ENVIRON["OF_KS_MARK"] + 0; n = 0 }
        /overlay/ {
            line = $0
            if (match(line, /^\[ *[0-9]+\.[0-9]+\]/)) {
                if (substr(line, 2, RLENGTH - 2) + 0 < mark - 1) next
                line = substr(line, RLENGTH + 1)
                sub(/^ +/, "", line)
            }
            # A message repeated (a mount tried again): once.
            if (seen[line]++) next
            last[n++ % 5] = line
        }
        END {
            out = ""
            for (i = (n > 5 ? n - 5 : 0); i < n; i++) out = out (out == "" ? "" : " | ") last[i % 5]
            print out
        }') || OF_KERNEL=
}

# of_fstype PATH: the type of the filesystem holding PATH, in OF_FSTYPE ("unknown" if neither
# findmnt nor stat can tell).
of_fstype() {
    OF_FSTYPE=
    if of_have findmnt; then
        OF_FSTYPE=$(findmnt -n -o FSTYPE -T "$1" 2>/dev/null | tail -n 1) || OF_FSTYPE=
    fi
    if [ -z "$OF_FSTYPE" ]; then
        OF_FSTYPE=$(stat -f -c %T -- "$1" 2>/dev/null) || OF_FSTYPE=
    fi
    [ -n "$OF_FSTYPE" ] || OF_FSTYPE=unknown
}

# of_who_uses MOUNTPOINT: what fuser/lsof say about processes using the mount, in OF_WHO (one line).
of_who_uses() {
    OF_WHO=
    of_wu_raw=
    if of_have fuser; then
        of_wu_raw=$(fuser -vm "$1" 2>&1) || :
    elif of_have lsof; then
        of_wu_raw=$(lsof -w +f -- "$1" 2>/dev/null) || :
    fi
    # Keep the lines naming processes; drop fuser's header, its "kernel mount" line and its
    # complaints about /proc entries it may not read.
    of_wu_keep=
    of_wu_n=0
    while IFS= read -r of_wu_line; do
        case $of_wu_line in
            '' | *'Cannot stat'* | *'Permission denied'* | *'kernel mount'* | *'USER'*'PID'*'ACCESS'*) continue ;;
        esac
        of_wu_n=$((of_wu_n + 1))
        [ "$of_wu_n" -le 10 ] || continue
        of_wu_keep="$of_wu_keep$of_wu_line
"
    done <<EOF
$of_wu_raw
EOF
    [ "$of_wu_n" -le 10 ] || of_wu_keep="$of_wu_keep... ($of_wu_n entries)"
    of_oneline "$of_wu_keep"
    OF_WHO=$OF_ONELINE
}

# of_oneline TEXT: TEXT with newlines turned into " | " and runs of blanks squeezed, in OF_ONELINE.
of_oneline() {
    OF_ONELINE=
    while IFS= read -r of_ol_line; do
        of_ol_out=
        of_ol_prev=
        while [ -n "$of_ol_line" ]; do
            of_ol_c=${of_ol_line%"${of_ol_line#?}"}
            of_ol_line=${of_ol_line#?}
            case $of_ol_c in
                [[:blank:]])
                    [ "$of_ol_prev" = ' ' ] || of_ol_out="$of_ol_out "
                    of_ol_prev=' '
                    ;;
                *) of_ol_out="$of_ol_out$of_ol_c"; of_ol_prev=$of_ol_c ;;
            esac
        done
        of_ol_out=${of_ol_out# }
        of_ol_out=${of_ol_out% }
        [ -n "$of_ol_out" ] && OF_ONELINE="$OF_ONELINE${OF_ONELINE:+ | }$of_ol_out"
    done <<EOF
$1
EOF
    return 0
}

# of_umount MOUNTPOINT: unmounts; on failure OF_UMOUNT_ERR holds umount's message and the users.
of_umount() {
    OF_UMOUNT_ERR=
    if of_ou_out=$(umount -- "$1" 2>&1); then
        return 0
    fi
    of_oneline "$of_ou_out"
    OF_UMOUNT_ERR=$OF_ONELINE
    of_who_uses "$1"
    if [ -n "$OF_WHO" ]; then
        OF_UMOUNT_ERR="$OF_UMOUNT_ERR; in use by: $OF_WHO"
    fi
    return 1
}

# of_check_name LABEL VALUE: VALUE is a docker object name (container, network), or usage error.
of_check_name() {
    case $2 in
        '' | [!A-Za-z0-9]* | *[!A-Za-z0-9_.-]*) of_usage "$1 '$2' is not a valid docker name (A-Z a-z 0-9 _ . -, starting with a letter or digit)" ;;
    esac
}

# of_check_ipv4 LABEL VALUE: VALUE is a dotted IPv4 address, or usage error.
of_check_ipv4() {
    case $2 in
        *[!0-9.]* | *..* | .* | *.) of_usage "$1 '$2' is not an IPv4 address" ;;
    esac
    of_ip_rest=$2.
    of_ip_n=0
    while [ -n "$of_ip_rest" ]; do
        of_ip_o=${of_ip_rest%%.*}
        of_ip_rest=${of_ip_rest#*.}
        [ -n "$of_ip_o" ] && [ "${#of_ip_o}" -le 3 ] && [ "$of_ip_o" -le 255 ] || of_usage "$1 '$2' is not an IPv4 address"
        of_ip_n=$((of_ip_n + 1))
    done
    [ "$of_ip_n" -eq 4 ] || of_usage "$1 '$2' is not an IPv4 address"
}

# of_docker ARGS...: the box's docker CLI, given up after OF_DOCKER_TIMEOUT seconds (default 120;
# `load` and `pull`, which move a whole image: OF_DOCKER_PULL_TIMEOUT, default 1800), so an engine
# that stops answering never holds the box's locks for ever. A call given up returns 124 and says
# so on stderr. `--foreground` keeps the CLI in our process group: a killed command kills it too.
of_docker() {
    case $1 in load | pull) of_dk_t=${OF_DOCKER_PULL_TIMEOUT:-1800} ;; *) of_dk_t=${OF_DOCKER_TIMEOUT:-120} ;; esac
    of_dk_rc=0
    timeout --foreground -k 10 "$of_dk_t" docker "$@" || of_dk_rc=$?
    # (137: the CLI survived SIGTERM and was killed 10 s later: given up as well)
    [ "$of_dk_rc" -ne 137 ] || of_dk_rc=124
    [ "$of_dk_rc" -ne 124 ] || of_docker_gave_up "$@"
    return "$of_dk_rc"
}

# of_docker_try ARGS...: of_docker with the CLI's own errors discarded (the caller reads a failure
# as an answer: no such container, no such image), except a call given up, which is reported and
# returns 124: an engine that does not answer is never taken for one that says "absent".
of_docker_try() {
    of_dt_rc=0
    of_docker "$@" 2>/dev/null || of_dt_rc=$?
    [ "$of_dt_rc" -ne 124 ] || of_docker_gave_up "$@"
    return "$of_dt_rc"
}

of_docker_gave_up() {
    of_err "docker $1${2:+ $2}: no answer from the engine within ${of_dk_t}s (OF_DOCKER_TIMEOUT), given up"
}

# of_docker_ready: a docker CLI exists and its engine answers `docker info` within 30 s (taken as
# true when the caller, of-containers, already asked once for the whole box: OF_DOCKER_READY set).
of_docker_ready() {
    [ -z "${OF_DOCKER_READY-}" ] || return 0
    of_have docker || return 1
    timeout --foreground -k 5 30 docker info >/dev/null 2>&1
}

# of_docker_configured: the box has a docker engine, answering or not: DOCKER_HOST is set, or
# the engine's socket is there (a daemon that stopped cleanly removes it; one that hangs or
# crashed leaves it, and the containers it started may still run).
of_docker_configured() {
    [ -n "${DOCKER_HOST-}" ] || [ -e /run/docker.sock ] || [ -e /var/run/docker.sock ]
}

# of_container_running NAME: whether the engine says NAME runs (an engine given up on: the
# caller's script ends, as nothing can be decided).
of_container_running() {
    of_cr_out=$(of_docker_try inspect --format '{{.State.Running}}' "$1") || {
        [ "$?" -ne 124 ] || exit 1
        return 1
    }
    [ "$of_cr_out" = true ]
}

# ---------------------------------------------------------------------------------------------
# Locking

# of_lock FILE: takes an exclusive flock(1) lock on FILE, on fd 9, held until the script and
# everything it started have exited (so a killed script never leaves a stale lock behind). Gives
# up after OF_LOCK_WAIT seconds (default: the second argument, else 300). flock is required (util-linux is anyway): there is
# no fallback, because a lock that survives its owner cannot be recovered safely.
of_lock() {
    of_have flock ||
        of_die "flock(1) (util-linux) is required to lock '$1' but was not found in PATH ($PATH); install util-linux"
    of_lk_wait=${OF_LOCK_WAIT:-${2:-300}}
    # Root's alone (0600, also an older one made 0644): a flock needs only read access, so a file
    # others can read is a lock others can hold, stalling every edit (the fstab's lies in /etc).
    of_lk_umask=$(umask)
    umask 077
    exec 9>>"$1" || of_die "cannot open lock file '$1'"
    umask "$of_lk_umask"
    chmod go-rwx -- "$1" || of_die "cannot make lock file '$1' private (chmod go-rwx)"
    flock -w "$of_lk_wait" 9 || of_die "timed out after ${of_lk_wait}s waiting for lock '$1'"
}

# of_box_lock: the box-wide lock around checks that look at other instances and the change they
# guard (mount, purge), so two instances changed at the same moment see each other. Remounts
# (a generation switch) run under it one after the other: waits up to 1800 s.
OF_BOX_LOCK=/run/overlay-fleet/box.lock
of_box_lock() {
    # Held already by this shell (of-apply holds it around all of a box's take-downs and mounts;
    # its subshells share its lock).
    [ -z "${OF_BOX_LOCK_HELD-}" ] || return 0
    of_lock_dir
    of_lock "$OF_BOX_LOCK" 1800
}

# of_box_lock_shared: the box lock taken shared (fd 7, held until the script exits): any number of
# container starts at once, but none while a remount holds it (of_box_lock), so a container is
# never started on the bare merged dir between an unmount and the mount that follows.
of_box_lock_shared() {
    [ -z "${OF_BOX_LOCK_HELD-}" ] || return 0
    of_lock_dir
    of_have flock || of_die "flock(1) (util-linux) is required to lock '$OF_BOX_LOCK' but was not found in PATH ($PATH); install util-linux"
    of_bs_wait=${OF_LOCK_WAIT:-1800}
    exec 7>>"$OF_BOX_LOCK" || of_die "cannot open lock file '$OF_BOX_LOCK'"
    flock -s -w "$of_bs_wait" 7 || of_die "timed out after ${of_bs_wait}s waiting for lock '$OF_BOX_LOCK' (instances of this box are being mounted)"
}

# of_claim_read: the machine's claim (host/claim.sh), `<stack> <box>`, in OF_OWNER ("" when there is
# none), and its parts in OF_OWNER_STACK and OF_OWNER_BOX.
# A claim that is not a regular file of one such line (a directory, a symlink, an empty or
# garbled file) fails: it must never read as "nobody's".
of_claim_read() {
    OF_OWNER=
    if [ -e "$OF_CLAIM_FILE" ] || [ -L "$OF_CLAIM_FILE" ]; then
        [ -f "$OF_CLAIM_FILE" ] && [ ! -L "$OF_CLAIM_FILE" ] ||
            of_die "the claim '$OF_CLAIM_FILE' is not a regular file: the machine's owner cannot be told (remove it by hand if no stack owns this machine)"
        { IFS= read -r OF_OWNER || :; } <"$OF_CLAIM_FILE" || of_die "cannot read the claim '$OF_CLAIM_FILE'"
        of_oc_bad=
        case $OF_OWNER in *' '*) ;; *) of_oc_bad=1 ;; esac
        case ${OF_OWNER%% *} in '' | *[!A-Za-z0-9_./-]*) of_oc_bad=1 ;; esac
        case ${OF_OWNER#* } in '' | *[!a-z0-9-]* | -* | *-) of_oc_bad=1 ;; esac
        [ -z "$of_oc_bad" ] ||
            of_die "the claim '$OF_CLAIM_FILE' is empty or garbled ('$OF_OWNER'), not '<stack> <box>': the machine's owner cannot be told (remove it by hand if no stack owns this machine)"
    fi
    OF_OWNER_STACK=${OF_OWNER%% *}
    OF_OWNER_BOX=${OF_OWNER#* }
}

# of_lock_dir: the directory of the box's lock files (OF_BOX_LOCK's, the box agent's too), made
# when missing: root's alone (0700), so no other user can hold, stall or replace a lock of ours by
# a symlink; one that is a symlink, not ours, or writable by others is refused, naming it.
of_lock_dir() {
    OF_LOCK_DIR=${OF_BOX_LOCK%/*}
    if [ ! -e "$OF_LOCK_DIR" ] && [ ! -L "$OF_LOCK_DIR" ]; then
        (umask 077 && mkdir -- "$OF_LOCK_DIR") 2>/dev/null || [ -d "$OF_LOCK_DIR" ] ||
            of_die "cannot create '$OF_LOCK_DIR' for the locks of this box"
    fi
    of_ld_perm=$(stat -c '%u %A' -- "$OF_LOCK_DIR" 2>/dev/null) || of_ld_perm=
    case $of_ld_perm in
        "$(id -u) "d????[!w]??[!w]?) [ ! -L "$OF_LOCK_DIR" ] && return 0 ;;
    esac
    of_die "the lock directory '$OF_LOCK_DIR' must be a directory of $(id -un) alone, not a symlink nor writable by others (it is: ${of_ld_perm:-missing}); remove it"
}

# of_down_slot N: waits for one of N "instance down" slots of this box (flock on
# <lock dir>/overlay-fleet-down.<k>, fd 8, held until the script exits), so at most N instances of
# the box are down at once (maxDownPerBox) whatever order the deployment runs them in. Gives up
# after OF_LOCK_WAIT seconds (default 1800).
of_down_slot() {
    of_ds_wait=${OF_LOCK_WAIT:-1800}
    of_lock_dir
    of_ds_dir=$OF_LOCK_DIR
    of_have flock || of_die "flock(1) (util-linux) is required but was not found in PATH ($PATH); install util-linux"
    of_ds_tries=0
    while :; do
        of_ds_k=1
        while [ "$of_ds_k" -le "$1" ]; do
            exec 8>>"$of_ds_dir/overlay-fleet-down.$of_ds_k" || of_die "cannot open lock file '$of_ds_dir/overlay-fleet-down.$of_ds_k'"
            if flock -n 8; then
                return 0
            fi
            exec 8>&-
            of_ds_k=$((of_ds_k + 1))
        done
        of_ds_tries=$((of_ds_tries + 1))
        [ "$of_ds_tries" -le $((of_ds_wait * 5)) ] ||
            of_die "timed out after ${of_ds_wait}s waiting until fewer than $1 instances of this box are down"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# fstab

# of_fstab_fields LINE: the first four blank-separated fields of LINE in OF_F1..OF_F4.
of_fstab_fields() {
    OF_F1= OF_F2= OF_F3= OF_F4=
    IFS=' 	' read -r OF_F1 OF_F2 OF_F3 OF_F4 of_ff_rest <<EOF || :
$1
EOF
    : "${of_ff_rest-}"
}

# of_fstab_is_entry LINE: the line is an fstab entry (not blank, not a comment); fields set.
of_fstab_is_entry() {
    of_fe_l=$1
    while :; do
        case $of_fe_l in
            [[:blank:]]*) of_fe_l=${of_fe_l#?} ;;
            *) break ;;
        esac
    done
    case $of_fe_l in
        '' | '#'*) return 1 ;;
    esac
    of_fstab_fields "$of_fe_l"
}

# of_fstab_managed_id LINE ID: the line is the managed entry of instance ID (marker
# x-overlay-fleet=ID as one of the options).
of_fstab_managed_id() {
    case $1 in
        *x-overlay-fleet=*) ;;
        *) return 1 ;;
    esac
    of_fstab_is_entry "$1" || return 1
    case ,$OF_F4, in
        *",x-overlay-fleet=$2,"*) return 0 ;;
    esac
    return 1
}

# of_fstab_each FSTAB CALLBACK [ARGS...]: calls CALLBACK ARGS for each managed entry of FSTAB (an
# entry with the option x-overlay-fleet=<id>) with OF_FE_ID, OF_FE_TARGET (the mount point,
# normalised), OF_FE_OPTS and OF_FE_NO (line number) set. A callback returning non-zero stops the
# walk. A missing FSTAB has no entries.
of_fstab_each() {
    [ -f "$1" ] || return 0
    of_fw_file=$1
    of_fw_cb=$2
    shift 2
    of_fw_no=0
    while :; do
        if IFS= read -r of_fw_line; then
            of_fw_nl=1
        else
            [ -n "$of_fw_line" ] || break
            of_fw_nl=0
        fi
        of_fw_no=$((of_fw_no + 1))
        case $of_fw_line in
            *x-overlay-fleet=*)
                if of_fstab_is_entry "$of_fw_line" && of_opt_get x-overlay-fleet "$OF_F4"; then
                    OF_FE_ID=$OF_OPT_VAL
                    OF_FE_OPTS=$OF_F4
                    OF_FE_NO=$of_fw_no
                    of_norm "$OF_F2"
                    OF_FE_TARGET=$OF_NORM
                    "$of_fw_cb" "$@" || break
                fi
                ;;
        esac
        [ "$of_fw_nl" = 1 ] || break
    done <"$of_fw_file"
}

# of_fstab_has FSTAB ID: FSTAB holds a managed entry for ID.
of_fstab_has() {
    of_fh_found=1
    of_fstab_each "$1" of_fstab_has_cb "$2"
    return "$of_fh_found"
}
of_fstab_has_cb() {
    [ "$OF_FE_ID" != "$1" ] || { of_fh_found=0; return 1; }
}

# of_applied_keeps KIND VALUE: a call of the per-instance commands of earlier overlay-fleet
# versions (their delete commands, still in the state of a stack deployed with one) must not take
# down an instance, or its container, that a box's plan now holds (of-apply records them in
# $OF_PLAN_DIR/<box>: `<id> <container|-> <merged>` per line). True, with a note on stdout, when
# VALUE (KIND id, container: an id whose instance has a container, or merged) is planned and the
# caller is not of-apply or of-containers (OF_APPLY).
of_applied_keeps() {
    [ -z "${OF_APPLY-}" ] || return 1
    [ -d "$OF_PLAN_DIR" ] || return 1
    for of_ak_f in "$OF_PLAN_DIR"/*; do
        [ -f "$of_ak_f" ] || continue
        case $of_ak_f in *.new) continue ;; esac
        while IFS=' ' read -r of_ak_id of_ak_container of_ak_merged; do
            # A record of overlay-fleet before containers were recorded, `<id> <merged>`: a container
            # of a planned instance is kept.
            [ -n "$of_ak_merged" ] || { of_ak_merged=$of_ak_container; of_ak_container=unknown; }
            case $1 in
                id) [ "$of_ak_id" = "$2" ] || continue ;;
                container) [ "$of_ak_id" = "$2" ] && [ "$of_ak_container" != - ] || continue ;;
                *) [ "$of_ak_merged" = "$2" ] || continue ;;
            esac
            printf 'ok %s: kept, the plan of box %s holds %s\n' "$OF_PROG" "${of_ak_f##*/}" "$of_ak_id"
            return 0
        done <"$of_ak_f"
    done
    return 1
}

# of_du_bytes PATH: disk usage of PATH (one filesystem) in bytes, in OF_BYTES; 0 if missing.
of_du_bytes() {
    OF_BYTES=0
    if [ -e "$1" ]; then
        of_du_out=$(du -skx -- "$1" 2>/dev/null | tail -n 1) || of_du_out=
        of_du_k=${of_du_out%%[[:space:]]*}
        case $of_du_k in
            '' | *[!0-9]*) ;;
            *) OF_BYTES=$((of_du_k * 1024)) ;;
        esac
    fi
}
