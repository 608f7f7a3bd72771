package ovlmount

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/lock"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// LockName is the box lock that every change of an instance's mount holds, from its checks to
// its last mount call: an instance mounted at the same moment sees the other's overlay.
const LockName = "box"

// DefaultLockTimeout is how long a change waits for LockName.
const DefaultLockTimeout = 5 * time.Minute

// Box is the box the operations act on.
type Box struct {
	// Sys is the kernel.
	Sys System
	// Locks is the directory of the box's locks.
	Locks *lock.Dir
	// LockTimeout is how long to wait for LockName (and for docker.LockName); 0 means
	// DefaultLockTimeout (docker.DefaultLockTimeout).
	LockTimeout time.Duration
	// Docker is the box's docker engine, for a remount that stops the instance's container;
	// nil when there is none to use.
	Docker Containers
	// StopSettle is how long a remount waits, after stopping the instance's container, for the
	// mounts of the overlay in its mount namespace to go; 0 means DefaultStopSettle.
	StopSettle time.Duration
}

// DefaultStopSettle is how long a remount waits for a stopped container's mounts to go.
const DefaultStopSettle = 5 * time.Second

// lock takes the box lock for what (e.g. `mount of "/m"`).
func (b Box) lock(ctx context.Context, what string) (*lock.Lock, error) {
	if b.Locks == nil {
		return nil, fmt.Errorf("%s: no lock directory", what)
	}
	timeout := b.LockTimeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	l, err := b.Locks.Lock(ctx, LockName, timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return l, nil
}

// observe reads the mount table and the state of the instance's merged dir.
func (b Box) observe(s Spec) (mountinfo.Table, string, State, error) {
	t, err := b.Sys.MountTable()
	if err != nil {
		return nil, "", State{}, err
	}
	canon := layout.Canon(s.Merged)
	return t, canon, Observe(t, canon, s, b.Sys.Params(), layout.SamePath), nil
}

// namespaces are the box's other mount namespaces, for a change of the overlay on merged.
func (b Box) namespaces(merged string) ([]Namespace, error) {
	nss, err := b.Sys.Namespaces()
	if err != nil {
		return nil, fmt.Errorf("cannot tell whether the overlay at %q is in use in other mount namespaces: %w", merged, err)
	}
	return nss, nil
}

// Read reports what is mounted on s.Merged, compared with the rest of s (when given). Something
// other than an overlay mounted there is an error naming it.
func Read(b Box, s Spec) (State, error) {
	_, _, st, err := b.observe(s)
	if err != nil {
		return State{}, err
	}
	if st.Foreign != nil {
		return State{}, fmt.Errorf("merged dir %q is a mountpoint of %s, not an overlay", s.Merged, describe(st.Foreign))
	}
	return st, nil
}

// statDir says what is at path (symlinks followed).
func statDir(path string) (dirState, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dirMissing, nil
	case err != nil:
		return dirMissing, fmt.Errorf("cannot look at %q: %w", path, err)
	case !fi.IsDir():
		return dirNotDir, nil
	}
	return dirPresent, nil
}

// isEmptyDir says whether the directory at path has no entries; a missing one is empty.
func isEmptyDir(path string) (bool, error) {
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot list %q: %w", path, err)
	}
	return len(entries) == 0, nil
}
