# of-image load <archive> <image>
# of-image pull <image>
#
# Makes <image> present in the box's engine and prints its id (`sha256:...`) on stdout: `load`
# from an image archive (`docker save` format) already copied to the box, for boxes without
# registry access (once per archive while the engine keeps the image it gave); `pull` from a
# registry when the image is not there yet. The archive must hold <image>: anything else fails
# naming both.

case ${1-} in
    load) [ "$#" -eq 3 ] || of_usage "usage: of-image load <archive> <image>"
          of_check_path "image archive" "$2"; archive=$OF_PATH; image=$3 ;;
    pull) [ "$#" -eq 2 ] || of_usage "usage: of-image pull <image>"; image=$2 ;;
    *) of_usage "usage: of-image load <archive> <image> | of-image pull <image>" ;;
esac
case $image in
    '' | [!a-z0-9]* | *[!A-Za-z0-9._/:@-]*) of_usage "image '$image' is not a docker image reference" ;;
esac
of_docker_ready || of_die "docker on this box does not answer (is the engine running?)"

# image_id: the engine's id of the image in $id; false when the engine has no such image (an engine
# that does not answer ends the script: never taken for "absent").
image_id() {
    id=$(of_docker_try image inspect --format '{{.Id}}' "$image") && return 0
    [ "$?" -ne 124 ] || exit 1
    return 1
}

if [ "$1" = load ]; then
    [ -f "$archive" ] || of_die "image archive '$archive' is missing on this box"
    # <archive>.loaded: the id the engine gave <image> when this archive was loaded. While <image>
    # still has it, the archive (named by its content) is not loaded again: a load reads all of it.
    loaded=$archive.loaded
    if [ -f "$loaded" ] && image_id && [ "$id" = "$(cat -- "$loaded")" ]; then
        echo "ok image: $image as loaded from $archive" >&2
    else
        of_docker load --input "$archive" >/dev/null || of_die "docker load of '$archive' failed"
        image_id ||
            of_die "the image archive '$archive' does not contain '$image'"
        # A record that cannot be written costs the next run a load, no more.
        { printf '%s\n' "$id" >"$loaded.tmp" && mv -f -- "$loaded.tmp" "$loaded"; } 2>/dev/null ||
            { rm -f -- "$loaded.tmp"; of_warn "cannot write $loaded: the next run loads the archive again"; }
        echo "ok image: $image loaded from $archive" >&2
    fi
    # Archives of earlier images are not needed any more (this one stays: a re-run may load it again).
    for old in "${archive%/*}"/*.tar "${archive%/*}"/*.tar.loaded "${archive%/*}"/*.tar.loaded.tmp; do
        [ "$old" = "$archive" ] || [ "$old" = "$loaded" ] || [ ! -f "$old" ] || rm -f -- "$old" || of_warn "cannot remove $old"
    done
elif ! image_id; then
    of_docker pull --quiet "$image" >/dev/null || of_die "docker pull '$image' failed (no registry access? use container.imageArchive)"
fi
image_id || of_die "the engine has no image '$image' after its pull"
printf '%s\n' "$id"
