package layout

import "fmt"

// Kind is a kind of overlay layer.
type Kind int

const (
	Upper Kind = iota
	Work
	Lower
)

// String is the layer's option name: upperdir, workdir, lowerdir.
func (k Kind) String() string {
	switch k {
	case Upper:
		return "upperdir"
	case Work:
		return "workdir"
	}
	return "lowerdir"
}

// Overlay is the layers of a mounted overlay, as mountinfo shows them.
type Overlay struct {
	// MountPoint is where it is mounted.
	MountPoint string
	// Lower are its lower dirs (data-only ones included); Upper and Work are "" for a read-only
	// overlay.
	Lower       []string
	Upper, Work string
}

// Dir is one of an instance's directories to compare with the layers of other overlays.
type Dir struct {
	// Label names it in findings: "upper", "work", "lower".
	Label string
	Path  string
	// Against are the kinds of layers it must stay apart from.
	Against []Kind
}

// Finding is a directory that touches a layer of another overlay.
type Finding struct {
	// Label and Path are the instance's directory.
	Label, Path string
	// Rel is how Path stands to Layer.
	Rel Rel
	// Kind is the kind of Layer: "upperdir", "workdir", "lowerdir", or "lowerdir generation"
	// for another generation of a lower.
	Kind string
	// Layer is the directory of the other overlay that Path touches.
	Layer string
	// MountPoint is the other overlay's.
	MountPoint string
}

// What is the finding without the instance's directory: `is inside the upperdir of another
// overlay on "/m" (upperdir "/u")`.
func (f Finding) What() string {
	return fmt.Sprintf("%s the %s of another overlay on %q (%s %q)", f.Rel, f.Kind, f.MountPoint, f.Kind, f.Layer)
}

// String is the whole finding: `upper dir "/x" is the same as the upperdir of ...`.
func (f Finding) String() string {
	return fmt.Sprintf("%s dir %q %s", f.Label, f.Path, f.What())
}

// Near is the first directory of dirs that is, is inside or contains a layer of one of others
// of the kinds it must stay apart from (a lower with its family of generations, see
// LowerRelation), overlay by overlay; false when there is none. Each distinct path is looked
// up on disk (stat, symlinks) once per call, however many pairs it is in.
func Near(dirs []Dir, others []Overlay) (Finding, bool) {
	return newResolver().near(dirs, others)
}

// near is Near with the resolver r.
func (r *resolver) near(dirs []Dir, others []Overlay) (Finding, bool) {
	for _, o := range others {
		for _, d := range dirs {
			for _, k := range d.Against {
				if f, ok := r.nearKind(d, k, o); ok {
					return f, true
				}
			}
		}
	}
	return Finding{}, false
}

// nearKind compares one directory with the layers of one kind of one overlay.
func (r *resolver) nearKind(d Dir, k Kind, o Overlay) (Finding, bool) {
	var layers []string
	switch k {
	case Upper:
		layers = []string{o.Upper}
	case Work:
		layers = []string{o.Work}
	case Lower:
		layers = o.Lower
	}
	for _, l := range layers {
		if l == "" {
			continue
		}
		f := Finding{Label: d.Label, Path: d.Path, Kind: k.String(), Layer: l, MountPoint: o.MountPoint}
		if k == Lower {
			var hit string
			f.Rel, hit = r.lowerRelation(d.Path, l)
			if hit != l {
				f.Kind, f.Layer = "lowerdir generation", hit
			}
		} else {
			f.Rel = r.relation(d.Path, l)
		}
		if f.Rel != Apart {
			return f, true
		}
	}
	return Finding{}, false
}
