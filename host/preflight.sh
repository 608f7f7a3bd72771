# of-preflight <instanceRoot> <lower> [<record>]
#
# Checks that this box can run overlay instances under <instanceRoot>: overlayfs is available,
# and a real test overlay in a temp dir inside <instanceRoot> (pinned options) mounts, writes
# through to its upper, leaves a 0/0 whiteout for a deleted lower file, makes a deleted-and-
# recreated dir opaque, and gets the pinned options from the kernel without fallbacks. This is
# what docker and containerd do: only a real mount tells whether a filesystem can host an upper
# (vfat, NFS, CIFS, FUSE, another overlay, ramfs, xfs with ftype=0 ... cannot). The temp dir is
# removed whatever happens. <lower> must be a directory if it exists.
#
# With <record> (a file: the box's apply gives one in the current host library's directory, so a
# new library, with other pinned options or checks, runs its own), a pass is recorded there with
# what it held for: this boot, <instanceRoot>, the mount it is on (its id, device, type, source
# and options, per-mount and superblock) and the filesystem's id, type and size. While all of
# these are the same, the preflight says so instead of testing again: the same test would pass
# again, and it is the largest fixed cost of an apply (about 30 ms). A failure is never recorded.

[ "$#" -eq 2 ] || [ "$#" -eq 3 ] || of_usage "usage: of-preflight <instanceRoot> <lower> [<record>]"
of_check_path "instance root" "$1"; root=$OF_PATH
of_check_path "lower dir" "$2"; lower=$OF_PATH
record=
if [ "$#" -eq 3 ]; then
    of_check_path "preflight record" "$3"; record=$OF_PATH
fi

pinned=$OF_PINNED_OPTIONS

if [ -e "$lower" ] && [ ! -d "$lower" ]; then
    of_die "lower dir '$lower' exists and is not a directory"
fi
if [ -L "$lower" ] && [ ! -e "$lower" ]; then
    of_die "lower dir '$lower' is a dangling symlink"
fi

# pf_passed: what a pass of this preflight holds for, in pf_key (one line): the boot, the root,
# the mountinfo line of the mount the root is on (the top-most with the longest mount point the
# root is in), its first field the mount id, and the filesystem's id, type and size (statfs: a disk
# swapped for another at the same place may get the same device number and mount id). Returns 1
# when that cannot be told (no root yet, no boot id).
pf_key=
pf_passed() {
    [ -d "$root" ] || return 1
    IFS= read -r pf_boot </proc/sys/kernel/random/boot_id 2>/dev/null && [ -n "$pf_boot" ] || return 1
    of_canon "$root"
    pf_mount=$(OF_PF_ROOT=$OF_CANON awk '
        BEGIN { r = ENVIRON["OF_PF_ROOT"] }
        {
            mp = $5
            if (mp == r || mp == "/" || index(r, mp "/") == 1) {
                if (length(mp) >= best) { best = length(mp); line = $0 }
            }
        }
        END { print line }' /proc/self/mountinfo) && [ -n "$pf_mount" ] || return 1
    pf_fs=$(stat -f -c '%i %t %b' -- "$root" 2>/dev/null) && [ -n "$pf_fs" ] || return 1
    pf_key="boot $pf_boot root $root mount $pf_mount fs $pf_fs"
}
if [ -n "$record" ] && pf_passed && [ -f "$record" ]; then
    pf_seen=
    { IFS= read -r pf_seen && IFS= read -r pf_rootfs; } <"$record" 2>/dev/null || pf_seen=
    if [ "$pf_seen" = "$pf_key" ] && [ -n "${pf_rootfs-}" ]; then
        printf 'ok preflight %s: %s can host overlay uppers: passed in this boot on the same mount\n' "$root" "$pf_rootfs"
        exit 0
    fi
fi

pf_has_overlay() {
    [ -r /proc/filesystems ] || return 1
    while IFS= read -r fs_line; do
        case $fs_line in
            *[[:blank:]]overlay | overlay) return 0 ;;
        esac
    done </proc/filesystems
    return 1
}
if ! pf_has_overlay; then
    probe="modprobe is not available"
    if of_have modprobe; then
        probe=$(modprobe overlay 2>&1) && probe="modprobe overlay succeeded"
    fi
    pf_has_overlay || of_die "overlayfs is not available in this kernel (not in /proc/filesystems; $probe)"
fi

if [ -e "$root" ] && [ ! -d "$root" ]; then
    of_die "instance root '$root' exists and is not a directory"
fi
mkdir -p -- "$root" || of_die "cannot create instance root '$root'"
of_fstype "$root"
rootfs=$OF_FSTYPE

tmp=
pf_cleanup() {
    [ -n "$tmp" ] || return 0
    if of_overlay_mounted_at "$tmp/merged"; then
        umount -- "$tmp/merged" 2>/dev/null || umount -l -- "$tmp/merged" 2>/dev/null || :
    fi
    if of_overlay_mounted_at "$tmp/merged"; then
        of_warn "could not unmount the test overlay '$tmp/merged'; remove '$tmp' by hand"
    else
        rm -rf -- "$tmp" 2>/dev/null || of_warn "could not remove the preflight temp dir '$tmp'"
    fi
    tmp=
}
trap 'pf_cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

tmp=$(mktemp -d "$root/.overlay-fleet-preflight.XXXXXX") ||
    of_die "cannot create a temp dir in instance root '$root' (filesystem type $rootfs)"

pf_fail() {
    of_kernel_says
    of_die "instance root '$root' (filesystem type $rootfs) cannot host an overlay upper: $1${OF_KERNEL:+; kernel: $OF_KERNEL}"
}

mkdir -p -- "$tmp/lower/dir" "$tmp/upper" "$tmp/work" "$tmp/merged" || pf_fail "cannot create test dirs in '$tmp'"
printf 'lower\n' >"$tmp/lower/file" && printf 'lower\n' >"$tmp/lower/dir/inner" ||
    pf_fail "cannot write test files in '$tmp'"

of_dmesg_mark
if ! out=$(mount -t overlay overlay -o "lowerdir=$tmp/lower,upperdir=$tmp/upper,workdir=$tmp/work,$pinned" "$tmp/merged" 2>&1); then
    of_oneline "$out"
    pf_fail "test mount failed: $OF_ONELINE"
fi
of_mi_at "$tmp/merged"
[ "$OF_AT_FSTYPE" = overlay ] || pf_fail "test mount on '$tmp/merged' is not visible in /proc/self/mountinfo"
if ! of_ovl_match "$pinned" "$OF_AT_SUPER" "$OF_AT_OPTS"; then
    pf_fail "the kernel did not keep the pinned options ($OF_MISMATCH)"
fi

m=$tmp/merged
[ "$(cat -- "$m/file" 2>/dev/null)" = lower ] || pf_fail "lower file not visible through the test overlay"

# Write: lands in the upper, not in the lower.
err=$( { printf 'upper\n' >"$m/new"; } 2>&1) || { of_oneline "$err"; pf_fail "write through the overlay failed: $OF_ONELINE"; }
[ -f "$tmp/upper/new" ] || pf_fail "a file written through the overlay did not land in the upper"
[ ! -e "$tmp/lower/new" ] || pf_fail "a file written through the overlay landed in the lower"

# Copy-up of a lower file.
err=$( { printf 'changed\n' >>"$m/dir/inner"; } 2>&1) || { of_oneline "$err"; pf_fail "copy-up of a lower file failed: $OF_ONELINE"; }

# Delete a lower file: whiteout (char device 0/0) in the upper, lower untouched.
err=$(rm -f -- "$m/file" 2>&1) || { of_oneline "$err"; pf_fail "deleting a lower file through the overlay failed: $OF_ONELINE"; }
[ ! -e "$m/file" ] || pf_fail "a deleted lower file is still visible through the overlay"
[ -c "$tmp/upper/file" ] || pf_fail "deleting a lower file left no whiteout (character device) in the upper"
[ "$(stat -c '%t:%T' -- "$tmp/upper/file")" = 0:0 ] || pf_fail "the whiteout in the upper is not a 0/0 character device"
[ -f "$tmp/lower/file" ] || pf_fail "deleting through the overlay removed the lower file"

# Delete and recreate a lower dir: opaque dir (needs trusted.* xattrs on the upper).
err=$(rm -rf -- "$m/dir" 2>&1) || { of_oneline "$err"; pf_fail "deleting a lower dir through the overlay failed: $OF_ONELINE"; }
err=$(mkdir -- "$m/dir" 2>&1) || { of_oneline "$err"; pf_fail "recreating a deleted dir through the overlay failed: $OF_ONELINE"; }
of_dir_empty "$m/dir" || pf_fail "a recreated dir still shows the lower's entries (not opaque)"
[ -f "$tmp/lower/dir/inner" ] || pf_fail "deleting a dir through the overlay changed the lower"

of_dmesg_mark
if ! out=$(umount -- "$m" 2>&1); then
    of_oneline "$out"
    pf_fail "unmounting the test overlay failed: $OF_ONELINE"
fi
pf_cleanup
trap - EXIT INT TERM HUP

lowerinfo="missing"
if [ -d "$lower" ]; then
    of_fstype "$lower"
    lowerinfo=$OF_FSTYPE
fi
# The pinned options are not repeated: the command that runs this names them (and the state keeps
# this output).
printf 'ok preflight %s: %s can host overlay uppers (whiteouts, opaque dirs, the pinned options); lower %s: %s\n' \
    "$root" "$rootfs" "$lower" "$lowerinfo"
# The pass recorded (written aside, then renamed): a failure to record costs only the next test.
# The key read before the test, or (no root then) now.
if [ -n "$record" ] && { [ -n "$pf_key" ] || pf_passed; }; then
    { printf '%s\n%s\n' "$pf_key" "$rootfs" >"$record.new" && mv -f -- "$record.new" "$record"; } 2>/dev/null ||
        rm -f -- "$record.new" 2>/dev/null || :
fi
