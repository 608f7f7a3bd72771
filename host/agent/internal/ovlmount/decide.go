package ovlmount

import (
	"fmt"
	"strings"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// dirState is what is at one of an instance's directories.
type dirState int

const (
	dirMissing dirState = iota
	dirPresent
	dirNotDir // something that is not a directory
)

// facts are what Converge looks at on the box before it decides.
type facts struct {
	// state is what is mounted on the merged dir, compared with the spec.
	state State
	// conflict is the first of the instance's dirs that touches a layer of another overlay.
	conflict *layout.Finding
	// dirs says what is at the upper, work and merged dirs.
	dirs map[string]dirState
	// mergedEmpty says that the merged dir has no entries (true when it is missing).
	mergedEmpty bool
	// holders are the mounts of the overlay on the merged dir that its unmount would leave
	// mounted (overlayHolders); gathered only when it is to be remounted.
	holders []Holder
	// container is the instance's container (Spec.Container) as the engine reports it; looked
	// at only when the overlay is to be remounted, else nil.
	container *containerFacts
}

// remount says that the facts show an overlay on the merged dir other than the spec's.
func (f facts) remount() bool {
	return f.state.Mounted && len(f.state.Differences) > 0
}

// plan is what Converge does, in this order.
type plan struct {
	// mkdir are the directories to create (with their parents).
	mkdir []string
	// unmount says to unmount the overlay on the merged dir first, replaced, because of reason.
	unmount  bool
	reason   string
	replaced mountinfo.Mount
	// mount says to mount the overlay.
	mount bool
	// stop is the instance's running container, stopped before the unmount and started again
	// after the mount ("" for none).
	stop string
}

// decideConverge decides how to make the box's overlay on s.Merged the spec's, or refuses. An
// overlay that already is the spec's is left alone (an empty plan but for missing dirs). A
// remount stops the instance's container when it runs (decideContainer).
func decideConverge(s Spec, f facts) (plan, error) {
	// Two overlays must never share an upper or work dir, nor nest one in the other (with
	// index=off the kernel only warns); an upper or work dir must not be (in) another overlay's
	// lower, nor the lower (in) another's upper or work: either way one instance writes into
	// what another reads as unchanging.
	if f.conflict != nil {
		return plan{}, fmt.Errorf("%s; refusing to mount %q", f.conflict, s.Merged)
	}
	var p plan
	for _, d := range []string{s.Upper, s.Work, s.Merged} {
		switch f.dirs[d] {
		case dirNotDir:
			return plan{}, fmt.Errorf("%q exists and is not a directory; refusing to mount %q", d, s.Merged)
		case dirMissing:
			p.mkdir = append(p.mkdir, d)
		}
	}
	st := f.state
	switch {
	case st.Foreign != nil:
		return plan{}, fmt.Errorf("merged dir %q is already a mountpoint of %s, not an overlay; refusing to mount over it", s.Merged, describe(st.Foreign))
	case st.Mounted && len(st.Differences) == 0:
		return p, nil
	case st.Mounted:
		reason := strings.Join(st.Differences, "; ")
		stop, err := decideContainer(s, f.container, reason)
		if err != nil {
			return plan{}, err
		}
		if len(f.holders) > 0 && stop == "" {
			// Unmounted here, it would live on there, and the new overlay would share its upper.
			// (With the instance's container to stop, what holds it is looked at again once it
			// is stopped.)
			return plan{}, fmt.Errorf("overlay at %q must be remounted (%s) but it is also mounted where its unmount does not reach: %s; stop the container or processes using it there and retry", s.Merged, reason, heldBy(f.holders))
		}
		p.unmount, p.reason, p.replaced, p.stop = true, reason, st.Top, stop
	case !f.mergedEmpty:
		return plan{}, fmt.Errorf("merged dir %q is not mounted but not empty (something wrote into the bare mountpoint, e.g. a container started before the overlay); move its content away, then retry", s.Merged)
	}
	p.mount = true
	return p, nil
}
