package ovlmount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/overlay"
)

// Converge makes the overlay on s.Merged the spec's: it creates the missing upper, work and
// merged dirs, mounts the overlay, or, when a different one is mounted there (other layers or
// options), unmounts it and mounts the spec's. An overlay that already is the spec's is left
// alone. It refuses, before anything changes, dirs that another overlay uses (layout.Near), a
// merged dir that is a mountpoint of something else or not mounted but not empty, and a
// missing lower. A busy unmount fails naming the processes and changes nothing. After the mount
// it reads the table back: an overlay without the spec's layers and options in effect is
// unmounted again and reported. A remount is refused, before anything changes, while the overlay
// is also mounted where its unmount does not reach (another mount namespace: see
// overlayHolders), and the new overlay is not mounted while the old one is still mounted
// anywhere. The checks and the mount hold the box lock.
//
// A remount with s.Container set also holds the box's docker lock: the instance's container, if
// it runs, is stopped before the unmount (its bind of the merged dir would keep the old overlay
// alive, and it would never see the new one) and started again after the mount; a container that
// does not run stays as it is, and one that is not the instance's is refused, never touched. When
// the mount fails the container is left stopped, and the error says so.
func Converge(ctx context.Context, b Box, s Spec) (State, error) {
	data, err := overlay.MountData(s.Merged, overlay.Layers{Lower: []string{s.Lower}, Upper: s.Upper, Work: s.Work}, strings.Join(s.Options.Overlay, ","))
	if err != nil {
		return State{}, err
	}
	if st, err := statDir(s.Lower); err != nil || st != dirPresent {
		return State{}, fmt.Errorf("lower dir %q does not exist or is not a directory (is the disk mounted?); refusing to mount %q", s.Lower, s.Merged)
	}

	l, err := b.lock(ctx, fmt.Sprintf("mount of %q", s.Merged))
	if err != nil {
		return State{}, err
	}
	defer l.Unlock()

	f, err := b.gather(s)
	if err != nil {
		return State{}, err
	}
	if f.remount() && s.Container != "" {
		dl, err := b.dockerLock(ctx, fmt.Sprintf("remount of %q with its container %q", s.Merged, s.Container))
		if err != nil {
			return State{}, err
		}
		defer dl.Unlock()
		if f.container, err = b.gatherContainer(ctx, s, strings.Join(f.state.Differences, "; ")); err != nil {
			return State{}, err
		}
	}
	p, err := decideConverge(s, f)
	if err != nil {
		return State{}, err
	}
	return b.carryOut(ctx, s, p, data)
}

// gather collects the facts decideConverge needs.
func (b Box) gather(s Spec) (facts, error) {
	t, canon, st, err := b.observe(s)
	if err != nil {
		return facts{}, err
	}
	f := facts{state: st, dirs: map[string]dirState{}}
	dirs := []layout.Dir{
		{Label: "upper", Path: s.Upper, Against: []layout.Kind{layout.Upper, layout.Work, layout.Lower}},
		{Label: "work", Path: s.Work, Against: []layout.Kind{layout.Upper, layout.Work, layout.Lower}},
		{Label: "lower", Path: s.Lower, Against: []layout.Kind{layout.Upper, layout.Work}},
	}
	if c, ok := layout.Near(dirs, others(t, canon, st, true)); ok {
		f.conflict = &c
	}
	for _, d := range []string{s.Upper, s.Work, s.Merged} {
		if f.dirs[d], err = statDir(d); err != nil {
			return facts{}, err
		}
	}
	if f.mergedEmpty, err = isEmptyDir(s.Merged); err != nil && f.dirs[s.Merged] == dirPresent {
		return facts{}, err
	}
	if st.Mounted && len(st.Differences) > 0 { // a remount: who else has it mounted
		nss, err := b.namespaces(s.Merged)
		if err != nil {
			return facts{}, err
		}
		f.holders = overlayHolders(t, canon, st.Top, nss)
	}
	return f, nil
}

// carryOut does what decideConverge planned and reads the result back.
func (b Box) carryOut(ctx context.Context, s Spec, p plan, data string) (State, error) {
	for _, d := range p.mkdir {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return State{}, fmt.Errorf("cannot create the directory %q: %w", d, err)
		}
	}
	if !p.mount {
		return b.verify(s, "", false)
	}
	if p.stop != "" {
		if err := b.stopForRemount(ctx, s, p); err != nil {
			return State{}, err
		}
	}
	st, oldGone, err := b.mount(s, p, data)
	switch {
	case err != nil && !oldGone: // the old overlay still mounted: the container goes on with it
		return State{}, fmt.Errorf("%w%s", err, b.startAgain(ctx, p.stop))
	case err != nil:
		return State{}, fmt.Errorf("%w%s", err, leftStopped(p.stop))
	case p.stop != "":
		if err := b.Docker.Start(context.WithoutCancel(ctx), p.stop); err != nil {
			return State{}, fmt.Errorf("the overlay at %q is remounted (%s), but container %q did not start again: %w", s.Merged, p.reason, p.stop, err)
		}
	}
	return st, nil
}

// mount unmounts the overlay planned to be replaced, if any, mounts the spec's and reads it
// back. oldGone says that the replaced overlay was unmounted.
func (b Box) mount(s Spec, p plan, data string) (st State, oldGone bool, err error) {
	if p.unmount {
		if err := b.Sys.Unmount(s.Merged); err != nil {
			users := ""
			if errors.Is(err, syscall.EBUSY) {
				if _, _, st, rerr := b.observe(s); rerr == nil && st.Mounted {
					users = inUseBy(b.Sys.Users(st.Top))
				}
			}
			return State{}, false, fmt.Errorf("overlay at %q must be remounted (%s) but cannot be unmounted, it is busy: %w%s; stop what uses it and retry", s.Merged, p.reason, err, users)
		}
		// What the checks could not tell (a copy the propagation did not reach): the old overlay
		// must be gone everywhere before another one is mounted on its upper and work dirs.
		t, err := b.Sys.MountTable()
		if err != nil {
			return State{}, true, err
		}
		nss, err := b.namespaces(s.Merged)
		if err != nil {
			return State{}, true, err
		}
		if h := superblockHolders(t, p.replaced, nss); len(h) > 0 {
			return State{}, true, fmt.Errorf("overlay at %q must be remounted (%s): it is unmounted here but still mounted elsewhere: %s; not mounting another overlay on its upper and work dirs (stop what uses it there, then retry)", s.Merged, p.reason, heldBy(h))
		}
	}
	mark := b.Sys.KernelLog()
	defer mark.Close()
	if err := b.Sys.Mount(s.Merged, data, s.Options.MountFlags()); err != nil {
		msg := fmt.Sprintf("mounting the overlay on %q with options %q failed: %v", s.Merged, data, err)
		if k := mark.Since(); k != "" {
			msg += "; kernel: " + k
		}
		if p.unmount {
			msg += fmt.Sprintf("; the overlay it replaced (%s) is unmounted", p.reason)
		}
		return State{}, p.unmount, errors.New(msg)
	}
	st, err = b.verify(s, mark.Since(), true)
	return st, p.unmount, err
}

// verify reads the overlay on s.Merged back after a mount (mounted; kernel: what the kernel
// logged since) or after no change: it must be the spec's, else a new mount is unmounted again.
func (b Box) verify(s Spec, kernel string, mounted bool) (State, error) {
	_, _, st, err := b.observe(s)
	if err != nil {
		return State{}, err
	}
	if kernel != "" {
		kernel = " (kernel: " + kernel + ")"
	}
	switch {
	case !st.Mounted:
		return State{}, fmt.Errorf("mount reported success but %q is not an overlay mount%s", s.Merged, kernel)
	case len(st.Differences) > 0 && !mounted:
		return State{}, fmt.Errorf("the overlay on %q is not what was asked for (%s)", s.Merged, strings.Join(st.Differences, "; "))
	case len(st.Differences) > 0:
		why := strings.Join(st.Differences, "; ")
		if err := b.Sys.Unmount(s.Merged); err != nil {
			return State{}, fmt.Errorf("the overlay mounted on %q is not what was asked for (%s)%s, and cannot be unmounted again: %w", s.Merged, why, kernel, err)
		}
		return State{}, fmt.Errorf("the overlay mounted on %q is not what was asked for (%s)%s; unmounted it again", s.Merged, why, kernel)
	}
	return st, nil
}
