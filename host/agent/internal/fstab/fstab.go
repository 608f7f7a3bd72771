// Package fstab owns the format of /etc/fstab as overlay-fleet edits it: the managed line of an
// instance, recognised by its marker option, among foreign lines that are kept byte for byte.
//
// A managed line looks like
//
//	overlay <merged> overlay <options>,x-overlay-fleet=<box>/<name> 0 0
//
// util-linux and systemd ignore options that start with `x-`, so the marker changes nothing at
// mount time. Table is the parsed content of a file; Editor makes the atomic, locked edits of
// a file on disk.
package fstab

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
)

// MarkerKey is the key of the option that marks a managed line; its value is the instance id.
const MarkerKey = "x-overlay-fleet"

// Entry is one fstab entry with its fields decoded (fstab(5) names them fs_spec, fs_file,
// fs_vfstype, fs_mntops, fs_freq and fs_passno). Freq and PassNo are empty when the line omits
// them.
type Entry struct {
	Spec    string
	File    string
	VFSType string
	MntOps  string
	Freq    string
	PassNo  string
}

// Managed is the managed line of one instance as found in a table.
type Managed struct {
	// ID is the instance id, the value of the marker option.
	ID string
	// Merged is the mount point (fs_file), decoded.
	Merged string
	// Options are the mount options (fs_mntops), decoded, without the marker.
	Options string
	// Line is the whole line as in the file, without its newline.
	Line string
	// LineNo is the number of the line in the file, from 1.
	LineNo int
}

// line is one line of a table.
type line struct {
	// raw is the line as in the file, without its newline.
	raw string
	// unterminated says that no newline follows the line: only the last line of a file can be.
	unterminated bool
	// written says that this edit wrote the line (Set), so a verifier should check it.
	written bool
}

// Table is the content of an fstab file as lines. Lines that are not managed lines pass through
// every edit unchanged, byte for byte, including a last line without a newline (unless a line is
// appended after it: then it gets its newline).
type Table struct {
	lines []line
}

// Parse splits the content of an fstab file into lines. It never fails: lines it cannot read
// as entries are foreign lines like comments.
func Parse(data []byte) *Table {
	t := &Table{}
	for rest := data; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.lines = append(t.lines, line{raw: string(rest), unterminated: true})
			break
		}
		t.lines = append(t.lines, line{raw: string(rest[:i])})
		rest = rest[i+1:]
	}
	return t
}

// Bytes is the content of the table as a file.
func (t *Table) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range t.lines {
		b.WriteString(l.raw)
		if !l.unterminated {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// ParseEntry reads one line as an fstab entry: fields separated by blanks (spaces and tabs), with
// their escapes decoded. It reports false for blank lines, comments and lines with fewer than
// two fields.
func ParseEntry(raw string) (Entry, bool) {
	fields := strings.FieldsFunc(raw, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
		return Entry{}, false
	}
	var e Entry
	for i, dst := range []*string{&e.Spec, &e.File, &e.VFSType, &e.MntOps, &e.Freq, &e.PassNo} {
		if i < len(fields) {
			*dst = Unescape(fields[i])
		}
	}
	return e, true
}

// markerID is the instance id of a managed line: the value of its first marker option. It
// reports false for a line that is not an entry or has no marker.
func markerID(raw string) (string, Entry, bool) {
	if !strings.Contains(raw, MarkerKey+"=") {
		return "", Entry{}, false
	}
	e, ok := ParseEntry(raw)
	if !ok {
		return "", Entry{}, false
	}
	for _, o := range strings.Split(e.MntOps, ",") {
		if v, found := strings.CutPrefix(o, MarkerKey+"="); found {
			return v, e, true
		}
	}
	return "", Entry{}, false
}

// withoutMarker is an option list without its marker options.
func withoutMarker(mntops string) string {
	var kept []string
	for _, o := range strings.Split(mntops, ",") {
		if key, _, _ := strings.Cut(o, "="); key != MarkerKey {
			kept = append(kept, o)
		}
	}
	return strings.Join(kept, ",")
}

// FormatLine is the managed line of an instance, without a newline:
// `overlay <merged> overlay <options>,x-overlay-fleet=<id> 0 0`, each field escaped. It checks
// the id, the merged dir and the options first.
func FormatLine(id, merged, options string) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	if err := ValidatePath("merged dir", merged); err != nil {
		return "", err
	}
	if err := ValidateOptions(options); err != nil {
		return "", err
	}
	return "overlay " + Escape(merged) + " overlay " + Escape(options+","+MarkerKey+"="+id) + " 0 0", nil
}

// Lookup finds the managed line of an instance: the first one, when a hand edit left several.
func (t *Table) Lookup(id string) (Managed, bool) {
	for i, l := range t.lines {
		if got, e, ok := markerID(l.raw); ok && got == id {
			return Managed{ID: id, Merged: e.File, Options: withoutMarker(e.MntOps), Line: l.raw, LineNo: i + 1}, true
		}
	}
	return Managed{}, false
}

// IDs are the instance ids of all managed lines, in file order, each once.
func (t *Table) IDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, l := range t.lines {
		if id, _, ok := markerID(l.raw); ok && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// Set makes the managed line of an instance `overlay <merged> overlay <options>,<marker> 0 0`:
// it replaces the first line of the id in place and drops further ones, or appends the line when
// the table has none. Another entry (foreign, or of another instance) on the same mount point is
// a conflict: Set refuses it, naming the line by number only (options may hold credentials).
func (t *Table) Set(id, merged, options string) error {
	want, err := FormatLine(id, merged, options)
	if err != nil {
		return err
	}
	for i, l := range t.lines {
		if got, _, ok := markerID(l.raw); ok && got == id {
			continue
		}
		if e, ok := ParseEntry(l.raw); ok && filepath.Clean(e.File) == merged {
			return fmt.Errorf("line %d already has an entry for %q; refusing to add the line of %s", i+1, merged, id)
		}
	}
	kept := t.lines[:0:0]
	placed := false
	for _, l := range t.lines {
		if got, _, ok := markerID(l.raw); ok && got == id {
			if !placed {
				kept = append(kept, line{raw: want, written: true})
				placed = true
			}
			continue
		}
		kept = append(kept, l)
	}
	if !placed {
		if n := len(kept); n > 0 {
			kept[n-1].unterminated = false
		}
		kept = append(kept, line{raw: want, written: true})
	}
	t.lines = kept
	return nil
}

// Remove drops every managed line of an instance.
func (t *Table) Remove(id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	kept := t.lines[:0:0]
	for _, l := range t.lines {
		if got, _, ok := markerID(l.raw); !ok || got != id {
			kept = append(kept, l)
		}
	}
	t.lines = kept
	return nil
}

// written are the lines this edit wrote: their numbers (from 1) and mount points.
func (t *Table) written() []WrittenLine {
	var w []WrittenLine
	for i, l := range t.lines {
		if !l.written {
			continue
		}
		if e, ok := ParseEntry(l.raw); ok {
			w = append(w, WrittenLine{LineNo: i + 1, MountPoint: e.File})
		}
	}
	return w
}
