// Package ovlmount owns the overlay mount of one overlay-fleet instance on a box: its upper, work
// and merged directories and the overlay mounted on the merged dir with the pinned options. It
// reads what is mounted there (Read), makes the mount what an instance asks for (Converge: mount,
// or unmount and mount again, since a remount cannot change an overlay's layers) and takes it
// down (Remove, optionally purging the upper and work dirs).
//
// Each operation first gathers what the box has (the mount table, the directories, the mount
// tables of the box's other mount namespaces), then decides with pure functions (Observe,
// decideConverge, CheckLayout, CheckPurge, overlayHolders and the other holders) and only then
// acts, all changes under the box lock. A remount stops the instance's running container around
// the unmount and the mount (Spec.Container, decideContainer). The kernel calls go through System
// and the docker calls through Containers, so that the whole of an operation runs in tests
// without root.
package ovlmount

import (
	"fmt"
	"path/filepath"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/overlay"
)

// Spec is an instance's overlay as asked for. Read takes Merged alone; Lower, Upper, Work and
// Options, when given, are what the mount is compared with.
type Spec struct {
	// Merged is the mount point.
	Merged string
	// Lower is the lower dir (one); Upper and Work the instance's upper and work dirs.
	Lower, Upper, Work string
	// Options are the instance's mount options, as given; the pinned ones are always added.
	Options overlay.Options
	// HasOptions says that Options were given: a read by Merged alone has none to compare.
	HasOptions bool
	// Container is the instance's docker container, by name ("" for none): Converge stops it
	// before a remount's unmount, when it runs, and starts it again after the mount.
	Container string
}

// CheckLayout refuses directories the kernel would only report as "wrong fs type, bad option",
// or not at all: one of the instance's four dirs (lower, upper, work, merged) that is, or is
// inside, another. Paths are compared as written (they are clean); what is on disk is
// Converge's to check.
func CheckLayout(s Spec) error {
	dirs := []struct{ label, path string }{{"lower", s.Lower}, {"upper", s.Upper}, {"work", s.Work}, {"merged", s.Merged}}
	for _, a := range dirs {
		for _, b := range dirs {
			if a.label == b.label || a.path == "" || b.path == "" {
				continue
			}
			if layout.Within(a.path, b.path) {
				return fmt.Errorf("%s dir %q must not be the same as or inside the %s dir %q", a.label, a.path, b.label, b.path)
			}
		}
	}
	return nil
}

// CheckPurge refuses a purge that cannot be shown to touch only the instance's own dirs: the
// merged dir must be `<instanceDir>/mnts` and the upper and work dirs `<instanceDir>/upper` and
// `<instanceDir>/work` beside it, as the plan lays an instance out. So a lower, or any dir
// given by mistake, is never removed.
func CheckPurge(merged, upper, work string) error {
	if filepath.Base(merged) != "mnts" || filepath.Dir(merged) == "/" {
		return fmt.Errorf("refusing to purge %q and %q: the merged dir %q is not <instanceDir>/mnts, so they cannot be shown to be the instance's own", upper, work, merged)
	}
	inst := filepath.Dir(merged)
	if want := filepath.Join(inst, "upper"); upper != want {
		return fmt.Errorf("refusing to purge %q: the upper dir must be %q, beside the merged dir %q", upper, want, merged)
	}
	if want := filepath.Join(inst, "work"); work != want {
		return fmt.Errorf("refusing to purge %q: the work dir must be %q, beside the merged dir %q", work, want, merged)
	}
	return nil
}
