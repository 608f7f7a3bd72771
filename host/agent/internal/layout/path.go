// Package layout says how the directories of overlay instances stand to each other and to the
// layers of the other overlays on a box: the same directory, one inside the other, or apart.
// Two overlays must never share or nest their upper or work dirs (with index=off the kernel only
// warns), and an instance must not write into what another reads as its lower. Paths are compared
// as written, by inode (another name of the same directory) and with symlinks resolved.
package layout

import (
	"fmt"
	"strings"
)

// ValidatePath checks a directory of an instance: an absolute, clean path (no `.` or `..`
// component, no repeated or trailing slash) that overlay mount options, mountinfo and fstab can
// all carry verbatim (no whitespace, no control characters, none of `,` `:` `\` `"`). Errors name
// the label and the value.
func ValidatePath(label, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s must not be empty", label)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%s %q must be an absolute path", label, p)
	case strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%s %q contains whitespace or control characters, which overlay options and fstab cannot carry", label, p)
	case strings.ContainsAny(p, `,:\"`):
		return fmt.Errorf(`%s %q contains one of , : \ " which overlay mount options cannot carry`, label, p)
	case p == "/":
		return fmt.Errorf("%s must not be the root directory", label)
	}
	for _, c := range strings.Split(p[1:], "/") {
		switch c {
		case "":
			return fmt.Errorf("%s %q must not have repeated or trailing slashes", label, p)
		case ".", "..":
			return fmt.Errorf("%s %q must not contain . or .. components", label, p)
		}
	}
	return nil
}

// Within says whether p is dir or below it, as written (both normalised: see norm).
func Within(p, dir string) bool {
	p, dir = norm(p), norm(dir)
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// norm collapses repeated slashes and strips trailing ones. `.` and `..` are kept: what they
// mean depends on the symlinks on the way (Canon resolves them).
func norm(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	return p
}
