// Package mountinfo reads the kernel's table of mounts, /proc/self/mountinfo (proc(5)). A line
// looks like
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// mount id, parent id, major:minor, root, mount point, per-mount options, zero or more optional
// fields ended by `-`, filesystem type, source, superblock options. Fields are separated by one
// space; the kernel escapes space, tab, newline and backslash in them as `\ooo` (octal).
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// SelfPath is the mount table of the calling process's mount namespace.
const SelfPath = "/proc/self/mountinfo"

// Mount is one line of mountinfo.
type Mount struct {
	// ID is the mount's unique id; ParentID that of its parent (itself for the root of the tree).
	ID, ParentID int
	// Major and Minor are the device of the filesystem (st_dev of its files).
	Major, Minor uint32
	// Root is the directory of the filesystem that is mounted (unescaped).
	Root string
	// MountPoint is where it is mounted, relative to the process's root (unescaped).
	MountPoint string
	// MountOptions are the per-mount options as the kernel wrote them (see Options).
	MountOptions string
	// OptionalFields are the tagged fields such as `shared:1` or `master:2`; often none.
	OptionalFields []string
	// FSType is the filesystem type, with a subtype after a `.` (unescaped).
	FSType string
	// Source is the filesystem's source (unescaped); "" for a filesystem that has none.
	Source string
	// SuperOptions are the superblock options as the kernel wrote them (see Options).
	SuperOptions string
}

// Table is the mounts of one mountinfo file, in its order.
type Table []Mount

// Read reads the mount table of the calling process's mount namespace.
func Read() (Table, error) {
	return ReadFile(SelfPath)
}

// ReadFile reads a mountinfo file.
func ReadFile(path string) (Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the mount table: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// maxLine bounds one line: overlay superblock options alone can take a page, and paths in the
// other fields up to PATH_MAX each, escaped.
const maxLine = 1 << 20

// Parse reads mountinfo lines. A line that does not have the form is an error naming its
// number: the table is the kernel's, so such a line means the reader is wrong.
func Parse(r io.Reader) (Table, error) {
	var t Table
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	for n := 1; sc.Scan(); n++ {
		if sc.Text() == "" {
			continue
		}
		m, err := ParseLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		t = append(t, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the mount table: %w", err)
	}
	return t, nil
}

// ParseLine reads one mountinfo line.
func ParseLine(line string) (Mount, error) {
	fields := strings.Split(line, " ")
	if len(fields) < 9 {
		return Mount{}, fmt.Errorf("mountinfo line %q has %d fields, want at least 9", line, len(fields))
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(fields[0]); err != nil {
		return Mount{}, fmt.Errorf("mountinfo line %q: mount id %q is not a number", line, fields[0])
	}
	if m.ParentID, err = strconv.Atoi(fields[1]); err != nil {
		return Mount{}, fmt.Errorf("mountinfo line %q: parent id %q is not a number", line, fields[1])
	}
	if m.Major, m.Minor, err = parseDevice(fields[2]); err != nil {
		return Mount{}, fmt.Errorf("mountinfo line %q: %w", line, err)
	}
	m.Root = Unescape(fields[3])
	m.MountPoint = Unescape(fields[4])
	m.MountOptions = fields[5]
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 {
		return Mount{}, fmt.Errorf("mountinfo line %q has no - after its optional fields", line)
	}
	if sep > 6 {
		m.OptionalFields = fields[6:sep]
	}
	// After the separator: type, source, super options. An empty source shows as an empty
	// field; a line with one field less has no source at all.
	rest := fields[sep+1:]
	switch len(rest) {
	case 3:
		m.FSType, m.Source, m.SuperOptions = Unescape(rest[0]), Unescape(rest[1]), rest[2]
	case 2:
		m.FSType, m.SuperOptions = Unescape(rest[0]), rest[1]
	default:
		return Mount{}, fmt.Errorf("mountinfo line %q has %d fields after -, want 3 (type, source, super options)", line, len(rest))
	}
	if m.FSType == "" {
		return Mount{}, fmt.Errorf("mountinfo line %q has no filesystem type", line)
	}
	return m, nil
}

// parseDevice reads a `major:minor` field.
func parseDevice(s string) (uint32, uint32, error) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("device %q is not major:minor", s)
	}
	major, err1 := strconv.ParseUint(maj, 10, 32)
	minor, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("device %q is not major:minor", s)
	}
	return uint32(major), uint32(minor), nil
}

// Options splits an option field (MountOptions or SuperOptions) at its commas and undoes the
// escapes of each option. The fields are kept escaped in Mount because the kernel escapes a
// comma inside a value (`\054`): unescaping first would split such a value.
func Options(field string) []string {
	if field == "" {
		return nil
	}
	opts := strings.Split(field, ",")
	for i, o := range opts {
		opts[i] = Unescape(o)
	}
	return opts
}

// Unescape undoes the kernel's octal escapes (`\ooo`) in a mountinfo field.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// Top is the top-most mount on mountPoint (as the kernel shows it: absolute, clean, relative to
// the process's root): of the mounts stacked there, the one no other mount there sits on. It
// reports false when nothing is mounted there.
func (t Table) Top(mountPoint string) (Mount, bool) {
	var at []Mount
	for _, m := range t {
		if m.MountPoint == mountPoint {
			at = append(at, m)
		}
	}
	for i := len(at) - 1; i >= 0; i-- {
		covered := false
		for _, o := range at {
			if o.ParentID == at[i].ID && o.ID != at[i].ID {
				covered = true
				break
			}
		}
		if !covered {
			return at[i], true
		}
	}
	if len(at) > 0 {
		return at[len(at)-1], true // a cycle cannot happen; the last one is the newest
	}
	return Mount{}, false
}
