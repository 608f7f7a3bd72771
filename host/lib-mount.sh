# overlay-fleet host library: the mount and the unmount of one instance, as functions, for
# host/mount.sh, host/unmount.sh and host/apply.sh (which calls them in a subshell per instance:
# no new shell to start and parse, and the box lock taken once for all of them). See
# host/mount.sh and host/unmount.sh for what they do.

# of_mount_snapshot: the mount table read for a batch of mounts under the box lock (of-apply),
# instead of twice per instance: OF_SNAP_TOPS, per line of OF_SIBLINGS in order, `<merged> <the
# top-most mountinfo line on it>`, or `<merged> -` when nothing is mounted there (of-apply gives
# each instance its line as OF_SNAP_TOP, for of_mount_at); OF_OTHER_OVERLAYS, the instance
# overlays outside the plan (of_other_overlays), which of_layers_near then compares with;
# OF_SNAP_FOREIGN, 1 if there are any, else 0; OF_SNAP_NEARS, which of them each instance is to be
# compared with (of_snap_near; of-apply gives each its line as OF_SNAP_NEAR); OF_SNAP, 1. Under
# the box lock only the batch mounts, each instance on its own planned merged dir, so what the
# snapshot says of an instance's merged dir and of the overlays outside the plan is taken to hold
# until its mount: should something else mount or unmount there meanwhile (outside the lock), its
# instance goes by the snapshot, as it would by a read of the table just before that change. With
# no foreign overlay, of_layers_near has nothing to compare with.
of_mount_snapshot() {
    OF_SNAP_TOPS=$(OF_MS_SIBLINGS=${OF_SIBLINGS-} awk '
        BEGIN {
            n = split(ENVIRON["OF_MS_SIBLINGS"], s, "\n")
            for (i = 1; i <= n; i++) { split(s[i], f, " "); merged[i] = f[1]; planned[f[1]] = 1 }
        }
        $5 in planned { top[$5] = $0 }
        END { for (i = 1; i <= n; i++) print merged[i] " " (merged[i] in top ? top[merged[i]] : "-") }
    ' /proc/self/mountinfo) || of_die "cannot read /proc/self/mountinfo with awk"
    OF_SNAP_TOPS=$OF_SNAP_TOPS$OF_NL
    OF_SNAP=1
    of_other_overlays
    OF_SNAP_FOREIGN=0
    OF_SNAP_NEARS=
    [ -z "$OF_OTHER_OVERLAYS" ] || { OF_SNAP_FOREIGN=1 && of_snap_near; }
}

# of_snap_near: for of_mount_snapshot, the overlays outside the plan (OF_OTHER_OVERLAYS, numbered
# from 1) that each planned instance (a line of OF_SIBLINGS) must be compared with, in
# OF_SNAP_NEARS: a line per instance, in order, the numbers joined by commas, or `-` for none
# (of-apply gives each instance its line as OF_SNAP_NEAR, for of_snap_others). A test of the
# layers' paths as strings (as written and canonical) and by inode that leaves out no overlay
# of_layers_near would find (it keeps more: a path that merely starts with the string of a lower
# or of a generation family's base), so that the comparisons in sh, about a millisecond per instance and overlay, are
# made for the few pairs that may touch, not for every instance beside every container's overlay.
of_snap_near() {
    # Their layers, `<number> <kind> <path>`: u upper, w work, l lower.
    of_sn_layers=$(printf '%s\n' "$OF_OTHER_OVERLAYS" | awk '{
        for (i = 7; i < NF; i++) if ($i == "-") break
        c = split($(i + 3), o, ",")
        for (k = 1; k <= c; k++) {
            if (substr(o[k], 1, 9) == "upperdir=") print NR " u " substr(o[k], 10)
            else if (substr(o[k], 1, 8) == "workdir=") print NR " w " substr(o[k], 9)
            else if (substr(o[k], 1, 9) == "lowerdir=") {
                m = split(substr(o[k], 10), l, ":")
                for (j = 1; j <= m; j++) if (l[j] != "") print NR " l " l[j]
            }
        }
    }') || of_die "cannot list the layers of the overlays outside the plan with awk"
    # Every path normalised and canonical (of_norm, of_dir_canon: as of_relation compares them):
    # `F <number> <kind> <path> <normalised> <canonical>` for theirs, plus kind b for the base of
    # a lower that may be a generation (of_lower_relation's family), cut at its last suffix; `I
    # <instance> <kind> <path> <normalised> <canonical>` for the instances' (kinds u, w, l). The
    # paths, for stat, in of_sn_paths.
    of_sn_in=
    of_sn_paths=
    of_lines "$of_sn_layers"
    while of_line; do
        of_sn_line=$OF_LINE
        of_sn_path=${of_sn_line#* * }
        of_sn_entry "F ${of_sn_line% "$of_sn_path"}" "$of_sn_path"
        case $of_sn_line in
            *" l "*) ;;
            *) continue ;;
        esac
        of_norm "$of_sn_path"
        case ${OF_NORM##*/} in
            *"$OF_GENERATION_SUFFIX"*) of_sn_entry "F ${of_sn_line%% *} b" "${OF_NORM%"$OF_GENERATION_SUFFIX"*}" ;;
        esac
    done
    of_sn_i=0
    of_lines "${OF_SIBLINGS-}"
    while of_line; do
        of_sn_line=$OF_LINE
        of_sn_i=$((of_sn_i + 1))
        # `<merged> <upper> <work> <lower>`: no blank in a path of the plan (of_check_path).
        of_sn_line=${of_sn_line#* }
        for of_sn_kind in u w l; do
            of_sn_entry "I $of_sn_i $of_sn_kind" "${of_sn_line%% *}"
            of_sn_line=${of_sn_line#* }
        done
    done
    # The inodes of those that exist (`test -ef` in of_relation), `D <path> <dev>:<inode>`.
    set --
    of_lines "$of_sn_paths"
    while of_line; do
        set -- "$@" "$OF_LINE"
    done
    of_sn_stat=$(stat -L -c 'D %n %d:%i' -- "$@" 2>/dev/null) || :
    OF_SNAP_NEARS=$(printf '%s%s\n' "$of_sn_in" "$of_sn_stat" | awk -v instances="$of_sn_i" '
        $1 == "F" { nf++; fn[nf] = $2; fk[nf] = $3; fp[nf] = $4; f[nf, 1] = $5; f[nf, 2] = $6; next }
        $1 == "I" { ni++; ii[ni] = $2; ik[ni] = $3; ip[ni] = $4; g[ni, 1] = $5; g[ni, 2] = $6; next }
        $1 == "D" { dev[$2] = $3; next }
        END {
            for (x = 1; x <= ni; x++) {
                for (y = 1; y <= nf; y++) {
                    # An instance lower is compared with their upper and work dirs only.
                    if (ik[x] == "l" && (fk[y] == "l" || fk[y] == "b")) continue
                    if ((ii[x], fn[y]) in hit) continue
                    # The same inode, one path inside the other (as strings), or, for a lower
                    # (its family of generations: L.g<N>... beside it) or a base, starting with it.
                    h = ip[x] in dev && fp[y] in dev && dev[ip[x]] == dev[fp[y]]
                    for (a = 1; a <= 2 && !h; a++) {
                        for (b = 1; b <= 2 && !h; b++) {
                            A = g[x, a]; B = f[y, b]
                            h = A == B || A == "/" || B == "/" || index(A, B "/") == 1 || index(B, A "/") == 1 ||
                                ((fk[y] == "l" || fk[y] == "b") && index(A, B) == 1)
                        }
                    }
                    if (!h) continue
                    hit[ii[x], fn[y]] = 1
                    near[ii[x]] = (ii[x] in near ? near[ii[x]] "," : "") fn[y]
                }
            }
            for (i = 1; i <= instances; i++) print (i in near ? near[i] : "-")
        }') || of_die "cannot compare the instances with the overlays outside the plan with awk"
    OF_SNAP_NEARS=$OF_SNAP_NEARS$OF_NL
}
# of_sn_entry PREFIX PATH: of_snap_near's line `PREFIX PATH <normalised> <canonical>`, added to
# of_sn_in, and PATH to of_sn_paths (a line each).
of_sn_entry() {
    of_norm "$2"
    of_sn_norm=$OF_NORM
    of_dir_canon "$2"
    of_sn_in="$of_sn_in$1 $2 $of_sn_norm $OF_DCANON$OF_NL"
    of_sn_paths="$of_sn_paths$2$OF_NL"
}
# of_snap_others: whether of_mount_main has overlays outside the plan to compare its instance with
# (of_layers_near): alone, all of them; in a batch, those the snapshot's of_snap_near kept for it
# (OF_SNAP_NEAR), in OF_OTHER_OVERLAYS.
of_snap_others() {
    [ "${OF_SNAP_FOREIGN-}" != 0 ] || return 1
    case ${OF_SNAP_NEAR-} in
        '') return 0 ;;
        -) return 1 ;;
    esac
    OF_OTHER_OVERLAYS=$(printf '%s\n' "$OF_OTHER_OVERLAYS" | awk -v keep=",$OF_SNAP_NEAR," 'index(keep, "," NR ",")') ||
        of_die "cannot pick the overlays outside the plan with awk"
}

# of_mount_at MOUNTPOINT: of_mi_at; for the planned merged dir of the instance of a batch, from its
# line of the batch's snapshot (OF_SNAP_TOP), without reading the mount table again.
of_mount_at() {
    if [ -z "${OF_SNAP_TOP-}" ] || [ "${OF_SNAP_TOP%% *}" != "$1" ]; then
        of_mi_at "$1"
    else
        of_mi_at_line "$1" "${OF_SNAP_TOP#* }"
    fi
}

# of_alone: for mount.sh and unmount.sh run alone, not in a batch of of-apply: none of the
# batch's variables counts (its lock, its deferred check and mounts, its snapshot), whatever the
# environment holds.
of_alone() {
    OF_BOX_LOCK_HELD= OF_MOUNT_VERIFY= OF_MOUNT_BATCH= OF_SNAP= OF_SNAP_TOP= OF_SNAP_FOREIGN= OF_SNAP_NEAR= OF_DROP_LINE=
}

# of_mount_main <lower> <upper> <work> <merged> <pinnedOptions> <container|-> <foldManifest|->:
# the whole of of-mount; it ends with `exit` (of_die, or 0 when done): call it in a subshell to go
# on after it.
of_mount_main() {
    [ "$#" -eq 7 ] ||
        of_usage "usage: of-mount <lower> <upper> <work> <merged> <pinnedOptions> <container|-> <foldManifest|->"

    of_check_path "lower dir" "$1"; lower=$OF_PATH
    of_check_path "upper dir" "$2"; upper=$OF_PATH
    of_check_path "work dir" "$3"; work=$OF_PATH
    of_check_path "merged dir" "$4"; merged=$OF_PATH
    of_check_options "pinned options" "$5" mount; pinned=$5
    container=$6
    case $container in
        -) container= ;;
        [A-Za-z0-9]*) case $container in *[!A-Za-z0-9_.-]*) of_usage "container name '$container' is not a valid docker container name" ;; esac ;;
        *) of_usage "container name '$container' is not a valid docker container name" ;;
    esac
    manifest=$7
    if [ "$manifest" = - ]; then
        manifest=
    else
        of_check_path "fold manifest" "$manifest"; manifest=$OF_PATH
    fi
    # A drop is pending while the fold left a manifest for this upper and no done-marker beside it
    # (host/foldtool/drop.go writes <manifest>.dropped once all of it is on disk): the upper is
    # then right for neither generation until the drop completes, so it is completed before the
    # instance is mounted on the new lower, whatever is mounted now (an apply killed or refused
    # during a switch, a reboot since).
    pending=
    [ -z "$manifest" ] || ! of_drop_pending "$manifest" || pending=1

    # Layout checks the kernel would only report as "wrong fs type, bad option".
    for a in upper:"$upper" work:"$work" merged:"$merged"; do
        for b in lower:"$lower" upper:"$upper" work:"$work" merged:"$merged"; do
            [ "${a%%:*}" != "${b%%:*}" ] || continue
            if of_is_within "${a#*:}" "${b#*:}"; then
                of_usage "${a%%:*} dir '${a#*:}' must not be the same as or inside the ${b%%:*} dir '${b#*:}'"
            fi
        done
    done

    opts="lowerdir=$lower,upperdir=$upper,workdir=$work,$pinned"
    if [ "${#opts}" -gt "$OF_MAX_MOUNT_DATA" ]; then
        of_usage "mount options for '$merged' are ${#opts} bytes; the kernel takes at most $OF_MAX_MOUNT_DATA (shorten the paths): $opts"
    fi
    [ -d "$lower" ] ||
        of_die "lower dir '$lower' does not exist or is not a directory (is the disk mounted? run of-lower first)"

    # From here to the mount, under the box lock: an instance mounted at the same moment must see ours.
    of_box_lock

    of_canon "$merged"
    mcanon=$OF_CANON
    of_mount_at "$mcanon"
    cur_found=$OF_AT_FOUND
    cur_dev=
    [ "$OF_AT_FSTYPE" != overlay ] || cur_dev=$OF_AT_DEV

    # Two overlays must never share an upper or work dir, nor nest one in the other; with index=off
    # the kernel only warns. An upper or work dir must not be (in) another instance's lower, nor the
    # lower (in) another's upper or work: either way one instance writes into what another reads as
    # unchanging. (A bind of the overlay now on <merged> is the same superblock, not another overlay;
    # the fold's read-only views of an upper are no instances.) Checked before anything is created.
    if of_snap_others &&
        of_layers_near "$mcanon" "$cur_dev" "upper:$upper:upper,work,lower" "work:$work:upper,work,lower" "lower:$lower:upper,work"; then
        of_die "$OF_NEAR_LABEL dir '$OF_NEAR_PATH' $OF_NEAR; refusing to mount '$merged'"
    fi

    missing=
    for d in "$upper" "$work" "$merged"; do
        if [ -e "$d" ] && [ ! -d "$d" ]; then
            of_die "'$d' exists and is not a directory"
        fi
        [ -d "$d" ] || missing="$missing${missing:+, }'$d'"
    done

    # In a batch (of-apply sets OF_MOUNT_BATCH), an instance with nothing mounted on its merged dir
    # is mounted after the batch's last instance, with the others (of_mount_batch): its directories
    # made by one mkdir and its overlay by one `mount -a` for all of them, not two processes each.
    if [ -n "${OF_MOUNT_BATCH-}" ] && [ "$cur_found" = 0 ] && [ -z "$pending" ]; then
        if [ -d "$merged" ] && ! of_dir_empty "$merged"; then
            of_mount_not_empty
        fi
        printf '%s\t%s\t%s\t%s\t%s\n' "$merged" "$pinned" "$opts" "$upper" "$work" >>"$OF_MOUNT_BATCH" ||
            of_die "cannot write '$OF_MOUNT_BATCH' to mount '$merged'"
        exit 0
    fi

    [ -z "$missing" ] || mkdir -p -- "$upper" "$work" "$merged" || of_die "cannot create the directories $missing"
    # <merged> may not have existed above: its canonical path (mountinfo shows those) only now.
    of_canon "$merged"
    mcanon=$OF_CANON

    of_mount_at "$mcanon"
    if [ "$OF_AT_FOUND" = 1 ]; then
        if [ "$OF_AT_FSTYPE" != overlay ]; then
            of_die "merged dir '$merged' is already a mountpoint of $OF_AT_FSTYPE ($OF_AT_SOURCE), not an overlay; refusing to mount over it"
        fi
        if of_ovl_layers_match "$lower" "$upper" "$work" "$OF_AT_SUPER"; then
            if [ -z "$pending" ] && of_ovl_match "$pinned" "$OF_AT_SUPER" "$OF_AT_OPTS"; then
                printf 'ok mount %s: unchanged\n' "$merged"
                exit 0
            fi
        fi
        reason=$OF_MISMATCH
        [ -n "$reason" ] || reason="the switch to '$lower' has not dropped what was folded"

        # A running container keeps its own bind of the old overlay alive (an unmount on the host
        # would not even be reported busy) and would never see the new one: stop it around the change.
        stopped=
        docker_ready=
        if [ -n "$container" ] && of_docker_ready; then
            docker_ready=1
            if of_container_running "$container"; then
                of_docker stop "$container" >/dev/null || of_die "cannot stop container '$container' to remount '$merged'"
                stopped=1
            fi
        fi
        if ! of_umount "$merged"; then
            if [ -n "$stopped" ]; then
                of_docker start "$container" >/dev/null 2>&1 ||
                    of_warn "could not start container '$container' again"
            fi
            hint="stop what uses it and retry"
            if [ -n "$container" ] && [ -z "$docker_ready" ]; then
                hint="no reachable docker engine to stop container '$container'; stop what uses it and retry"
            fi
            of_die "overlay at '$merged' must be remounted ($reason) but is busy: $OF_UMOUNT_ERR; $hint"
        fi
    else
        reason=
        of_dir_empty "$merged" || of_mount_not_empty
        stopped=
    fi
    [ -z "$pending" ] || of_mount_drop

    of_mount_overlay "$merged" "$opts" || of_die "$OF_MOUNT_ERR${stopped:+; container '$container' left stopped}"

    # In a batch (of-apply sets OF_MOUNT_VERIFY), a new mount with no container to start again
    # is checked after the batch's last mount, with the others (of_mount_verify_batch).
    if [ -n "${OF_MOUNT_VERIFY-}" ] && [ -z "$stopped" ]; then
        printf '%s\t%s\t%s\t%s\n' "$merged" "$mcanon" "$pinned" "${reason:--}" >>"$OF_MOUNT_VERIFY" ||
            of_die "overlay on '$merged' mounted, but cannot write '$OF_MOUNT_VERIFY' to check it"
        exit 0
    fi
    of_mi_at "$mcanon"
    of_mount_verified "$merged" "$pinned" || exit 1

    if [ -n "$stopped" ]; then
        of_docker start "$container" >/dev/null || of_die "overlay on '$merged' mounted, but container '$container' did not start again"
    fi
    of_mount_ok "$merged" "$reason"
    exit 0
}

# of_drop_pending MANIFEST: the drop of what a fold recorded in MANIFEST (a file) has not been
# completed: no done-marker <MANIFEST>.dropped beside it (host/foldtool/drop.go).
of_drop_pending() {
    [ -f "$1" ] && [ ! -e "$1.dropped" ]
}

# of_mount_drop: of_mount_main's pending drop ($manifest on $upper, unmounted). While the drop
# runs the upper is right for neither generation, and nothing may bring the instance back: when
# of-apply gave the instance's line in OF_DROP_LINE (`<fstabFile> <id> <options>`, tab-separated),
# first the merged dir goes (a container's bind of it then fails; empty, as unmounted), then the
# old line (a boot mounts nothing); once the drop is done the new line is written, and the dir made
# again for the mount. Killed anywhere in between, the next apply drops again (it is idempotent).
of_mount_drop() {
    command -v drop_folded >/dev/null 2>&1 ||
        of_die "the switch of '$merged' to '$lower' needs drop_folded, which this command lacks"
    if [ -n "${OF_DROP_LINE-}" ]; then
        of_fields "$OF_DROP_LINE"
        of_field && of_md_fstab=$OF_FIELD && of_field && of_md_id=$OF_FIELD && of_field && of_md_opts=$OF_FIELD ||
            of_die "bad OF_DROP_LINE for '$merged': $OF_DROP_LINE"
        if [ -d "$merged" ]; then
            rmdir -- "$merged" 2>/dev/null ||
                of_die "merged dir '$merged' is not mounted but not empty (something wrote into the bare mountpoint); move its content away, then retry${stopped:+; container '$container' left stopped}"
        fi
        sh ./fstab remove "$of_md_fstab" "$of_md_id" </dev/null ||
            of_die "the old fstab line of '$of_md_id' cannot be removed before its drop; the overlay at '$merged' is left unmounted${stopped:+ and container '$container' stopped}"
    fi
    drop_folded "$manifest" "$upper" ||
        of_die "drop_folded '$manifest' '$upper' failed; the overlay at '$merged' is left unmounted${OF_DROP_LINE:+, without its line and merged dir (the next apply drops again)}${stopped:+, container '$container' stopped}"
    if [ -n "${OF_DROP_LINE-}" ]; then
        sh ./fstab set "$of_md_fstab" "$of_md_id" "$merged" "$of_md_opts" </dev/null ||
            of_die "the fstab line of '$of_md_id' cannot be written; the overlay at '$merged' is left unmounted${stopped:+ and container '$container' stopped}"
    fi
    mkdir -p -- "$merged" || of_die "cannot create the merged dir '$merged'"
}

# of_mount_overlay MERGED OPTIONS: mounts an overlay with OPTIONS on MERGED; when that fails,
# returns 1 with what mount(8) and the kernel said in OF_MOUNT_ERR.
of_mount_overlay() {
    of_dmesg_mark
    of_mo_out=$(mount -t overlay overlay -o "$2" "$1" 2>&1) && return 0
    of_kernel_says
    of_oneline "$of_mo_out"
    OF_MOUNT_ERR="mounting the overlay on '$1' with options '$2' failed: $OF_ONELINE${OF_KERNEL:+; kernel: $OF_KERNEL}"
    return 1
}

# of_mount_not_empty: of_mount_main's refusal to cover a merged dir ($merged, canonical $mcanon) that
# holds something but is not mounted, saying whether it was mounted since the batch's snapshot.
of_mount_not_empty() {
    of_mi_at "$mcanon"
    [ "$OF_AT_FOUND" = 0 ] ||
        of_die "merged dir '$merged' was mounted while this apply ran (by something else); run it again"
    of_die "merged dir '$merged' is not mounted but not empty (something wrote into the bare mountpoint, e.g. a container started before the overlay); move its content away, then retry"
}

# of_mount_batch FILE VERIFY: the mounts of_mount_main left to the batch (FILE, its OF_MOUNT_BATCH:
# `<merged> <pinned> <options> <upper> <work>` lines, tab-separated), in FILE's order: the
# directories of all of them made by one `mkdir -p` (refused, one per instance: only the refused
# one fails), then their overlays by one `mount -a` of a table of them (`-T`, not the box's fstab);
# an instance that `mount -a` left unmounted is mounted alone, for its own error and the kernel's.
# Each instance mounted is added to VERIFY (of_mount_verify_batch checks it). The number that
# failed in OF_BATCH_FAILED; returns 1 if any.
of_mount_batch() {
    OF_BATCH_FAILED=0
    [ -s "$1" ] || return 0
    of_bt_file=$1
    of_bt_verify=$2
    of_bt_all=$(cat -- "$of_bt_file") || of_die "cannot read '$of_bt_file'"
    set --
    of_lines "$of_bt_all"
    while of_line; do
        of_bt_record "$OF_LINE"
        set -- "$@" "$of_bt_upper" "$of_bt_work" "$of_bt_merged"
    done
    # The instances whose directories exist now, each with its canonical merged dir (mountinfo
    # shows those) as a sixth field.
    of_bt_fallback=
    mkdir -p -- "$@" 2>/dev/null || of_bt_fallback=1
    of_lines "$of_bt_all"
    while of_line; do
        of_bt_record "$OF_LINE"
        if [ -n "$of_bt_fallback" ] && ! mkdir -p -- "$of_bt_upper" "$of_bt_work" "$of_bt_merged"; then
            of_err "cannot create the directories '$of_bt_upper', '$of_bt_work', '$of_bt_merged'"
            OF_BATCH_FAILED=$((OF_BATCH_FAILED + 1))
            continue
        fi
        of_canon "$of_bt_merged"
        printf '%s\t%s\n' "$OF_LINE" "$OF_CANON"
    done >"$of_bt_file" || of_die "cannot write '$of_bt_file'"
    [ -s "$of_bt_file" ] || return 1
    awk -F '\t' '{ print "overlay " $1 " overlay " $3 " 0 0" }' "$of_bt_file" >"$of_bt_file.fstab" || of_die "cannot write '$of_bt_file.fstab'"
    # Its status says only whether all were mounted; what failed is the alone mount's to say.
    mount -a -T "$of_bt_file.fstab" >/dev/null 2>&1 || :
    rm -f -- "$of_bt_file.fstab"
    # Each by the top-most mount on its merged dir now: ours (an overlay with the instance's layers)
    # goes to VERIFY (`<merged> <canonical merged> <pinned> -`); with nothing there (mount -a
    # failed it) it is mounted alone; anything else was mounted there by something else since the
    # snapshot (mount -a then took it for ours).
    of_tops "$of_bt_file" 6
    of_lines "$OF_TOPS"
    while of_line; do
        of_bt_record "$OF_LINE"
        if [ -z "$of_bt_extra" ]; then
            if ! of_mount_overlay "$of_bt_merged" "$of_bt_opts"; then
                of_err "$OF_MOUNT_ERR"
                OF_BATCH_FAILED=$((OF_BATCH_FAILED + 1))
                continue
            fi
        else
            of_mi_at_line "$of_bt_canon" "$of_bt_extra"
            of_opt_get lowerdir "$of_bt_opts" && of_bt_lower=$OF_OPT_VAL || of_bt_lower=
            if [ "$OF_AT_FSTYPE" != overlay ]; then
                of_err "merged dir '$of_bt_merged' was mounted while this apply ran (by something else); run it again"
                OF_BATCH_FAILED=$((OF_BATCH_FAILED + 1))
                continue
            elif ! of_ovl_layers_match "$of_bt_lower" "$of_bt_upper" "$of_bt_work" "$OF_AT_SUPER"; then
                of_err "merged dir '$of_bt_merged' was mounted while this apply ran (by something else: $OF_MISMATCH); run it again"
                OF_BATCH_FAILED=$((OF_BATCH_FAILED + 1))
                continue
            fi
        fi
        printf '%s\t%s\t%s\t-\n' "$of_bt_merged" "$of_bt_canon" "$of_bt_pinned" >>"$of_bt_verify" || of_die "cannot write '$of_bt_verify'"
    done
    [ "$OF_BATCH_FAILED" -eq 0 ]
}
# of_bt_record LINE: a line of of_mount_batch's FILE in of_bt_merged, of_bt_pinned, of_bt_opts,
# of_bt_upper, of_bt_work, of_bt_canon (empty before it is added) and of_bt_extra (a field after).
of_bt_record() {
    of_bt_merged= of_bt_pinned= of_bt_opts= of_bt_upper= of_bt_work= of_bt_canon= of_bt_extra=
    of_fields "$1"
    of_field && of_bt_merged=$OF_FIELD && of_field && of_bt_pinned=$OF_FIELD && of_field && of_bt_opts=$OF_FIELD &&
        of_field && of_bt_upper=$OF_FIELD && of_field && of_bt_work=$OF_FIELD && of_field && of_bt_canon=$OF_FIELD &&
        of_field && of_bt_extra=$OF_FIELD || :
}

# of_tops FILE N: each line of FILE (tab-separated) with a tab and the top-most mountinfo line on
# the mount point in its field N (nothing after the tab when nothing is mounted there), in
# OF_TOPS: one read of the mount table for a batch's checks.
of_tops() {
    OF_TOPS=$(awk -F '\t' -v col="$2" '
        FNR == NR { n++; rec[n] = $0; at[n] = $col; want[$col] = 1; next }
        $5 in want { top[$5] = $0 }
        END { for (i = 1; i <= n; i++) print rec[i] "\t" top[at[i]] }
    ' "$1" FS=' ' /proc/self/mountinfo) || of_die "cannot read /proc/self/mountinfo with awk"
}

# of_mount_verified MERGED PINNED: with OF_AT_* of the mount now on MERGED (of_mi_at), whether
# it is an overlay (else says so, returns 1); warns when the pinned options are not in effect.
of_mount_verified() {
    if [ "$OF_AT_FSTYPE" != overlay ]; then
        of_err "mount reported success but '$1' is not an overlay mount"
        return 1
    fi
    if ! of_ovl_match "$2" "$OF_AT_SUPER" "$OF_AT_OPTS"; then
        of_kernel_says
        of_warn "the kernel mounted '$1' with options that differ from the pinned ones: $OF_MISMATCH${OF_KERNEL:+ (kernel: $OF_KERNEL)}"
    fi
    return 0
}

# of_mount_ok MERGED REASON: what a mount made says (REASON: why it was remounted, or empty).
of_mount_ok() {
    if [ -n "$2" ]; then
        printf 'ok mount %s: remounted (%s)\n' "$1" "$2"
    else
        printf 'ok mount %s: mounted\n' "$1"
    fi
}

# of_mount_verify_batch FILE: the mounts of a batch whose check of_mount_main deferred (FILE, its
# OF_MOUNT_VERIFY: `<merged> <canonical merged> <pinned> <reason|->` lines, tab-separated), each
# checked as of_mount_main checks one, with one read of the mount table for all of them: each
# says `ok mount` or its error. The number that failed in OF_VERIFY_FAILED; returns 1 if any.
of_mount_verify_batch() {
    OF_VERIFY_FAILED=0
    [ -s "$1" ] || return 0
    # Each record with the top-most mountinfo line on its merged dir, if any.
    of_tops "$1" 2
    of_lines "$OF_TOPS"
    while of_line; do
        of_vb_merged= of_vb_canon= of_vb_pinned= of_vb_reason= of_vb_line=
        of_fields "$OF_LINE"
        of_field && of_vb_merged=$OF_FIELD && of_field && of_vb_canon=$OF_FIELD && of_field && of_vb_pinned=$OF_FIELD &&
            of_field && of_vb_reason=$OF_FIELD && of_field && of_vb_line=$OF_FIELD || :
        of_mi_at_line "$of_vb_canon" "$of_vb_line"
        [ "$of_vb_reason" != - ] || of_vb_reason=
        if of_mount_verified "$of_vb_merged" "$of_vb_pinned"; then
            of_mount_ok "$of_vb_merged" "$of_vb_reason"
        else
            OF_VERIFY_FAILED=$((OF_VERIFY_FAILED + 1))
        fi
    done
    [ "$OF_VERIFY_FAILED" -eq 0 ]
}

# of_unmount_main <merged> <keep|purge> <upper> <work> [<fstabFile>]: the whole of of-unmount (see
# host/unmount.sh); it ends with `exit` (of_die, or 0 when done): call it in a subshell to go on
# after it (of-apply takes instances down so, one shell for all of them).
of_unmount_main() {
    [ "$#" -eq 4 ] || [ "$#" -eq 5 ] || of_usage "usage: of-unmount <merged> <keep|purge> <upper> <work> [<fstabFile>]"
    of_check_path "merged dir" "$1"; merged=$OF_PATH
    case $2 in
        keep | purge) mode=$2 ;;
        *) of_usage "second argument must be keep or purge, got '$2'" ;;
    esac
    of_check_path "upper dir" "$3"; upper=$OF_PATH
    of_check_path "work dir" "$4"; work=$OF_PATH
    fstab=/etc/fstab
    if [ "$#" -eq 5 ]; then
        of_check_path "fstab file" "$5"; fstab=$OF_PATH
    fi

    ! of_applied_keeps merged "$merged" || exit 0

    if [ "$mode" = purge ]; then
        inst=${merged%/mnts}
        if [ "$inst" = "$merged" ] || [ -z "$inst" ]; then
            of_die "refusing to purge '$upper' and '$work': the merged dir '$merged' is not <instanceDir>/mnts, so they cannot be shown to be the instance's own"
        fi
        [ "$upper" = "$inst/upper" ] ||
            of_die "refusing to purge '$upper': the upper dir must be '$inst/upper', beside the merged dir '$merged'"
        [ "$work" = "$inst/work" ] ||
            of_die "refusing to purge '$work': the work dir must be '$inst/work', beside the merged dir '$merged'"
    fi

    of_box_lock

    # of_um_fstab_cb DIR: of_fstab_each callback; stops with the reason in of_um_refuse when DIR
    # touches a managed line's layers (the instance's own line, on <merged>: its lower only) or
    # mount point.
    of_um_refuse=
    of_um_fstab_cb() {
        of_um_kinds=upper,work,lower
        if [ "$OF_FE_TARGET" = "$merged" ]; then
            of_um_kinds=lower
        elif of_relation "$1" "$OF_FE_TARGET"; then
            of_um_refuse="it $OF_REL the mount point of $OF_FE_ID in fstab '$fstab' (line $OF_FE_NO)"
            return 1
        fi
        if of_layer_match near "$1" "$of_um_kinds" "$OF_FE_OPTS"; then
            of_um_refuse="it $OF_REL the $OF_MATCH_KIND of $OF_FE_ID in fstab '$fstab' (line $OF_FE_NO, $OF_MATCH_KIND '$OF_MATCH_LAYER')"
            return 1
        fi
    }
    if [ "$mode" = purge ]; then
        of_relation_forget
        for d in "$upper" "$work"; do
            of_fstab_each "$fstab" of_um_fstab_cb "$d"
            [ -z "$of_um_refuse" ] || of_die "refusing to purge '$d': $of_um_refuse"
        done
    fi

    of_canon "$merged"
    mcanon=$OF_CANON
    did=
    n=0
    while :; do
        of_mi_at "$mcanon"
        [ "$OF_AT_FOUND" = 1 ] || break
        if [ "$OF_AT_FSTYPE" != overlay ]; then
            of_die "'$merged' is a mountpoint of $OF_AT_FSTYPE ($OF_AT_SOURCE), not an overlay; refusing to unmount it"
        fi
        if ! of_umount "$merged"; then
            of_die "cannot unmount the overlay at '$merged', it is busy: $OF_UMOUNT_ERR; stop the container or processes using it and retry"
        fi
        did=1
        n=$((n + 1))
        [ "$n" -lt 16 ] || of_die "'$merged' is still mounted after $n unmounts"
    done

    msg=
    if [ -d "$merged" ] && [ ! -L "$merged" ]; then
        if of_dir_empty "$merged"; then
            rmdir -- "$merged" || of_die "cannot remove the merged dir '$merged'"
            did=1
        else
            of_warn "merged dir '$merged' is not empty (something wrote into the bare mountpoint); left in place"
            msg=" (merged dir not empty, kept)"
        fi
    fi

    if [ "$mode" = purge ]; then
        for d in "$upper" "$work"; do
            if of_layer_near "$d" lower,upper,work; then
                of_die "refusing to purge '$d': it $OF_NEAR"
            fi
            if [ -d "$d" ] && of_mounts_below "$d"; then
                of_oneline "$OF_BELOW"
                of_die "refusing to purge '$d': something is mounted inside it: $OF_ONELINE"
            fi
        done
        for d in "$upper" "$work"; do
            if [ -e "$d" ] || [ -L "$d" ]; then
                rm -rf -- "$d" || of_die "cannot remove '$d'"
                did=1
            fi
        done
    fi

    if [ -n "$did" ]; then
        printf 'ok unmount %s: done, upper %s%s\n' "$merged" "$([ "$mode" = purge ] && echo purged || echo kept)" "$msg"
    else
        printf 'ok unmount %s: unchanged%s\n' "$merged" "$msg"
    fi
    exit 0
}
