package ovlmount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// maxUnmounts bounds the overlays Remove takes off one merged dir (stacked mounts).
const maxUnmounts = 16

// Remove unmounts the overlays on s.Merged (none mounted is no error), removes the merged dir
// when it is empty and, when purge is set, the upper and work dirs (s.Upper, s.Work; CheckPurge
// must have passed): never before the unmount, never one that another overlay uses (as a layer,
// or a layer inside it) or that has something mounted inside it or is bound elsewhere, and never
// anything but these two dirs and what is below them. Something other than an overlay mounted on
// s.Merged is refused; so is an overlay that is also mounted where the unmount does not reach
// (another mount namespace: a container's bind of it, a private copy; see overlayHolders), naming
// the process and namespace, before anything changes; a busy unmount fails naming the
// processes, the overlay still mounted. After the unmount, a purge is refused while the overlay
// is still mounted anywhere. It holds the box lock.
func Remove(ctx context.Context, b Box, s Spec, purge bool) (State, error) {
	l, err := b.lock(ctx, fmt.Sprintf("unmount of %q", s.Merged))
	if err != nil {
		return State{}, err
	}
	defer l.Unlock()

	t, canon, st, err := b.observe(Spec{Merged: s.Merged})
	if err != nil {
		return State{}, err
	}
	if st.Foreign != nil {
		return State{}, fmt.Errorf("%q is a mountpoint of %s, not an overlay; refusing to unmount it", s.Merged, describe(st.Foreign))
	}
	var nss []Namespace
	if st.Mounted || purge {
		if nss, err = b.namespaces(s.Merged); err != nil {
			return State{}, err
		}
	}
	if purge { // refused before anything changes; checked again after the unmount
		if err := checkPurgeable(t, others(t, canon, st, false), s); err != nil {
			return State{}, err
		}
		if err := checkPurgeHolders(t, nss, s); err != nil {
			return State{}, err
		}
	}

	var unmounted []mountinfo.Mount
	for n := 0; ; n++ {
		if n > 0 {
			if t, canon, st, err = b.observe(Spec{Merged: s.Merged}); err != nil {
				return State{}, err
			}
			if st.Mounted {
				if nss, err = b.namespaces(s.Merged); err != nil {
					return State{}, err
				}
			}
		}
		if st.Foreign != nil {
			return State{}, fmt.Errorf("%q is a mountpoint of %s, not an overlay; refusing to unmount it", s.Merged, describe(st.Foreign))
		}
		if !st.Mounted {
			break
		}
		if n == maxUnmounts {
			return State{}, fmt.Errorf("%q is still mounted after %d unmounts", s.Merged, n)
		}
		if h := overlayHolders(t, canon, st.Top, nss); len(h) > 0 {
			return State{}, fmt.Errorf("cannot unmount the overlay at %q: it is also mounted where its unmount does not reach: %s%s; stop the container or processes using it there and retry", s.Merged, heldBy(h), inUseBy(b.Sys.Users(st.Top)))
		}
		if err := b.Sys.Unmount(s.Merged); err != nil {
			users := ""
			if errors.Is(err, syscall.EBUSY) {
				users = inUseBy(b.Sys.Users(st.Top))
			}
			return State{}, fmt.Errorf("cannot unmount the overlay at %q, it is busy: %w%s; stop the container or processes using it and retry", s.Merged, err, users)
		}
		unmounted = append(unmounted, st.Top)
	}

	if err := removeIfEmpty(s.Merged); err != nil {
		return State{}, err
	}
	if purge {
		t, err := b.Sys.MountTable()
		if err != nil {
			return State{}, err
		}
		if nss, err = b.namespaces(s.Merged); err != nil {
			return State{}, err
		}
		for _, m := range unmounted {
			if h := superblockHolders(t, m, nss); len(h) > 0 {
				return State{}, fmt.Errorf("refusing to purge %q and %q: the overlay unmounted from %q is still mounted elsewhere: %s", s.Upper, s.Work, s.Merged, heldBy(h))
			}
		}
		if err := checkPurgeable(t, others(t, "", State{}, false), s); err != nil {
			return State{}, err
		}
		if err := checkPurgeHolders(t, nss, s); err != nil {
			return State{}, err
		}
		for _, d := range []string{s.Upper, s.Work} {
			if err := os.RemoveAll(d); err != nil {
				return State{}, fmt.Errorf("cannot remove %q: %w", d, err)
			}
		}
	}
	return State{Merged: s.Merged}, nil
}

// checkPurgeHolders refuses to purge the upper or work dir of s when a mount in own (the
// agent's table) or in another namespace of nss is a bind of it or of a dir inside it
// (dirHolders).
func checkPurgeHolders(own mountinfo.Table, nss []Namespace, s Spec) error {
	for _, d := range []string{s.Upper, s.Work} {
		if h := dirHolders(own, layout.Canon(d), nss); len(h) > 0 {
			return fmt.Errorf("refusing to purge %q: it, or a dir inside it, is mounted elsewhere: %s", d, heldBy(h))
		}
	}
	return nil
}

// checkPurgeable refuses to purge the upper or work dir of s when it is, is inside or contains a
// layer of one of the overlays ovls (a lower with its generations), or when something is mounted
// at or below it (t).
func checkPurgeable(t mountinfo.Table, ovls []layout.Overlay, s Spec) error {
	all := []layout.Kind{layout.Lower, layout.Upper, layout.Work}
	for _, d := range []string{s.Upper, s.Work} {
		if f, ok := layout.Near([]layout.Dir{{Label: "", Path: d, Against: all}}, ovls); ok {
			return fmt.Errorf("refusing to purge %q: it %s", d, f.What())
		}
		if below := mountsBelow(t, d); len(below) > 0 {
			return fmt.Errorf("refusing to purge %q: something is mounted inside it: %s", d, strings.Join(below, ", "))
		}
	}
	return nil
}

// removeIfEmpty removes the merged dir when it is an empty directory (not a symlink); one that
// holds something is left in place.
func removeIfEmpty(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return nil
	}
	empty, err := isEmptyDir(dir)
	if err != nil || !empty {
		return nil
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove the merged dir %q: %w", dir, err)
	}
	return nil
}
