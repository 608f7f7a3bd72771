# of-mount <lower> <upper> <work> <merged> <pinnedOptions> <container|-> <foldManifest|->
#
# Mounts the overlay of one instance:
#   mount -t overlay overlay -o lowerdir=<lower>,upperdir=<upper>,workdir=<work>,<pinned> <merged>
# Idempotent: an overlay already on <merged> with these layers and the pinned options in effect
# is left alone. Different layers or options: unmount + mount (remount cannot change layers);
# when the old mount is busy and <container> is a docker container, it is stopped around the
# change and started again. Refuses: an upper/work dir that is, is inside or contains a layer of
# another instance's overlay (or a lower that is or holds another's upper/work), a <merged> that
# is a mountpoint of something else, an unmounted <merged> that is not empty; options that are
# not on the overlay allow-list (of_check_options). Checks and mount run under the box lock
# (flock on /run/overlay-fleet/box.lock, in a directory of root alone), so instances mounted at the same moment see each other.
# When the lower changes and <foldManifest> is a file, drop_folded (host/lib-fold.sh) runs
# between the unmount and the mount.

of_alone
of_mount_main "$@"
