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

of_alone
of_unmount_main "$@"
