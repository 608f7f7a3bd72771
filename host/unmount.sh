# of-unmount <merged> <keep|purge> <upper> <work>
#
# Unmounts the overlay on <merged> (every overlay stacked there) and removes the then empty
# <merged> dir. A busy mount fails with what fuser/lsof know about its users, and nothing else is
# touched. `purge` then deletes <upper> and <work> (refused while any overlay still uses them or
# anything is mounted inside them); `keep` leaves them alone. Nothing mounted and nothing there:
# a no-op.

[ "$#" -eq 4 ] || of_usage "usage: of-unmount <merged> <keep|purge> <upper> <work>"
of_check_path "merged dir" "$1"; merged=$OF_PATH
case $2 in
    keep | purge) mode=$2 ;;
    *) of_usage "second argument must be keep or purge, got '$2'" ;;
esac
of_check_path "upper dir" "$3"; upper=$OF_PATH
of_check_path "work dir" "$4"; work=$OF_PATH

if [ "$mode" = purge ]; then
    for d in "$upper" "$work"; do
        if [ "$d" = / ] || of_is_within "$merged" "$d"; then
            of_usage "refusing to purge '$d': it is / or contains the merged dir '$merged'"
        fi
    done
    if of_is_within "$upper" "$work" || of_is_within "$work" "$upper"; then
        of_usage "refusing to purge: upper dir '$upper' and work dir '$work' overlap"
    fi
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
        if of_layer_users "$d" lower,upper,work; then
            of_oneline "$OF_USERS"
            of_die "refusing to purge '$d': it is still a layer of a mounted overlay: $OF_ONELINE"
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
