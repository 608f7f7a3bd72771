# of-status <fstabFile> <lower> [<id> <merged> <upper>]...
#
# Read-only report, tab-separated:
#   instance<TAB><id><TAB><mounted 1|0><TAB><fstab 1|0><TAB><upperBytes>   (one per instance)
#   lower<TAB><path><TAB><bytes>
# "mounted" means an overlay is the top-most mount on <merged>; "fstab" that <fstabFile> holds
# the managed line of <id>; sizes are du -sk (one filesystem) in bytes, 0 for a missing dir.

[ "$#" -ge 2 ] && [ $((($# - 2) % 3)) -eq 0 ] ||
    of_usage "usage: of-status <fstabFile> <lower> [<id> <merged> <upper>]..."
of_check_path "fstab file" "$1"; fstab=$OF_PATH
of_check_path "lower dir" "$2"; lower=$OF_PATH
shift 2

# Validate everything before printing anything.
n=0
for a in "$@"; do
    case $((n % 3)) in
        0) of_check_id "$a" ;;
        1) of_check_path "merged dir" "$a" ;;
        2) of_check_path "upper dir" "$a" ;;
    esac
    n=$((n + 1))
done

while [ "$#" -ge 3 ]; do
    id=$1
    of_check_path "merged dir" "$2"; merged=$OF_PATH
    of_check_path "upper dir" "$3"; upper=$OF_PATH
    shift 3
    mounted=0
    if of_overlay_mounted_at "$merged"; then mounted=1; fi
    infstab=0
    if of_fstab_has "$fstab" "$id"; then infstab=1; fi
    of_du_bytes "$upper"
    printf 'instance\t%s\t%s\t%s\t%s\n' "$id" "$mounted" "$infstab" "$OF_BYTES"
done
of_du_bytes "$lower"
printf 'lower\t%s\t%s\n' "$lower" "$OF_BYTES"
