package ovlmount

import (
	"fmt"
	"syscall"

	"overlay-fleet/host/agent/internal/mountinfo"
	"overlay-fleet/host/agent/internal/overlay"
)

// System is the kernel as the operations use it: Linux on a box, a fake in tests.
type System interface {
	// MountTable is the mount table of the calling process's mount namespace.
	MountTable() (mountinfo.Table, error)
	// Mount mounts an overlay on merged with the mount data and flags of mount(2).
	Mount(merged, data string, flags uintptr) error
	// Unmount unmounts what is mounted on top of merged.
	Unmount(merged string) error
	// KernelLog marks the kernel log now: the mark tells the overlay messages logged since.
	KernelLog() KernelMark
	// Users names the processes that use the mount m (those with their working or root
	// directory or an open file on it), for an error about a busy mount.
	Users(m mountinfo.Mount) []string
	// Params are the overlay module's parameters (the defaults of unset options).
	Params() overlay.Params
	// Namespaces are the box's other mount namespaces (those of its processes but the
	// caller's), each with its mount table.
	Namespaces() ([]Namespace, error)
}

// KernelMark is a place in the kernel log.
type KernelMark interface {
	// Since is what the kernel logged about overlays since the mark, on one line ("" for
	// nothing, or when the log cannot be read).
	Since() string
	// Close releases the mark.
	Close()
}

// Linux is the System of a box.
type Linux struct{}

var _ System = Linux{}

// MountTable reads /proc/self/mountinfo.
func (Linux) MountTable() (mountinfo.Table, error) { return mountinfo.Read() }

// Mount calls mount(2) with type and source "overlay".
func (Linux) Mount(merged, data string, flags uintptr) error {
	if err := syscall.Mount("overlay", merged, "overlay", flags, data); err != nil {
		return fmt.Errorf("mount(2): %w", err)
	}
	return nil
}

// Unmount calls umount2(2) without flags: a busy mount stays, and says so (EBUSY).
func (Linux) Unmount(merged string) error {
	if err := syscall.Unmount(merged, 0); err != nil {
		return fmt.Errorf("umount(2): %w", err)
	}
	return nil
}

// KernelLog marks /dev/kmsg.
func (Linux) KernelLog() KernelMark { return markKmsg(kmsgPath) }

// Users scans /proc.
func (Linux) Users(m mountinfo.Mount) []string { return users(procDir, m.Major, m.Minor) }

// Namespaces scans /proc.
func (Linux) Namespaces() ([]Namespace, error) { return namespaces(procDir) }

// Params reads the module parameters.
func (Linux) Params() overlay.Params { return overlay.ReadParams(overlay.ParamsDir) }
