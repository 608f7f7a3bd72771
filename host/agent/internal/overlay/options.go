package overlay

import (
	"fmt"
	"strings"
	"syscall"
)

// Mount flags that package syscall does not name (linux/mount.h).
const (
	msNoSymFollow = 0x100
	msLazyTime    = 1 << 25
)

// flagOption is an option that mount(8) turns into a bit of mount(2)'s flags argument: set says
// whether the option sets the bit or clears it.
type flagOption struct {
	bit uintptr
	set bool
}

// flagOptions are the per-mount and superblock flags an instance's options may carry. Handed to
// overlayfs in the mount data they would be refused as unknown options, so they go to mount(2)'s
// flags instead, as mount(8) does.
var flagOptions = map[string]flagOption{
	"ro": {syscall.MS_RDONLY, true}, "rw": {syscall.MS_RDONLY, false},
	"nosuid": {syscall.MS_NOSUID, true}, "suid": {syscall.MS_NOSUID, false},
	"nodev": {syscall.MS_NODEV, true}, "dev": {syscall.MS_NODEV, false},
	"noexec": {syscall.MS_NOEXEC, true}, "exec": {syscall.MS_NOEXEC, false},
	"sync": {syscall.MS_SYNCHRONOUS, true}, "async": {syscall.MS_SYNCHRONOUS, false},
	"dirsync": {syscall.MS_DIRSYNC, true},
	"noatime": {syscall.MS_NOATIME, true}, "atime": {syscall.MS_NOATIME, false},
	"nodiratime": {syscall.MS_NODIRATIME, true}, "diratime": {syscall.MS_NODIRATIME, false},
	"relatime": {syscall.MS_RELATIME, true}, "norelatime": {syscall.MS_RELATIME, false},
	"strictatime": {syscall.MS_STRICTATIME, true}, "nostrictatime": {syscall.MS_STRICTATIME, false},
	"lazytime": {msLazyTime, true}, "nolazytime": {msLazyTime, false},
	"nosymfollow": {msNoSymFollow, true}, "symfollow": {msNoSymFollow, false},
	"silent": {syscall.MS_SILENT, true}, "loud": {syscall.MS_SILENT, false},
}

// overlayOptions are the overlayfs options an instance's options may carry, with the values each
// takes; nil for an option without a value.
var overlayOptions = map[string][]string{
	"index":               {"on", "off"},
	"nfs_export":          {"on", "off"},
	"metacopy":            {"on", "off"},
	"redirect_dir":        {"on", "follow", "nofollow", "off"},
	"xino":                {"on", "off", "auto"},
	"uuid":                {"on", "off", "null", "auto"},
	"verity":              {"on", "off", "require"},
	"volatile":            nil,
	"userxattr":           nil,
	"default_permissions": nil,
}

// Options is a checked option list of an instance's overlay mount, as given (without layers).
type Options struct {
	// List is every option in the order given.
	List []string
	// Overlay are the overlayfs options, for the mount data (MountData's extra).
	Overlay []string
	// Flags are the options that become mount(2) flags (ro, noatime, nodev, ...).
	Flags []string
}

// ParseOptions checks a comma-separated option list of an instance's overlay mount against the
// allow-list: overlayfs options with the values they take, and per-mount or superblock flags.
// Anything else is refused naming the option: mount(8) action words (bind, move, remount,
// make-*, ...), fstab-only options (nofail, x-systemd.*), layers (given apart), unknown values.
// "" is no option at all. label names the list in errors, e.g. `options "..."`.
func ParseOptions(label, list string) (Options, error) {
	var o Options
	if list == "" {
		return o, nil
	}
	for _, opt := range strings.Split(list, ",") {
		k, v, hasValue := strings.Cut(opt, "=")
		if _, ok := flagOptions[opt]; ok {
			o.Flags = append(o.Flags, opt)
			o.List = append(o.List, opt)
			continue
		}
		values, known := overlayOptions[k]
		switch {
		case opt == "":
			return Options{}, fmt.Errorf("%s contain an empty option", label)
		case strings.ContainsFunc(opt, isSpaceOrControl):
			return Options{}, fmt.Errorf("%s contain %q, with whitespace or control characters", label, opt)
		case k == "lowerdir" || k == "upperdir" || k == "workdir" || k == "lowerdir+" || k == "datadir+":
			return Options{}, fmt.Errorf("%s must not set %s: the layers are given apart", label, k)
		case !known:
			return Options{}, fmt.Errorf("%s contain %q, which is not an overlay mount option overlay-fleet accepts "+
				"(overlay options such as xino=, uuid=, volatile, redirect_dir=; flags such as ro, noatime, nodev)", label, opt)
		case values == nil && hasValue:
			return Options{}, fmt.Errorf("%s contain %q: %s takes no value", label, opt, k)
		case values != nil && !contains(values, v):
			return Options{}, fmt.Errorf("%s contain %q: %s takes %s", label, opt, k, strings.Join(values, ", "))
		}
		o.Overlay = append(o.Overlay, opt)
		o.List = append(o.List, opt)
	}
	return o, nil
}

// MountFlags are the mount(2) flags of the flag options, the later of two contrary ones winning.
func (o Options) MountFlags() uintptr {
	var flags uintptr
	for _, f := range o.Flags {
		fo := flagOptions[f]
		if fo.set {
			flags |= fo.bit
		} else {
			flags &^= fo.bit
		}
	}
	return flags
}

// String is the list as given.
func (o Options) String() string { return strings.Join(o.List, ",") }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
