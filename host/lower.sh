# of-lower <lower> [<privatePath>...]
#
# Prepares the shared lower dir: creates it, and moves each instance-private path (relative to the
# lower, e.g. .yfnode/config) that exists in it aside to
#   <dirname lower>/.overlay-fleet/private/<basename lower>/<privatePath>
# (numbered .1, .2, ... when an older stash is already there: stashes are never overwritten and
# nothing is deleted). Refuses to touch a lower that a mounted overlay uses as a lowerdir.
# Running it again is a no-op.

[ "$#" -ge 1 ] || of_usage "usage: of-lower <lower> [<privatePath>...]"
of_check_path "lower dir" "$1"; lower=$OF_PATH
shift
[ "$lower" != / ] || of_usage "the lower dir cannot be /"
for p in "$@"; do
    of_check_relpath "private path" "$p"
done

if [ -e "$lower" ] && [ ! -d "$lower" ]; then
    of_die "lower dir '$lower' exists and is not a directory"
fi
created=
if [ ! -d "$lower" ]; then
    mkdir -p -- "$lower" || of_die "cannot create lower dir '$lower'"
    created=1
fi

stash_root=${lower%/*}
[ -n "$stash_root" ] || stash_root=/
stash_root=${stash_root%/}/.overlay-fleet/private/${lower##*/}

mounted=
if of_layer_users "$lower" lower; then
    of_oneline "$OF_USERS"
    mounted=$OF_ONELINE
fi

moved=
for p in "$@"; do
    of_check_relpath "private path" "$p"
    rel=$OF_PATH
    src=$lower/$rel
    # Never follow a symlink out of the lower on the way to the private path.
    walk=$lower
    rest=$rel/
    while :; do
        comp=${rest%%/*}
        rest=${rest#*/}
        [ -n "$rest" ] || break
        walk=$walk/$comp
        if [ -L "$walk" ]; then
            of_die "'$walk' is a symlink; refusing to move '$src' through it"
        fi
        [ -d "$walk" ] || break
    done
    if [ ! -e "$src" ] && [ ! -L "$src" ]; then
        continue
    fi
    if [ -n "$mounted" ]; then
        of_die "private path '$src' is still in the lower, but the lower is mounted as lowerdir by: $mounted; changing a mounted lower is undefined behaviour: unmount those overlays, then retry"
    fi
    dest=$stash_root/$rel
    if [ -e "$dest" ] || [ -L "$dest" ]; then
        i=1
        while [ -e "$dest.$i" ] || [ -L "$dest.$i" ]; do
            i=$((i + 1))
        done
        dest=$dest.$i
    fi
    mkdir -p -- "${dest%/*}" || of_die "cannot create stash dir '${dest%/*}'"
    mv -- "$src" "$dest" || of_die "cannot move private path '$src' to '$dest'"
    printf 'moved %s -> %s\n' "$src" "$dest"
    moved=1
done

if [ -n "$moved" ] || [ -n "$created" ]; then
    printf 'ok lower %s: prepared\n' "$lower"
else
    printf 'ok lower %s: unchanged\n' "$lower"
fi
