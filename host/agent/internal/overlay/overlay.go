// Package overlay owns the options of an overlay mount: the options overlay-fleet pins on every
// mount, the mount data handed to mount(2), and the superblock options the kernel shows for a
// mounted overlay in /proc/self/mountinfo (Documentation/filesystems/overlayfs.rst).
package overlay

import (
	"fmt"
	"strings"

	"overlay-fleet/host/agent/internal/mountinfo"
)

// PinnedOptions are set on every overlay mount and fstab line, so that kernel or module defaults
// cannot change behaviour and offline changes of the lower stay legal. It must equal
// pinnedMountOptions in model/constants.ts.
const PinnedOptions = "index=off,nfs_export=off,redirect_dir=off,metacopy=off"

// MaxMountData is the longest mount data the legacy mount(2) call takes: one page, less the
// terminating NUL.
const MaxMountData = 4095

// Layers are the directories of an overlay.
type Layers struct {
	// Lower are the lower dirs, the top-most first.
	Lower []string
	// Upper is the upper dir; "" for a read-only overlay.
	Upper string
	// Work is the work dir, on the filesystem of Upper; "" when Upper is.
	Work string
}

// MountData is the data for mount(2) of the overlay on merged:
// `lowerdir=<l1>:<l2>...,upperdir=<upper>,workdir=<work>,<PinnedOptions>[,<extra>]`. extra is
// a comma-separated list of further options ("" for none); an option already pinned is left out,
// one that sets a pinned key to another value is refused. Layer paths must be absolute and free
// of the characters the option syntax gives a meaning (`,` `:` `\`) and of whitespace. The data
// must fit MaxMountData; errors name merged.
func MountData(merged string, layers Layers, extra string) (string, error) {
	if len(layers.Lower) == 0 {
		return "", fmt.Errorf("overlay on %q: no lower dir", merged)
	}
	if (layers.Upper == "") != (layers.Work == "") {
		return "", fmt.Errorf("overlay on %q: upper dir %q and work dir %q go together", merged, layers.Upper, layers.Work)
	}
	for _, l := range layers.Lower {
		if err := checkLayer("lower dir", l); err != nil {
			return "", fmt.Errorf("overlay on %q: %w", merged, err)
		}
	}
	opts := []string{"lowerdir=" + strings.Join(layers.Lower, ":")}
	if layers.Upper != "" {
		for _, c := range []struct{ label, path string }{{"upper dir", layers.Upper}, {"work dir", layers.Work}} {
			if err := checkLayer(c.label, c.path); err != nil {
				return "", fmt.Errorf("overlay on %q: %w", merged, err)
			}
		}
		opts = append(opts, "upperdir="+layers.Upper, "workdir="+layers.Work)
	}
	opts = append(opts, PinnedOptions)
	pinned := map[string]string{}
	for _, p := range strings.Split(PinnedOptions, ",") {
		k, v, _ := strings.Cut(p, "=")
		pinned[k] = v
	}
	if extra != "" {
		for _, o := range strings.Split(extra, ",") {
			k, v, _ := strings.Cut(o, "=")
			switch want, isPinned := pinned[k]; {
			case o == "":
				return "", fmt.Errorf("overlay on %q: options %q contain an empty option", merged, extra)
			case k == "lowerdir" || k == "upperdir" || k == "workdir" || k == "lowerdir+" || k == "datadir+":
				return "", fmt.Errorf("overlay on %q: options %q must not set %s: the layers are given apart", merged, extra, k)
			case isPinned && v == want:
				continue
			case isPinned:
				return "", fmt.Errorf("overlay on %q: option %q contradicts the pinned %s=%s", merged, o, k, want)
			case strings.ContainsFunc(o, isSpaceOrControl):
				return "", fmt.Errorf("overlay on %q: option %q contains whitespace or control characters", merged, o)
			}
			opts = append(opts, o)
		}
	}
	data := strings.Join(opts, ",")
	if len(data) > MaxMountData {
		return "", fmt.Errorf("overlay on %q: mount data is %d bytes, more than the %d that mount(2) takes; use shorter paths", merged, len(data), MaxMountData)
	}
	return data, nil
}

// checkLayer checks a layer path for MountData.
func checkLayer(label, path string) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("%s %q must be an absolute path", label, path)
	case strings.ContainsAny(path, ",:\\"):
		return fmt.Errorf("%s %q contains one of , : \\ which overlay options cannot carry", label, path)
	case strings.ContainsFunc(path, isSpaceOrControl):
		return fmt.Errorf("%s %q contains whitespace or control characters", label, path)
	}
	return nil
}

func isSpaceOrControl(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r < 0x20 || r == 0x7f
}

// SuperOptions are the superblock options of a mounted overlay, as mountinfo shows them.
type SuperOptions struct {
	// LowerDirs are the lower dirs, the top-most first.
	LowerDirs []string
	// DataDirs are the data-only lower dirs (after `::` in lowerdir, or datadir+=).
	DataDirs []string
	// UpperDir and WorkDir are "" for a read-only overlay.
	UpperDir, WorkDir string
	// Other are the remaining options in their order (rw, index=off, xino=on, ...).
	Other []string
}

// ParseSuperOptions reads the superblock options field of an overlay's mountinfo line (kept
// escaped by package mountinfo). The kernel shows lowerdir as the colon-separated list given at
// mount time (with overlayfs' own `\` escapes, e.g. `\:` for a colon in a path), or, for mounts
// made with the new mount API, as one lowerdir+= or datadir+= option per layer.
func ParseSuperOptions(field string) SuperOptions {
	var so SuperOptions
	for _, o := range mountinfo.Options(field) {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			lower, data, _ := strings.Cut(v, "::")
			so.LowerDirs = append(so.LowerDirs, splitLowerdir(lower)...)
			if data != "" {
				so.DataDirs = append(so.DataDirs, splitLowerdir(data)...)
			}
		case "lowerdir+":
			so.LowerDirs = append(so.LowerDirs, v)
		case "datadir+":
			so.DataDirs = append(so.DataDirs, v)
		case "upperdir":
			so.UpperDir = unescapeLayer(v)
		case "workdir":
			so.WorkDir = unescapeLayer(v)
		default:
			so.Other = append(so.Other, o)
		}
	}
	return so
}

// splitLowerdir splits a lowerdir value at its unescaped colons and undoes overlayfs' escapes.
func splitLowerdir(v string) []string {
	if v == "" {
		return nil
	}
	var dirs []string
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		case c == ':':
			dirs = append(dirs, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(dirs, b.String())
}

// unescapeLayer undoes overlayfs' `\` escapes in a single path.
func unescapeLayer(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
