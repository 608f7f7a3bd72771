# of-unmount <merged> <keep|purge> <upper> <work> [<fstabFile>]
#
# Unmounts the overlay on <merged> (every overlay stacked there) and removes the then empty
# <merged> dir. A busy mount fails with what fuser/lsof know about its users, and nothing else is
# touched. `keep` leaves <upper> and <work> alone. `purge` then deletes them, but only the
# instance's own dirs: <upper> and <work> must be `upper` and `work` beside <merged>, which is
# `<instanceDir>/mnts`; and neither may be, be inside or contain a layer (or mount point) of
# another instance in <fstabFile> (default /etc/fstab; the instance's own line counts with its
# lower only), a lower or any generation `<lower>.g<N>` of one, or a layer of a live overlay.
# Refused purges exit 1 with what the dir is to whom. Runs under the box lock (as of-mount), so
# no instance starts using the dirs while they are checked and deleted. Nothing mounted and
# nothing there: a no-op.

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

# um_fstab_cb DIR: of_fstab_each callback; stops with the reason in um_refuse when DIR touches a
# managed line's layers (the instance's own line, on <merged>: its lower only) or mount point.
um_refuse=
um_fstab_cb() {
    um_kinds=upper,work,lower
    if [ "$OF_FE_TARGET" = "$merged" ]; then
        um_kinds=lower
    elif of_relation "$1" "$OF_FE_TARGET"; then
        um_refuse="it $OF_REL the mount point of $OF_FE_ID in fstab '$fstab' (line $OF_FE_NO)"
        return 1
    fi
    if of_layer_match near "$1" "$um_kinds" "$OF_FE_OPTS"; then
        um_refuse="it $OF_REL the $OF_MATCH_KIND of $OF_FE_ID in fstab '$fstab' (line $OF_FE_NO, $OF_MATCH_KIND '$OF_MATCH_LAYER')"
        return 1
    fi
}
if [ "$mode" = purge ]; then
    of_relation_forget
    for d in "$upper" "$work"; do
        of_fstab_each "$fstab" um_fstab_cb "$d"
        [ -z "$um_refuse" ] || of_die "refusing to purge '$d': $um_refuse"
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
