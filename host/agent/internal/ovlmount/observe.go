package ovlmount

import (
	"fmt"
	"strings"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/mountinfo"
	"overlay-fleet/host/agent/internal/overlay"
)

// State is what is mounted on an instance's merged dir.
type State struct {
	// Merged is the merged dir, as asked.
	Merged string
	// Mounted says that the top-most mount on Merged is an overlay; the fields below are empty
	// when it is not.
	Mounted bool
	// Lower, Upper and Work are the overlay's layers: as the spec writes them where they are the
	// same directories, as mountinfo shows them where they differ (or the spec has none). Lower
	// joins several lower dirs with `:` (and data-only ones after `::`).
	Lower, Upper, Work string
	// Options are the spec's options when the overlay has them in effect (see overlay.Match),
	// else what it has in effect (overlay.Effective).
	Options string
	// Differences say how the overlay differs from the spec: layers, then options. None when it
	// is the spec's, or when the spec says nothing to compare with.
	Differences []string

	// Foreign is the top-most mount on Merged when it is not an overlay: something else is
	// mounted there.
	Foreign *mountinfo.Mount
	// Top is the overlay on Merged, when Mounted.
	Top mountinfo.Mount
}

// Observe reads the state of an instance from the mount table t: the top-most mount on
// canonMerged (Merged with its symlinks resolved, as mountinfo shows mount points), compared
// with the spec. same says whether two layer paths name the same directory
// (layout.SamePath on a box).
func Observe(t mountinfo.Table, canonMerged string, s Spec, p overlay.Params, same func(a, b string) bool) State {
	st := State{Merged: s.Merged}
	top, ok := t.Top(canonMerged)
	if !ok {
		return st
	}
	if top.FSType != "overlay" {
		st.Foreign = &top
		return st
	}
	st.Mounted, st.Top = true, top
	so := overlay.ParseSuperOptions(top.SuperOptions)

	shownLower := strings.Join(so.LowerDirs, ":")
	if len(so.DataDirs) > 0 {
		shownLower += "::" + strings.Join(so.DataDirs, ":")
	}
	sameLower := len(so.LowerDirs) == 1 && len(so.DataDirs) == 0 && same(so.LowerDirs[0], s.Lower)
	st.Lower = layer(&st, "lowerdir", shownLower, s.Lower, sameLower)
	st.Upper = layer(&st, "upperdir", so.UpperDir, s.Upper, so.UpperDir != "" && same(so.UpperDir, s.Upper))
	st.Work = layer(&st, "workdir", so.WorkDir, s.Work, so.WorkDir != "" && same(so.WorkDir, s.Work))

	if s.HasOptions {
		if diff := overlay.Match(overlay.Wanted(s.Options), so, top.MountOptions, p); len(diff) > 0 {
			st.Differences = append(st.Differences, diff...)
		} else {
			st.Options = s.Options.String()
			return st
		}
	}
	st.Options = overlay.Effective(so, top.MountOptions, p)
	return st
}

// layer is the value a State reports for one layer: the spec's when the overlay has the same
// directory, else what mountinfo shows, with a difference noted when the spec has one.
func layer(st *State, kind, shown, want string, same bool) string {
	switch {
	case want == "":
		return shown
	case same:
		return want
	case shown == "":
		st.Differences = append(st.Differences, fmt.Sprintf("no %s, want %q", kind, want))
	default:
		st.Differences = append(st.Differences, fmt.Sprintf("%s is %q, want %q", kind, shown, want))
	}
	return shown
}

// others are the overlays of t an instance is compared with (layout.Near): every overlay but
// those on canonMerged and those of the superblock of the instance's own overlay (a bind of it is
// no other overlay). withUpperOnly leaves out read-only overlays (such as a fold's views), which
// no instance writes into.
func others(t mountinfo.Table, canonMerged string, own State, withUpperOnly bool) []layout.Overlay {
	var out []layout.Overlay
	for _, m := range t {
		if m.FSType != "overlay" || m.MountPoint == canonMerged {
			continue
		}
		if own.Mounted && m.Major == own.Top.Major && m.Minor == own.Top.Minor {
			continue
		}
		so := overlay.ParseSuperOptions(m.SuperOptions)
		if withUpperOnly && so.UpperDir == "" {
			continue
		}
		out = append(out, layout.Overlay{
			MountPoint: m.MountPoint,
			Lower:      append(append([]string{}, so.LowerDirs...), so.DataDirs...),
			Upper:      so.UpperDir,
			Work:       so.WorkDir,
		})
	}
	return out
}

// mountsBelow are the mounts at or below dir (its symlinks resolved), as `<mount point>
// (<type>)`.
func mountsBelow(t mountinfo.Table, dir string) []string {
	canon := layout.Canon(dir)
	var out []string
	for _, m := range t {
		if layout.Within(m.MountPoint, canon) {
			out = append(out, fmt.Sprintf("%s (%s)", m.MountPoint, m.FSType))
		}
	}
	return out
}

// describe names a mount for an error: `tmpfs (source)`.
func describe(m *mountinfo.Mount) string {
	if m.Source == "" {
		return m.FSType
	}
	return fmt.Sprintf("%s (%s)", m.FSType, m.Source)
}
