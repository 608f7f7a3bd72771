package main

// foldtool drop <manifest> <upper>: what a switch to the generation a fold made removes from one
// instance's upper (host/lib-fold.sh's drop_folded runs it between the unmount and the mount on
// the new lower). The manifest (writeManifests) lists, in breadth-first order, what the fold
// examined in this upper: D folded, K kept, with the identity each entry had then.
//
//   - Once (marker <manifest>.drop-a): a folded entry deleted since the fold gets a whiteout, so
//     it does not come back from the new lower; an opaque directory the fold recorded loses its
//     opaque mark when the new lower's directory shows nothing the instance did not see.
//   - A non-directory folded (D) and unchanged since (type, inode, size, mtime, ctime; a whiteout:
//     any 0/0 character device) whose content (a symlink: its target) is also the new lower's is
//     removed: the new lower has it. The content is compared because a write through a shared
//     writable mapping to a page already dirty changes neither size nor times.
//   - A folded directory is removed once empty, when it is the same inode and has the new
//     lower's mode, owner, mtime and attributes; otherwise it stays. Below a directory that
//     stays opaque nothing is removed.
//   - A parent's mtime is put back after its entries go. Kept entries, private paths and
//     anything changed after the fold stay: the instance sees exactly what it saw before.
//
// Deciding (every non-directory judged before any is removed: removing one name of a hard-link
// group changes the ctime of the others) is separate from doing. Once all of it is done and on
// disk, the done-marker <manifest>.dropped says so: until then the drop is pending, and the
// instance must not be mounted on the new lower (host/lib-mount.sh completes it first).

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const manifestMagic = "# overlay-fleet fold manifest 1"

// Markers beside a manifest: phase A is done (it must run once), the whole drop is done.
const (
	markerPhaseA  = ".drop-a"
	markerDropped = ".dropped"
)

// dropLine is one entry of a manifest.
type dropLine struct {
	flag     string // D, Do, K, Ko
	mode     uint32
	identity string // "<mode hex> <ino> <size> <mtime> <ctime>" as the manifest has it
	ino      uint64
	size     string
	rel      string // relative to the upper, decoded
	raw      string // the path field without its R/E marker (encoded)
	bad      bool   // not an entry of the format: kept (phase A refuses it)
	text     string
}

func (l *dropLine) isDir() bool  { return l.mode&sIFMT == sIFDIR }
func (l *dropLine) folded() bool { return l.flag == "D" || l.flag == "Do" }

// What happens to one entry.
type dropVerdict int

const (
	dropKeep   dropVerdict = iota // stays in the upper (counted as kept)
	dropNone                      // not in the upper any more: nothing to do
	dropRemove                    // a non-directory, unchanged since the fold
	dropDir                       // a folded directory: removed if empty and unchanged
)

type dropper struct {
	manifest, upper, lower, ns string
	lines                      []*dropLine
	whiteouts, unopaqued       int
	removed, kept              int
	realDirs                   map[string]bool // beneath's memo: path -> a directory, not a symlink
}

func dropFail(format string, args ...any) { die("drop_folded: "+format, args...) }

func dropMain(args []string) {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "overlay-fleet: usage: drop_folded <manifest> <upper>")
		os.Exit(2)
	}
	d := &dropper{manifest: args[0], upper: normPath(args[1]), realDirs: map[string]bool{}}
	if st, err := os.Stat(d.manifest); err != nil || !st.Mode().IsRegular() {
		dropFail("manifest '%s' does not exist", d.manifest)
	}
	if st, err := lstat(d.upper); err != nil || !st.isDir() {
		dropFail("upper '%s' is not a directory", d.upper)
	}
	d.read()
	d.phaseA()
	verdicts := d.decide()
	d.remove(verdicts)
	writeMarker(d.manifest+markerDropped, d.upper)
	fmt.Fprintf(out, "dropped %s: removed=%d kept=%d whiteouts=%d unopaqued=%d\n", d.upper, d.removed, d.kept, d.whiteouts, d.unopaqued)
}

// normPath is of_norm (host/lib.sh): repeated slashes squeezed, trailing ones dropped.
func normPath(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	return p
}

// samePath is of_same_path: the same path as written, or the same object on disk.
func samePath(a, b string) bool {
	if normPath(a) == normPath(b) {
		return true
	}
	var sa, sb syscall.Stat_t
	return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// dec is the inverse of enc: R<path> verbatim, E<path> with \\ \n \t escapes.
func dec(field string) (string, bool) {
	switch {
	case strings.HasPrefix(field, "R"):
		return field[1:], true
	case strings.HasPrefix(field, "E"):
		var b strings.Builder
		s := field[1:]
		for i := 0; i < len(s); i++ {
			if s[i] != '\\' || i+1 == len(s) {
				b.WriteByte(s[i])
				continue
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
		}
		return b.String(), true
	}
	return "", false
}

// read parses the manifest: its header (written for this upper, the new generation, the xattr
// namespace), then every entry; the upper must not be mounted.
func (d *dropper) read() {
	f, err := os.Open(d.manifest)
	if err != nil {
		dropFail("cannot read '%s': %v", d.manifest, err)
	}
	defer f.Close()
	var manifestUpper string
	var entries []string
	magic, header := false, true
	d.ns = "trusted"
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if header && strings.HasPrefix(line, "#") {
			switch {
			case line == manifestMagic:
				magic = true
			case strings.HasPrefix(line, "# upper "):
				manifestUpper = strings.TrimPrefix(line, "# upper ")
			case strings.HasPrefix(line, "# lower "):
				d.lower = strings.TrimPrefix(line, "# lower ")
			case strings.HasPrefix(line, "# ns "):
				d.ns = strings.TrimPrefix(line, "# ns ")
			}
			continue
		}
		header = false
		if line != "" && !strings.HasPrefix(line, "#") {
			entries = append(entries, line)
		}
	}
	if err := sc.Err(); err != nil {
		dropFail("cannot read '%s': %v", d.manifest, err)
	}
	for _, line := range entries {
		d.lines = append(d.lines, parseDropLine(line))
	}
	if !magic {
		dropFail("'%s' is not an overlay-fleet fold manifest", d.manifest)
	}
	if d.ns != "trusted" && d.ns != "user" {
		dropFail("'%s' names an unknown xattr namespace '%s'", d.manifest, d.ns)
	}
	if !samePath(manifestUpper, d.upper) {
		dropFail("manifest '%s' was written for upper '%s', not '%s'", d.manifest, manifestUpper, d.upper)
	}
	if st, err := os.Stat(d.lower); err != nil || !st.IsDir() {
		dropFail("the generation '%s' of manifest '%s' does not exist", d.lower, d.manifest)
	}
	if mp := overlayWithUpper(d.upper); mp != "" {
		dropFail("upper '%s' is mounted (overlay on %s); unmount it first", d.upper, mp)
	}
}

// parseDropLine: `<flag> <mode-hex> <ino> <size> <mtime> <ctime> <path>`.
func parseDropLine(line string) *dropLine {
	f := strings.SplitN(line, " ", 7)
	if len(f) != 7 {
		return &dropLine{bad: true, text: line}
	}
	mode, err1 := strconv.ParseUint(f[1], 16, 32)
	ino, err2 := strconv.ParseUint(f[2], 10, 64)
	rel, ok := dec(f[6])
	if err1 != nil || err2 != nil || !ok || rel == "" {
		return &dropLine{bad: true, text: line}
	}
	return &dropLine{flag: f[0], mode: uint32(mode), identity: strings.Join(f[1:6], " "), ino: ino, size: f[3], rel: rel, raw: f[6][1:], text: line}
}

// overlayWithUpper: the mount point of an overlay whose upperdir is upper, or "".
func overlayWithUpper(upper string) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		dropFail("cannot read /proc/self/mountinfo to check that upper '%s' is not mounted: %v", upper, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		// `- <fstype> <source> <super options>`; an empty source is no field at all.
		if sep < 5 || sep+2 >= len(fields) || fields[sep+1] != "overlay" {
			continue
		}
		for _, opt := range strings.Split(fields[len(fields)-1], ",") {
			if u, ok := strings.CutPrefix(opt, "upperdir="); ok && samePath(unescapeMountinfo(u), upper) {
				return unescapeMountinfo(fields[4])
			}
		}
	}
	return ""
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a blank, ...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// opaqueValue: the value of <ns>.overlay.opaque on path ("y", "x" or "").
func (d *dropper) opaqueValue(path string) string {
	v, err := lgetxattr(path, d.ns+xattrOpaque)
	if err != nil {
		return ""
	}
	return string(v)
}

func exists(path string) bool {
	_, err := lstat(path)
	return err == nil
}

func isRealDir(path string) bool {
	st, err := lstat(path)
	return err == nil && st.isDir()
}

// beneath: every directory on the way from root to rel (rel itself aside) is a directory, not a
// symlink: an instance may have put a symlink where the fold saw a directory, and nothing here
// may act through it on what it points at.
func (d *dropper) beneath(root, rel string) bool {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		dir := root + "/" + rel[:i]
		ok, seen := d.realDirs[dir]
		if !seen {
			ok = isRealDir(dir)
			d.realDirs[dir] = ok
		}
		if !ok {
			return false
		}
	}
	return true
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// phaseA, once per manifest: whiteouts for folded entries deleted since the fold, opaque marks
// removed where the new lower adds nothing the instance did not see.
func (d *dropper) phaseA() {
	marker := d.manifest + markerPhaseA
	if exists(marker) {
		return
	}
	for _, l := range d.lines {
		if l.bad {
			dropFail("bad line in '%s': %s", d.manifest, l.text)
		}
		if !d.beneath(d.upper, l.rel) {
			continue
		}
		u := at(d.upper, l.rel)
		if exists(u) {
			if l.flag == "Do" && d.stillOpaqueButNeedNotBe(l, u) {
				if err := lremovexattr(u, d.ns+xattrOpaque); err != nil {
					dropFail("cannot remove the opaque mark of '%s': %v", u, err)
				}
				d.unopaqued++
			}
			continue
		}
		// Deleted since the fold: its directory must still be there (else the directory itself
		// is handled), and the new lower must have something to hide.
		parent := at(d.upper, parentOf(l.rel))
		pst, err := lstat(parent)
		if err != nil || !pst.isDir() || !d.beneath(d.lower, l.rel) || !exists(at(d.lower, l.rel)) {
			continue
		}
		if err := syscall.Mknod(u, sIFCHR|0o666, 0); err != nil { // as mknod(1): 0666 less the umask
			dropFail("cannot create a whiteout at '%s': %v", u, err)
		}
		_ = setMtime(parent, pst.mtime)
		d.whiteouts++
	}
	writeMarker(marker, d.upper)
}

// writeMarker records that what was done to upper is on disk: the upper's filesystem synced
// first, then the marker written and synced (a crash leaves either no marker or a true one).
func writeMarker(marker, upper string) {
	syncfs(upper)
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err == nil {
		_, err = f.WriteString(upper + "\n")
		if e := f.Sync(); err == nil {
			err = e
		}
		if e := f.Close(); err == nil {
			err = e
		}
	}
	if err != nil {
		dropFail("cannot write '%s': %v", marker, err)
	}
	syncfs(marker)
}

// stillOpaqueButNeedNotBe: the recorded opaque directory is still the same one, still opaque,
// and its mark would show nothing new (the new lower has no such directory, or unopaqueOK).
func (d *dropper) stillOpaqueButNeedNotBe(l *dropLine, u string) bool {
	st, err := lstat(u)
	if err != nil || !st.isDir() || st.ino != l.ino || d.opaqueValue(u) != opaqueYes {
		return false
	}
	low := at(d.lower, l.rel)
	return !d.beneath(d.lower, l.rel) || !isRealDir(low) || d.unopaqueOK(u, low)
}

// unopaqueOK: every name in lowerDir is also in upperDir (any entry, a whiteout included), and the
// same holds below for every directory present in both unless the upper one stays opaque.
func (d *dropper) unopaqueOK(upperDir, lowerDir string) bool {
	names, err := readNames(lowerDir)
	if err != nil {
		return false
	}
	for _, n := range names {
		u, low := upperDir+"/"+n, lowerDir+"/"+n
		if !exists(u) {
			return false
		}
		if isRealDir(low) && isRealDir(u) {
			switch d.opaqueValue(u) {
			case opaqueYes:
			case "":
				if !d.unopaqueOK(u, low) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

// keptUnder: the (encoded) directories, with a trailing /, that stay opaque: nothing below them
// may be dropped.
func (d *dropper) keptUnder() []string {
	var dirs []string
	for _, l := range d.lines {
		if l.bad || !l.isDir() || !d.beneath(d.upper, l.rel) || !isRealDir(at(d.upper, l.rel)) {
			continue
		}
		if d.opaqueValue(at(d.upper, l.rel)) != "" {
			dirs = append(dirs, l.raw+"/")
		}
	}
	return dirs
}

// decide judges every entry before anything is removed.
func (d *dropper) decide() []dropVerdict {
	under := d.keptUnder()
	verdicts := make([]dropVerdict, len(d.lines))
	for i, l := range d.lines {
		verdicts[i] = dropKeep
		if l.bad || !l.folded() || hasAnyPrefix(l.raw, under) || !d.beneath(d.upper, l.rel) {
			continue
		}
		u := at(d.upper, l.rel)
		st, err := lstat(u)
		switch {
		case l.isDir():
			verdicts[i] = dropDir
		case err != nil:
			verdicts[i] = dropNone
		case d.unchanged(l, st) && d.sameAsLower(l, u, st):
			verdicts[i] = dropRemove
		}
	}
	return verdicts
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// unchanged: the entry is what the fold saw; a whiteout matches any 0/0 character device (the
// kernel shares whiteout inodes, so their inode and ctime change with unrelated deletions).
func (d *dropper) unchanged(l *dropLine, now *stat) bool {
	if l.mode&sIFMT == sIFCHR && l.size == "0" && now.mode == l.mode && now.isCharWhiteout() {
		return true
	}
	return identityOf(now) == l.identity
}

// sameAsLower: the upper's regular file holds the new lower's content, its symlink the same
// target (what the instance reads after the switch is what it reads now).
func (d *dropper) sameAsLower(l *dropLine, u string, st *stat) bool {
	if !d.beneath(d.lower, l.rel) {
		return false
	}
	low := at(d.lower, l.rel)
	switch st.fileType() {
	case sIFREG:
		lst, err := lstat(low)
		if err != nil || lst.fileType() != sIFREG || lst.size != st.size {
			return false
		}
		return lst.dev == st.dev && lst.ino == st.ino || sameContent(u, low)
	case sIFLNK:
		tu, err1 := os.Readlink(u)
		tl, err2 := os.Readlink(low)
		return err1 == nil && err2 == nil && tu == tl
	}
	return true
}

func identityOf(st *stat) string {
	return fmt.Sprintf("%x %d %d %s %s", st.mode, st.ino, st.size, ts9(st.mtime), ts9(st.ctime))
}

// remove does what decide judged, children before their directories (the manifest backwards),
// each directory's mtime put back once its entries are gone.
func (d *dropper) remove(verdicts []dropVerdict) {
	curParent, dirty := "", false
	var curMtime syscall.Timespec
	type judged struct {
		path string
		st   *stat
	}
	var pending []judged
	flush := func() {
		var failed error
		for _, p := range pending {
			// Still what was judged (removing another name of its hard-link group changes only its ctime).
			if now, err := lstat(p.path); err != nil || now.mode != p.st.mode || now.ino != p.st.ino || now.size != p.st.size || now.mtime != p.st.mtime {
				d.removed--
				d.kept++
				continue
			}
			if err := syscall.Unlink(p.path); err != nil && !errors.Is(err, syscall.ENOENT) && failed == nil {
				failed = fmt.Errorf("%s: %w", p.path, err)
			}
		}
		pending = pending[:0]
		if dirty {
			_ = setMtime(curParent, curMtime)
		}
		if failed != nil {
			dropFail("cannot remove files in '%s': %v", curParent, failed)
		}
	}
	for i := len(d.lines) - 1; i >= 0; i-- {
		l, v := d.lines[i], verdicts[i]
		switch v {
		case dropNone:
			continue
		case dropKeep:
			d.kept++
			continue
		}
		parent := at(d.upper, parentOf(l.rel))
		if parent != curParent {
			flush()
			curParent, dirty = parent, false
		}
		u := at(d.upper, l.rel)
		st, err := lstat(u)
		if err != nil {
			continue
		}
		if v == dropDir && !d.sameEmptyDir(l, u) {
			d.kept++
			continue
		}
		if !dirty {
			if st, err := lstat(parent); err == nil {
				curMtime, dirty = st.mtime, true
			}
		}
		if v == dropDir {
			if err := syscall.Rmdir(u); err != nil {
				dropFail("cannot remove directory '%s': %v", u, err)
			}
		} else {
			pending = append(pending, judged{u, st})
		}
		d.removed++
	}
	flush()
}

// sameEmptyDir: a folded directory that may go: empty now, the inode the fold saw, and the new
// lower's mode, owner, mtime and attributes (overlay's own left aside).
func (d *dropper) sameEmptyDir(l *dropLine, u string) bool {
	st, err := lstat(u)
	if err != nil || !st.isDir() || st.ino != l.ino {
		return false
	}
	if names, err := readNames(u); err != nil || len(names) > 0 {
		return false
	}
	if !d.beneath(d.lower, l.rel) {
		return false
	}
	low, err := lstat(at(d.lower, l.rel))
	if err != nil || low.mode != st.mode || low.uid != st.uid || low.gid != st.gid || low.mtime != st.mtime {
		return false
	}
	return samePlainXattrs(u, at(d.lower, l.rel))
}

// samePlainXattrs: the same extended attributes, overlay's own (trusted/user.overlay.*) aside.
func samePlainXattrs(a, b string) bool {
	return sameXattrsBut(a, b, func(name string) bool {
		return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
	})
}
