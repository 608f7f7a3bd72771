# of-apply set <fstabFile> <box> <keep|purge>      (stdin: the box's planned instances)
# of-apply remove <fstabFile> <box> <keep|purge>   (stdin: the instances to remove; OF_STACK: whose teardown)
#
# The box's overlays in one go, one record per line on stdin, fields separated by one tab:
#   <id> <lower> <upper> <work> <merged> <pinnedOptions> <fstabOptions> <container|-> <foldManifest|->
# `set` converges the box to the plan: first every managed fstab line of <box> (marker
# x-overlay-fleet=<box>/...) whose id the plan no longer has is taken down as of-unmount and
# of-fstab remove do (the upper data kept unless purge; a busy instance keeps its line), then the
# planned instances get their fstab lines, in one edit (of-fstab set of all of them; should that
# be refused, one edit per instance, so only the refused one fails), then their mounts (of-mount's
# of_mount_main, in a subshell each, under the box lock taken once): a remount (a generation
# switch) one instance at a time, the new mounts together after the last (of_mount_batch); an
# instance whose line could not be written is not mounted. `remove` takes down every managed line
# of <box> and every listed instance (unmount, then the line). An instance that fails does not stop
# the others: its error is printed and the status is 1. `set` records the plan's ids, containers
# and merged dirs in $OF_PLAN_DIR/<box> (`remove` deletes that file and, once every instance is
# down, gives up the box's claim of the machine, see host/claim.sh; given in OF_STACK the stack
# whose teardown it is, a machine claimed for another stack's box of the same name is left alone:
# an environment variable, which a library of an earlier version ignores, so a teardown of this
# version still runs there). Runs in the installed host library (the other commands beside it).

[ "$#" -eq 4 ] || of_usage "usage: of-apply set|remove <fstabFile> <box> <keep|purge>"
action=$1
case $action in
    set | remove) ;;
    *) of_usage "first argument must be set or remove, got '$action'" ;;
esac
stack=
[ "$action" = set ] || stack=${OF_STACK-}
of_check_path "fstab file" "$2"; fstab=$OF_PATH
box=$3
of_check_id "$box/x"
case $4 in
    keep | purge) mode=$4 ;;
    *) of_usage "fourth argument must be keep or purge, got '$4'" ;;
esac

# Our own calls of of-unmount and of-fstab remove: not the legacy per-instance commands they
# refuse while the box's plan still holds the instance (see of_applied_keeps in host/lib.sh).
OF_APPLY=1
export OF_APPLY

# A unique name for the apply's temp files ($tmp.ids, $tmp.mounted, $tmp.unmounted), with the
# apply's pid in it: those of an apply killed with -9 (its trap never ran) are removed by the
# next one, under the box lock, once that pid is gone (ap_clean_stale).
ap_tmpdir=${TMPDIR:-/tmp}
tmp=$(mktemp "$ap_tmpdir/of-apply.$$.XXXXXX") || of_die "cannot create a temp file in '$ap_tmpdir'"
trap 'rm -f -- "$tmp" "$tmp.ids" "$tmp.mounted" "$tmp.unmounted" "$tmp.batch" "$tmp.batch.fstab"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# The records, read once, walked with of_lines/of_line (a last record without its newline is a
# record too; an empty line is none).
ap_records=$(cat) || of_die "cannot read the plan from stdin"

# ap_record LINE: the record's fields in ap_id ap_lower ap_upper ap_work ap_merged ap_pinned
# ap_fstab_opts ap_container ap_manifest; a record of another box, with a field missing, empty or
# too many is a usage error.
ap_record() {
    of_fields "$1"
    ap_field && ap_id=$ap_f && ap_field && ap_lower=$ap_f && ap_field && ap_upper=$ap_f &&
        ap_field && ap_work=$ap_f && ap_field && ap_merged=$ap_f && ap_field && ap_pinned=$ap_f &&
        ap_field && ap_fstab_opts=$ap_f && ap_field && ap_container=$ap_f && ap_field && ap_manifest=$ap_f &&
        [ -z "$of_fields_rest" ] || of_usage "plan record must have 9 tab-separated fields, none empty: $1"
    of_check_on_box "$ap_id" "$box"
    of_check_id "$ap_id"
    # The paths as the plan writes them (normalised): the take-down compares them as strings.
    for ap_p in "lower dir:$ap_lower" "upper dir:$ap_upper" "work dir:$ap_work" "merged dir:$ap_merged"; do
        of_check_path "${ap_p%%:*} of $ap_id" "${ap_p#*:}"
        [ "$OF_PATH" = "${ap_p#*:}" ] || of_usage "${ap_p%%:*} of $ap_id must be written without repeated or trailing slashes, got '${ap_p#*:}'"
    done
    [ "$ap_manifest" = - ] || of_check_path "fold manifest of $ap_id" "$ap_manifest"
}
# ap_field: the record's next field in ap_f; 1 if there is none or it is empty.
ap_field() {
    of_field && ap_f=$OF_FIELD && [ -n "$ap_f" ]
}

failed=0
ap_fail() {
    failed=$((failed + 1))
}

# ap_down ID MERGED UPPER WORK MODE: unmount (MODE keep|purge, of_unmount_main in a subshell);
# its fstab line goes with the next ap_drop_lines (kept when the unmount failed). A running
# container of the instance (label overlay-fleet.instance=ID) is stopped first: it holds the
# overlay in its own mount namespace, so the unmount would not even be refused, and it would go
# on writing into a detached (or purged) upper until Pulumi removes it at the end of the run.
ap_docker=
ap_running=
ap_down() {
    # Whether the box has a docker engine, and its running managed containers (`<container>
    # <instance id>` lines), are asked once. An engine that does not answer, or answers but cannot
    # list them: no instance is taken down (one of them may have a container writing into it).
    if [ -z "$ap_docker" ]; then
        ap_docker=no
        if of_docker_ready; then
            ap_docker=yes
            ap_running=$(of_docker ps --filter "label=$OF_INSTANCE_LABEL" --format "{{.ID}} {{.Label \"$OF_INSTANCE_LABEL\"}}" 2>&1) || {
                of_oneline "$ap_running"
                of_err "cannot list the box's running containers (docker ps: $OF_ONELINE): no instance is taken down while one may still run"
                ap_docker=failed
            }
        elif of_have docker && of_docker_configured; then
            of_err "the box's docker engine does not answer (docker info): no instance is taken down while one may still run"
            ap_docker=failed
        fi
    fi
    if [ "$ap_docker" = failed ]; then
        of_err "instance $1 not taken down: its container may still run"
        ap_fail
        return 0
    fi
    while IFS=' ' read -r ap_c ap_ci; do
        [ -n "$ap_c" ] && [ "$ap_ci" = "$1" ] || continue
        of_docker stop "$ap_c" >/dev/null || { of_err "cannot stop container $ap_c of $1 to take it down"; ap_fail; return 0; }
    done <<EOF
$ap_running
EOF
    if (of_unmount_main "$2" "$5" "$3" "$4" "$fstab"); then
        printf '%s\n' "$1" >>"$tmp.unmounted" || { of_err "cannot write '$tmp.unmounted'"; ap_fail; }
    else
        ap_fail
    fi
}

# ap_drop_lines: the fstab lines of the instances ap_down unmounted since the last call, in one
# edit (of-fstab remove of all of them); should that be refused, one edit per instance, so only
# the refused one fails.
ap_drop_lines() {
    set --
    # Each id once (a box's fstab may hold two lines of one id: both were taken down).
    while IFS= read -r ap_i; do
        case " $* " in
            *" $ap_i "*) ;;
            *) set -- "$@" "$ap_i" ;;
        esac
    done <"$tmp.unmounted"
    : >"$tmp.unmounted" || of_die "cannot write '$tmp.unmounted'"
    [ "$#" -gt 0 ] || return 0
    sh ./fstab remove "$fstab" "$@" </dev/null && return 0
    # The one edit failed: once more one by one, so only a refused line fails. Should none be
    # refused, the failure was not a line's (a sync after the rename, say): it still counts.
    of_warn "removing the fstab lines of the instances taken down in one edit failed; removing them one by one"
    ap_dl_failed=$failed
    for ap_i in "$@"; do
        sh ./fstab remove "$fstab" "$ap_i" </dev/null || ap_fail
    done
    [ "$failed" -gt "$ap_dl_failed" ] || ap_fail
}

# What follows, the records judged (a drop pending or not), the take-down and the mounts, runs
# under the box lock taken once here (not exported: the box's other commands take it
# themselves), each instance in a subshell.
of_box_lock
OF_BOX_LOCK_HELD=1

# One read of the records (every record checked before anything changes). On set: the instances
# the box keeps, as ` <id>=<merged> `; for of-mount the planned instances as `<merged> <upper>
# <work> <lower>` lines (it need not compare an instance with its planned siblings, see
# of_layers_near, which keeps a box of many instances linear); the arguments of the one fstab edit
# (`<id> <merged> <options>`...), without the instances whose drop is pending (` <id> ` each in
# dropping: of_mount_main writes their line once the drop is done); the plan of record (`<id>
# <container|-> <merged>` lines).
planned=
OF_SIBLINGS=
plan_record=
dropping=
set --
of_lines "$ap_records"
while of_line; do
    ap_record "$OF_LINE"
    [ "$action" = set ] || continue
    planned="$planned $ap_id=$ap_merged "
    OF_SIBLINGS="$OF_SIBLINGS${OF_SIBLINGS:+
}$ap_merged $ap_upper $ap_work $ap_lower"
    if [ "$ap_manifest" != - ] && of_drop_pending "$ap_manifest"; then
        dropping="$dropping $ap_id "
    else
        set -- "$@" "$ap_id" "$ap_merged" "$ap_fstab_opts"
    fi
    plan_record="$plan_record$ap_id $ap_container $ap_merged
"
done
export OF_SIBLINGS


# ap_clean_stale: the temp files of applies whose process is gone.
ap_clean_stale() {
    for ap_f in "$ap_tmpdir"/of-apply.*; do
        [ -e "$ap_f" ] || continue
        ap_pid=${ap_f#"$ap_tmpdir"/of-apply.}
        ap_pid=${ap_pid%%.*}
        case $ap_pid in '' | *[!0-9]*) continue ;; esac
        [ "$ap_pid" != $$ ] && ! kill -0 "$ap_pid" 2>/dev/null || continue
        rm -f -- "$ap_f" || of_warn "cannot remove the stale temp file '$ap_f'"
    done
}
ap_clean_stale

# On remove, the machine's claim (host/claim.sh). A teardown of another stack's box of the
# claiming box's name: its apply was refused, and the lines of that name are the claiming stack's.
# (A box of another name takes its own lines down, if an earlier version left any: the claiming
# box never writes them.)
OF_OWNER=
if [ "$action" = remove ]; then
    of_claim_read
    if [ -n "$stack" ] && [ -n "$OF_OWNER" ] && [ "$OF_OWNER_BOX" = "$box" ] && [ "$OF_OWNER_STACK" != "$stack" ]; then
        of_warn "this machine is box $box of stack $OF_OWNER_STACK, not of stack $stack: nothing taken down (were that stack this one before a rename or a move, its instances would stay: see README, One machine, one stack)"
        exit 0
    fi
fi

# Managed lines of this box that are not kept, collected first, taken down after the walk (on
# remove all of them: also an instance of a failed run that the records never got), their lines
# removed in one edit after the last take-down (killed before it, the next apply removes them). A
# planned instance whose line names another merged dir moved (a new instanceRoot): its old
# overlay is taken down too, its data always kept (the new line and mount follow below). A purge
# still sees the lines of the instances taken down before it: it refuses more, never less.
{ : >"$tmp.ids" && : >"$tmp.unmounted"; } 2>/dev/null || of_die "cannot write '$tmp.ids' (a full ${TMPDIR:-/tmp}?): nothing taken down"
ap_collect() {
    case $OF_FE_ID in
        "$box"/*) ;;
        *) return 0 ;;
    esac
    ap_m=$mode
    case $planned in
        *" $OF_FE_ID=$OF_FE_TARGET "*) return 0 ;;
        *" $OF_FE_ID="*) ap_m=keep ;;
    esac
    # `-` for a layer the line does not name: tabs are IFS whitespace, an empty field would vanish.
    of_opt_get upperdir "$OF_FE_OPTS" && ap_u=$OF_OPT_VAL || ap_u=-
    of_opt_get workdir "$OF_FE_OPTS" && ap_w=$OF_OPT_VAL || ap_w=-
    printf '%s\t%s\t%s\t%s\t%s\n' "$OF_FE_ID" "$OF_FE_TARGET" "$ap_u" "$ap_w" "$ap_m" >>"$tmp.ids" ||
        of_die "cannot write '$tmp.ids' (a full ${TMPDIR:-/tmp}?): nothing taken down"
}
of_fstab_each "$fstab" ap_collect
taken=
while IFS=$OF_TAB read -r ap_id ap_merged ap_upper ap_work ap_m; do
    taken="$taken $ap_id "
    if [ "$ap_upper" = - ] || [ "$ap_work" = - ] || [ -z "$ap_upper" ] || [ -z "$ap_work" ]; then
        of_err "managed fstab line of '$ap_id' names no upperdir or workdir; left alone"
        ap_fail
        continue
    fi
    ap_down "$ap_id" "$ap_merged" "$ap_upper" "$ap_work" "$ap_m" </dev/null
done <"$tmp.ids"
ap_drop_lines

if [ "$action" = set ]; then
    # Every planned line in one edit; refused, one edit per instance: only the refused one fails.
    # The ids whose line is written, ` <id> ` each, in written (an instance whose drop is pending
    # keeps the line it has until of_mount_main has dropped).
    written=" $dropping "
    if [ "$#" -eq 0 ] || sh ./fstab set "$fstab" "$@" </dev/null; then
        while [ "$#" -gt 0 ]; do
            written="$written$1 "
            shift 3
        done
    else
        of_warn "writing the box's fstab lines in one edit failed; writing them one by one"
        while [ "$#" -gt 0 ]; do
            if sh ./fstab set "$fstab" "$1" "$2" "$3" </dev/null; then
                written="$written$1 "
            else
                ap_fail
            fi
            shift 3
        done
    fi
    # The mounts, one at a time, each in a subshell (of_mount_main ends with exit), with one read
    # of the mount table before them all (of_mount_snapshot); an instance with nothing mounted yet
    # is left to of_mount_batch, which mounts them all after the last; one read after that checks
    # the new mounts (of_mount_verify_batch).
    of_mount_snapshot
    of_dmesg_mark
    OF_MOUNT_VERIFY=$tmp.mounted
    OF_MOUNT_BATCH=$tmp.batch
    : >"$OF_MOUNT_VERIFY" && : >"$OF_MOUNT_BATCH" || of_die "cannot write '$OF_MOUNT_VERIFY' or '$OF_MOUNT_BATCH'"
    # Each instance gets its line of the snapshot's OF_SNAP_TOPS and OF_SNAP_NEARS (in the order
    # of the records).
    ap_tops=$OF_SNAP_TOPS
    ap_nears=$OF_SNAP_NEARS
    of_lines "$ap_records"
    while of_line; do
        ap_record "$OF_LINE"
        ap_top=${ap_tops%%"$OF_NL"*}
        ap_tops=${ap_tops#*"$OF_NL"}
        ap_near=${ap_nears%%"$OF_NL"*}
        ap_nears=${ap_nears#*"$OF_NL"}
        case $written in
            *" $ap_id "*) ;;
            *) continue ;;
        esac
        OF_DROP_LINE=
        case $dropping in
            *" $ap_id "*) OF_DROP_LINE="$fstab$OF_TAB$ap_id$OF_TAB$ap_fstab_opts" ;;
        esac
        (OF_SNAP_TOP=$ap_top && OF_SNAP_NEAR=$ap_near && of_mount_main "$ap_lower" "$ap_upper" "$ap_work" "$ap_merged" "$ap_pinned" "$ap_container" "$ap_manifest") </dev/null || ap_fail
    done
    of_mount_batch "$OF_MOUNT_BATCH" "$OF_MOUNT_VERIFY" || failed=$((failed + OF_BATCH_FAILED))
    of_mount_verify_batch "$OF_MOUNT_VERIFY" || failed=$((failed + OF_VERIFY_FAILED))
else
    # The listed instances without a managed line (the walk above took down the others).
    of_lines "$ap_records"
    while of_line; do
        ap_record "$OF_LINE"
        case $taken in
            *" $ap_id "*) continue ;;
        esac
        ap_down "$ap_id" "$ap_merged" "$ap_upper" "$ap_work" "$mode" </dev/null
    done
    ap_drop_lines
fi

# The plan of record for the legacy guard (of_applied_keeps): what this box's plan now holds.
record=$OF_PLAN_DIR/$box
if [ "$action" = set ]; then
    mkdir -p -- "$OF_PLAN_DIR" || of_die "cannot create '$OF_PLAN_DIR'"
    printf '%s' "$plan_record" >"$record.new" && mv -f -- "$record.new" "$record" || of_die "cannot write '$record'"
else
    rm -f -- "$record" "$record.new"
    rmdir -- "$OF_PLAN_DIR" 2>/dev/null || :
fi

if [ "$failed" -gt 0 ]; then
    of_die "$failed of the box's instances failed (see above); the others are done"
fi
# The box's teardown, every instance down: the machine is no longer this box's (host/claim.sh; a
# teardown of an earlier version names no stack: the box's name decides).
if [ "$action" = remove ] && [ -n "$OF_OWNER" ] && [ "$OF_OWNER_BOX" = "$box" ]; then
    rm -f -- "$OF_CLAIM_FILE" || of_die "cannot remove the claim '$OF_CLAIM_FILE'"
fi
