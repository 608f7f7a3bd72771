package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"overlay-fleet/host/agent/internal/mountinfo"
)

// The kernel shows in an overlay's superblock options only the values that differ from its
// defaults (the overlay module's parameters): index=off,nfs_export=off,redirect_dir=off,
// metacopy=off usually show nothing at all; redirect_dir=off is kept as follow or nofollow; xino
// does not show when all layers share one filesystem; uuid=on shows or not depending on the
// upper's history. Match and Effective know these rules.

// ParamsDir is where the overlay module's parameters are.
const ParamsDir = "/sys/module/overlay/parameters"

// Params are the overlay module's parameters by name (index, nfs_export, metacopy, redirect_dir,
// redirect_always_follow, ...), as their files hold them (Y, N, ...): the defaults of the options
// a mount does not set. A parameter that is not there is unknown.
type Params map[string]string

// ReadParams reads the module parameters in dir (ParamsDir); an unreadable one is left out.
func ReadParams(dir string) Params {
	p := Params{}
	for _, name := range []string{"index", "nfs_export", "metacopy", "redirect_dir", "redirect_always_follow"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			p[name] = strings.TrimSpace(string(data))
		}
	}
	return p
}

// norm is the value the kernel keeps for key=value.
func (p Params) norm(key, value string) string {
	switch {
	case key == "redirect_dir" && value == "off":
		if p["redirect_always_follow"] == "N" {
			return "nofollow"
		}
		return "follow"
	case key == "index" || key == "nfs_export" || key == "metacopy":
		switch value {
		case "Y", "y", "1":
			return "on"
		case "N", "n", "0":
			return "off"
		}
	}
	return value
}

// def is the kernel's default value of key, and whether it is known.
func (p Params) def(key string) (string, bool) {
	yn := func(name, y, n string) (string, bool) {
		switch p[name] {
		case "Y":
			return y, true
		case "N":
			return n, true
		}
		return "", false
	}
	switch key {
	case "index", "nfs_export", "metacopy":
		return yn(key, "on", "off")
	case "redirect_dir":
		if v, ok := yn("redirect_dir", "on", ""); !ok || v != "" {
			return v, ok
		}
		return yn("redirect_always_follow", "follow", "nofollow")
	}
	return "", false
}

// Wanted is the whole option list of an instance's mount: PinnedOptions, then its own.
func Wanted(o Options) []string {
	return append(strings.Split(PinnedOptions, ","), o.List...)
}

// shownFlags are the flags a mounted overlay has, from its per-mount options (mountinfo field 6)
// and the flags among its superblock options (ro, sync, dirsync, lazytime, mand).
type shownFlags map[string]bool

func flagsShown(so SuperOptions, mountOptions string) shownFlags {
	f := shownFlags{}
	for _, o := range mountinfo.Options(mountOptions) {
		f[o] = true
	}
	for _, o := range so.Other {
		switch o {
		case "ro", "sync", "dirsync", "lazytime", "mand":
			f[o] = true
		}
	}
	return f
}

// atime is the access-time mode of a flag set: noatime, relatime or strictatime.
func (f shownFlags) atime() string {
	switch {
	case f["noatime"]:
		return "noatime"
	case f["relatime"]:
		return "relatime"
	}
	return "strictatime"
}

// wantedAtime is the access-time mode mount(2) gives for flags (fs/namespace.c).
func wantedAtime(flags uintptr) string {
	switch {
	case flags&syscall.MS_STRICTATIME != 0:
		return "strictatime"
	case flags&syscall.MS_NOATIME != 0:
		return "noatime"
	}
	return "relatime"
}

// simpleFlags are the flags compared bit by bit, in the order Effective writes them.
var simpleFlags = []struct {
	name string
	bit  uintptr
}{
	{"ro", syscall.MS_RDONLY}, {"nosuid", syscall.MS_NOSUID}, {"nodev", syscall.MS_NODEV},
	{"noexec", syscall.MS_NOEXEC}, {"sync", syscall.MS_SYNCHRONOUS}, {"dirsync", syscall.MS_DIRSYNC},
	{"lazytime", msLazyTime}, {"nodiratime", syscall.MS_NODIRATIME}, {"nosymfollow", msNoSymFollow},
}

// isFlagShown says whether a superblock option is a flag (compared apart from overlay options).
func isFlagShown(o string) bool {
	switch o {
	case "rw", "ro", "sync", "dirsync", "lazytime", "mand":
		return true
	}
	return false
}

// Match lists how a mounted overlay differs from the options want (Wanted: a checked list, the
// last of repeated options winning, as in the kernel), given its superblock options (layers
// apart) and per-mount options as mountinfo shows them: options asked for and not in effect,
// and options in effect that were not asked for. nil means the mount has the options asked for.
func Match(want []string, so SuperOptions, mountOptions string, p Params) []string {
	var diff []string
	add := func(s string) { diff = append(diff, s) }

	// Flags: the set mount(2) makes of those asked for, against those shown.
	var flagList []string
	last := map[string]string{} // key -> last value asked for
	asked := map[string]bool{}  // bare overlay options asked for
	for _, o := range want {
		if _, ok := flagOptions[o]; ok {
			flagList = append(flagList, o)
			continue
		}
		k, v, hasValue := strings.Cut(o, "=")
		if hasValue {
			last[k] = v
		} else {
			asked[o] = true
		}
	}
	wantFlags := Options{Flags: flagList}.MountFlags()
	shown := flagsShown(so, mountOptions)
	for _, f := range simpleFlags {
		switch w := wantFlags&f.bit != 0; {
		case w && !shown[f.name]:
			add(f.name + " asked for but not in effect")
		case !w && shown[f.name]:
			if f.name == "ro" {
				add("mounted read-only")
			} else {
				add("mounted with " + f.name + ", not asked for")
			}
		}
	}
	if w, s := wantedAtime(wantFlags), shown.atime(); w != s {
		add("access times " + w + " asked for but the mount has " + s)
	}

	// Overlay options asked for.
	soValues := map[string]string{}
	soBare := map[string]bool{}
	for _, o := range so.Other {
		if k, v, ok := strings.Cut(o, "="); ok {
			soValues[k] = v
		} else {
			soBare[o] = true
		}
	}
	for _, o := range want {
		if _, ok := flagOptions[o]; ok {
			continue
		}
		k, v, hasValue := strings.Cut(o, "=")
		if !hasValue {
			switch {
			case o == "volatile":
				if !soBare["volatile"] && soValues["fsync"] != "volatile" {
					add("volatile asked for but not in effect")
				}
			case !soBare[o]:
				add(o + " asked for but not in effect")
			}
			continue
		}
		if last[k] != v {
			continue // a later value of the key counts
		}
		want := p.norm(k, v)
		if got, ok := soValues[k]; ok {
			if p.norm(k, got) != want {
				add(o + " asked for but mounted with " + k + "=" + got)
			}
			continue
		}
		switch {
		case k == "xino": // not shown when all layers share one filesystem
		case k == "uuid" && want == "auto":
		case k == "uuid": // an explicit uuid shows; none shown means auto
			add(o + " asked for but mounted with uuid=auto")
		default:
			if def, known := p.def(k); known && def != want {
				add(o + " asked for but mounted with the default " + k + "=" + def)
			}
		}
	}

	// Overlay options in effect that were not asked for.
	for _, o := range so.Other {
		k, _, hasValue := strings.Cut(o, "=")
		switch {
		case isFlagShown(o), k == "uuid":
		case o == "fsync=volatile":
			if !asked["volatile"] {
				add("mounted with " + o + ", not asked for")
			}
		case hasValue:
			if _, ok := last[k]; !ok {
				add("mounted with " + o + ", not asked for")
			}
		case !asked[o]:
			add("mounted with " + o + ", not asked for")
		}
	}
	return diff
}

// Effective is the option list a mounted overlay has in effect, in the words of an instance's
// options (what Match takes as matching): each pinned key with its value in effect (shown, or
// the module's default; the pinned value when the default is unknown), written `off` when it is
// what `off` becomes; then the other overlay options shown, in their order (uuid=on and
// uuid=auto left out: what uuid=auto becomes); then the flags in effect other than the
// defaults.
func Effective(so SuperOptions, mountOptions string, p Params) string {
	var out []string
	soValues := map[string]string{}
	for _, o := range so.Other {
		if k, v, ok := strings.Cut(o, "="); ok {
			soValues[k] = v
		}
	}
	pinned := map[string]bool{}
	for _, po := range strings.Split(PinnedOptions, ",") {
		k, pv, _ := strings.Cut(po, "=")
		pinned[k] = true
		v, shown := soValues[k]
		if !shown {
			var known bool
			if v, known = p.def(k); !known {
				v = pv
			}
		}
		if p.norm(k, v) == p.norm(k, pv) {
			v = pv
		}
		out = append(out, k+"="+v)
	}
	for _, o := range so.Other {
		k, v, _ := strings.Cut(o, "=")
		switch {
		case isFlagShown(o), pinned[k]:
		case k == "uuid" && (v == "on" || v == "auto"):
		case o == "fsync=volatile":
			out = append(out, "volatile")
		default:
			out = append(out, o)
		}
	}
	shown := flagsShown(so, mountOptions)
	for _, f := range simpleFlags {
		if shown[f.name] {
			out = append(out, f.name)
		}
	}
	if a := shown.atime(); a != "relatime" {
		out = append(out, a)
	}
	return strings.Join(out, ",")
}
