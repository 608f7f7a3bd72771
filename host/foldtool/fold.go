package main

// The fold. For each instance, in index order, a read-only overlay `lowerdir=<upper>:<current>`
// (the view) shows what the instance sees. Every entry of its upper is a claim on its path:
//
//	whiteout (char 0/0, or a zero-size file the view does not show)  -> the path is absent
//	directory                                                          -> a directory (mode, owner, xattrs)
//	anything else                                                      -> this object
//
// plus, in an opaque directory and in every directory below one (the kernel merges nothing of
// the lower there, at any depth), every entry of the current lower the upper does not have:
// absent. decide() says what an entry's claim means against the earlier instances' claims;
// apply (stage) and commit (verify + record) put it into the staging tree, a hard-link farm of
// the current generation.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	ruleLowestIndex = "lowest-index-wins"
	ruleNewest      = "newest-wins" // by mtime of the upper entries; ties: lowest index
)

type claimKind int

const (
	claimAbsent claimKind = iota // the path does not exist in the instance's view
	claimDir                     // a directory with this mode, owner and attributes
	claimObject                  // this non-directory object
)

// claim: the instance whose version of a path is in the staging tree.
type claim struct {
	inst      int
	kind      claimKind
	mtime     syscall.Timespec
	fromUpper bool  // an upper entry (a hidden lower entry has no time of its own)
	same      []int // later instances whose identical version it is
}

// holders: the instances whose version of the path the claim is.
func (c *claim) holders() []int { return append([]int{c.inst}, c.same...) }

type verdict int

const (
	verdictSkip  verdict = iota // the view disagrees with the upper: kept in the upper
	verdictApply                // this instance's version goes into the new generation
	verdictSame                 // identical to what an earlier instance put there
	verdictLost                 // a conflict another instance won
)

type entry struct {
	rel     string
	flag    string // its manifest line: D folded, K kept (empty: none)
	st      *stat  // upper entry when first seen (its identity in the manifest)
	kind    claimKind
	verdict verdict
	prev    *claim // the earlier claim on rel, if any
	descend bool   // a directory whose entries are folded too
}

type manifestLine struct {
	flag string // D folded, K kept; `o` appended for an opaque directory
	st   *stat
	rel  string
}

type instance struct {
	index           int
	name, ns, upper string
	view            string
	manifest        []manifestLine
	won             map[string]int // manifest line of each non-directory this instance put in
	hiding          sync.Map       // rel -> true: an opaque directory of the upper, or one below it
}

// hidesLower: the instance's view of directory rel shows nothing of the lower's, because rel or
// a directory above it is opaque in the upper (its parent was folded a level before it).
func (in *instance) hidesLower(rel string, opaque bool) bool {
	_, below := in.hiding.Load(parentOf(rel))
	if opaque || rel != "" && below {
		in.hiding.Store(rel, true)
		return true
	}
	return false
}

type conflict struct {
	winner int
	others map[int]bool
}

// firstCopy: the staged copy of a hard-link group of the upper; ready once it is there.
type firstCopy struct {
	rel   string
	ready chan struct{}
}

type dirTime struct {
	rel   string
	mtime syscall.Timespec
}

type folder struct {
	current, fromGen, staging, work, target, targetGen, manifests, rule string
	private                                                             []string
	insts                                                               []*instance

	claims    map[string]*claim
	conflicts map[string]*conflict
	dirTimes  []dirTime
	firstCopy map[uint64]*firstCopy // hard links of the current instance, by upper inode
	mu        sync.Mutex            // claims, conflicts, firstCopy, counters, dirTimes, out
	views     []string
	done      bool
	pauseAt   string
	times     bool // OVERLAY_FLEET_FOLD_TIMES=1: the time of each phase on stderr
	lastPhase time.Time
	walked    bool

	files, bytes, deleted, skipped int64
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

func at(root, rel string) string {
	if rel == "" {
		return root
	}
	return root + "/" + rel
}

func (f *folder) isPrivate(rel string) bool {
	for _, p := range f.private {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return true
		}
	}
	return false
}

func (f *folder) cleanup() {
	for _, v := range f.views {
		if syscall.Unmount(v, 0) != nil {
			_ = syscall.Unmount(v, syscall.MNT_DETACH)
		}
	}
	f.views = nil
	for i := 0; i < 3; i++ { // a second try when the signal came while a copy was being written
		err := os.RemoveAll(f.work)
		if !f.done {
			err = errors.Join(err, os.RemoveAll(f.staging), os.RemoveAll(f.manifests+".partial"))
		}
		if err == nil {
			break
		}
	}
}

func (f *folder) run() {
	if err := os.Mkdir(f.work, 0o700); err != nil {
		die("cannot create the work dir '%s': %v", f.work, err)
	}
	if err := linkFarm(f.current, f.staging); err != nil {
		die("cannot build the hard-link farm of '%s' in '%s': %v", f.current, f.staging, err)
	}
	f.phase("farm")
	f.pause("farm")
	for _, in := range f.insts {
		f.pause(fmt.Sprintf("instance-%d", in.index+1))
		f.foldInstance(in)
		f.phase("instance " + in.name)
		go syncfs(f.staging) // start writing back while the next instance is folded
	}
	for _, d := range f.dirTimes {
		if err := setMtime(at(f.staging, d.rel), d.mtime); err != nil {
			die("cannot set the mtime of '%s': %v", at(f.staging, d.rel), err)
		}
	}
	if st, err := lstat(f.current); err == nil {
		_ = setMtime(f.staging, st.mtime)
	}
	for _, in := range f.insts {
		in.keepPartialLinkGroups()
	}
	nConflicts := f.reportConflicts()
	f.pause("manifests")
	f.writeManifests()
	f.phase("directory times, manifests")
	f.pause("rename")
	syncfs(f.staging)
	if err := os.Rename(f.staging, f.target); err != nil {
		die("cannot rename '%s' to '%s': %v", f.staging, f.target, err)
	}
	f.phase("sync, rename")
	f.done = true
	syncfs(f.target)
	runCleanup()
	fmt.Fprintf(out, "folded %s from %s: files=%d bytes=%d deleted=%d conflicts=%d skipped=%d\n",
		f.targetGen, f.fromGen, f.files, f.bytes, f.deleted, nConflicts, f.skipped)
}

func (f *folder) phase(name string) {
	if f.times {
		now := time.Now()
		fmt.Fprintf(os.Stderr, "fold phase %s: %.3fs\n", name, now.Sub(f.lastPhase).Seconds())
		f.lastPhase = now
	}
}

// foldInstance folds one instance's upper, directory by directory, breadth first.
func (f *folder) foldInstance(in *instance) {
	in.view = fmt.Sprintf("%s/v%d", f.work, in.index+1)
	if err := os.Mkdir(in.view, 0o700); err != nil {
		die("cannot create '%s': %v", in.view, err)
	}
	opts := "lowerdir=" + in.upper + ":" + f.current + ",redirect_dir=nofollow,metacopy=off"
	if in.ns == "user" {
		opts += ",userxattr"
	}
	if err := syscall.Mount("overlay", in.view, "overlay", syscall.MS_RDONLY, opts); err != nil {
		die("instance '%s': cannot mount the read-only view of '%s' on '%s' (ro,%s): %v", in.name, in.upper, f.current, opts, err)
	}
	f.views = append(f.views, in.view)
	f.firstCopy = map[uint64]*firstCopy{}
	// Written back before any identity is taken: a later write through a shared writable mapping
	// then faults again and changes the file's times (on filesystems that write back; drop.go
	// compares content as well, for those that do not, like tmpfs).
	syncfs(in.upper)
	// Breadth first, one level at a time; the directories of a level are folded in parallel
	// (each is its own part of the staging tree), their manifest lines kept in level order.
	for depth, level := 1, []string{""}; len(level) > 0; depth++ {
		if depth > 1 {
			f.pause(fmt.Sprintf("level-%d", depth))
		}
		results := make([][]*entry, len(level))
		next := make([][]string, len(level))
		work := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < min(len(level), 2*runtime.NumCPU()); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					results[i], next[i] = f.foldDir(in, level[i])
				}
			}()
		}
		for i := range level {
			work <- i
		}
		close(work)
		wg.Wait()
		level = nil
		for i := range results {
			in.record(results[i])
			level = append(level, next[i]...)
		}
	}
	if err := syscall.Unmount(in.view, 0); err != nil {
		die("cannot unmount the view '%s': %v", in.view, err)
	}
	f.views = f.views[:len(f.views)-1]
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return readNamesOf(d)
}

// readNamesOf: the sorted names of an open directory, which it closes.
func readNamesOf(d *os.File) ([]string, error) {
	defer d.Close()
	names, err := d.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// foldDir folds the entries of directory rel of the upper: decide and stage every entry, then
// verify each one. Returns the entries (with their manifest flags) and the subdirectories to fold
// next.
func (f *folder) foldDir(in *instance, rel string) ([]*entry, []string) {
	d, err := openBeneath(in.upper, rel, syscall.O_RDONLY|syscall.O_DIRECTORY)
	if gone(err) {
		return nil, nil // replaced since its level was walked: nothing below it is folded
	}
	var names []string
	if err == nil {
		names, err = readNamesOf(d)
	}
	if err != nil {
		die("instance '%s': cannot read '%s': %v", in.name, at(in.upper, rel), err)
	}
	var batch []*entry
	for _, n := range names {
		r := join(rel, n)
		if f.isPrivate(r) {
			continue
		}
		st, err := lstat(at(in.upper, r))
		if err != nil {
			continue // gone meanwhile
		}
		e := &entry{rel: r, st: st}
		f.decide(in, e)
		f.stage(in, e)
		batch = append(batch, e)
	}
	if !f.walked { // the upper's root, folded alone
		f.walked = true
		f.pause("walk")
	}
	var next []string
	for _, e := range batch {
		if f.commit(in, e) {
			next = append(next, e.rel)
		}
	}
	if v, _ := lgetxattr(at(in.upper, rel), in.ns+xattrOpaque); in.hidesLower(rel, string(v) == opaqueYes) {
		f.hiddenBelowOpaque(in, rel, names)
	}
	return batch, next
}

// decide: what the instance's view says about e, against the earlier instances' claims.
func (f *folder) decide(in *instance, e *entry) {
	// Only a whiteout (char 0/0, or a zero-size file with the whiteout attribute) hides its
	// upper entry: the view says which.
	switch {
	case e.st.isCharWhiteout() || e.st.fileType() == sIFREG && e.st.size == 0:
		view, _ := lstat(at(in.view, e.rel))
		switch {
		case view == nil:
			e.kind = claimAbsent
		case view.isDir():
			e.verdict = verdictSkip
			return
		default:
			e.kind = claimObject
		}
	case e.st.isDir():
		e.kind = claimDir
	default:
		e.kind = claimObject
	}
	f.mu.Lock()
	e.prev = f.claims[e.rel]
	f.mu.Unlock()
	p := e.prev
	switch {
	case p == nil:
		e.verdict = verdictApply
		e.descend = true
		return
	case e.kind == claimDir:
		// a directory of an earlier instance is merged; a deleted or replaced one wins whole
		e.descend = p.kind == claimDir
		if e.descend && sameDirMeta(at(in.view, e.rel), at(f.staging, e.rel)) {
			e.verdict = verdictSame
		} else {
			e.verdict = verdictLost
		}
		return
	case e.kind == p.kind && (e.kind == claimAbsent || sameObject(at(in.view, e.rel), at(f.staging, e.rel))):
		e.verdict = verdictSame
		return
	}
	e.verdict = verdictLost
	if f.rule == ruleNewest && p.kind != claimDir && p.fromUpper && after(e.st.mtime, p.mtime) {
		e.verdict = verdictApply
	}
}

func after(a, b syscall.Timespec) bool {
	return a.Sec > b.Sec || (a.Sec == b.Sec && a.Nsec > b.Nsec)
}

// stage copies a winning non-directory into the staging tree (before it is verified).
func (f *folder) stage(in *instance, e *entry) {
	if e.kind != claimObject || e.verdict != verdictApply {
		return
	}
	dst := at(f.staging, e.rel)
	if err := os.RemoveAll(dst); err != nil {
		die("cannot remove '%s': %v", dst, err)
	}
	if e.st.fileType() == sIFREG && e.st.nlink > 1 {
		f.mu.Lock()
		first, linked := f.firstCopy[e.st.ino]
		if !linked {
			first = &firstCopy{rel: e.rel, ready: make(chan struct{})}
			f.firstCopy[e.st.ino] = first
		}
		f.mu.Unlock()
		if linked {
			<-first.ready
			if err := os.Link(at(f.staging, first.rel), dst); err != nil {
				die("cannot link '%s': %v", dst, err)
			}
			return
		}
		defer close(first.ready)
	}
	if err := copyEntry(at(in.view, e.rel), in.upper, e.rel, dst, e.st); err != nil && !gone(err) {
		die("instance '%s': %v", in.name, err)
	}
}

// stable: the upper entry is what it was when it was decided (a whiteout: any whiteout; a
// directory: the same directory; anything else: the same inode, size, mtime and ctime).
func stable(e *entry, now *stat) bool {
	b := e.st
	if now == nil || now.mode != b.mode {
		return false
	}
	switch {
	case e.kind == claimAbsent && e.verdict != verdictSkip:
		return now.size == b.size && now.rdev == b.rdev
	case b.isDir():
		return now.ino == b.ino
	}
	return now.ino == b.ino && now.size == b.size && now.mtime == b.mtime && now.ctime == b.ctime
}

// commit verifies e and records it (manifest, claim, report). True: fold its entries too.
func (f *folder) commit(in *instance, e *entry) bool {
	now, _ := lstat(at(in.upper, e.rel))
	if e.verdict == verdictSkip || !stable(e, now) {
		if e.verdict == verdictApply && e.kind == claimObject {
			f.revert(e)
		}
		f.skip(in, e)
		return false
	}
	switch e.verdict {
	case verdictSame:
		if e.kind != claimDir {
			f.mu.Lock()
			e.prev.same = append(e.prev.same, in.index)
			f.mu.Unlock()
		}
		e.flag = "D"
		return e.kind == claimDir
	case verdictLost:
		f.conflict(e.rel, e.prev.inst, in.index)
		e.flag = "K"
		return e.kind == claimDir && e.descend
	}
	// verdictApply
	switch e.kind {
	case claimObject:
		staged, _ := lstat(at(f.staging, e.rel))
		if staged == nil || staged.mode != e.st.mode || staged.size != e.st.size || staged.mtime != e.st.mtime ||
			staged.uid != e.st.uid || staged.gid != e.st.gid {
			f.revert(e)
			f.skip(in, e)
			return false
		}
		f.mu.Lock()
		f.files++
		if e.st.fileType() == sIFREG {
			f.bytes += e.st.size
		}
		f.mu.Unlock()
	case claimAbsent:
		if removeStaged(at(f.staging, e.rel)) {
			f.mu.Lock()
			f.deleted++
			f.mu.Unlock()
		}
	case claimDir:
		f.stageDir(in, e)
	}
	f.mu.Lock()
	if e.kind == claimDir {
		f.dirTimes = append(f.dirTimes, dirTime{e.rel, e.st.mtime})
	}
	f.claims[e.rel] = &claim{inst: in.index, kind: e.kind, mtime: e.st.mtime, fromUpper: true}
	f.mu.Unlock()
	if e.prev != nil { // newest-wins: the earlier instances' version is replaced
		for _, i := range e.prev.holders() {
			f.conflict(e.rel, in.index, i)
			f.keep(i, e.rel)
		}
	}
	e.flag = "D"
	return e.kind == claimDir
}

// stageDir makes the staged path a directory with the mode, owner and attributes of the view's.
func (f *folder) stageDir(in *instance, e *entry) {
	dst := at(f.staging, e.rel)
	if st, _ := lstat(dst); st != nil && !st.isDir() {
		removeStaged(dst)
	}
	if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		die("cannot create the directory '%s': %v", dst, err)
	}
	if err := os.Lchown(dst, int(e.st.uid), int(e.st.gid)); err != nil {
		die("cannot set the owner of '%s': %v", dst, err)
	}
	if err := syscall.Chmod(dst, e.st.mode&0o7777); err != nil {
		die("cannot set the mode of '%s': %v", dst, err)
	}
	if err := copyXattrs(at(in.view, e.rel), dst, false); err != nil {
		die("%v", err)
	}
}

// hiddenBelowOpaque: entries of the current lower in directory rel, opaque or below an opaque
// one, that the upper does not have are absent for this instance.
func (f *folder) hiddenBelowOpaque(in *instance, rel string, upperNames []string) {
	lower := at(f.current, rel)
	if st, _ := lstat(lower); st == nil || !st.isDir() {
		return
	}
	names, err := readNames(lower)
	if err != nil {
		die("cannot read '%s': %v", lower, err)
	}
	for _, n := range names {
		r := join(rel, n)
		if i := sort.SearchStrings(upperNames, n); i < len(upperNames) && upperNames[i] == n || f.isPrivate(r) {
			continue
		}
		if st, _ := lstat(at(in.view, r)); st != nil {
			continue
		}
		f.mu.Lock()
		p := f.claims[r]
		if p == nil {
			f.claims[r] = &claim{inst: in.index, kind: claimAbsent}
		}
		f.mu.Unlock()
		if p == nil {
			if removeStaged(at(f.staging, r)) {
				f.mu.Lock()
				f.deleted++
				f.mu.Unlock()
			}
		} else if p.kind != claimAbsent {
			f.conflict(r, p.inst, in.index)
		}
	}
}

func removeStaged(path string) bool {
	if st, _ := lstat(path); st == nil {
		return false
	}
	if err := os.RemoveAll(path); err != nil {
		die("cannot remove '%s': %v", path, err)
	}
	return true
}

// revert puts the current generation's version of e back into the staging tree.
func (f *folder) revert(e *entry) {
	f.mu.Lock()
	if fc := f.firstCopy[e.st.ino]; fc != nil && fc.rel == e.rel {
		delete(f.firstCopy, e.st.ino)
	}
	f.mu.Unlock()
	dst := at(f.staging, e.rel)
	removeStaged(dst)
	src := at(f.current, e.rel)
	var err error
	if st, _ := lstat(src); st != nil && st.isDir() {
		err = linkFarm(src, dst)
	} else if st != nil {
		err = os.Link(src, dst)
	}
	if err != nil {
		die("cannot restore '%s' from '%s': %v", dst, src, err)
	}
	if e.prev != nil && e.prev.kind != claimDir { // the earlier instances' version was replaced
		for _, i := range e.prev.holders() {
			f.keep(i, e.rel)
		}
		f.mu.Lock()
		delete(f.claims, e.rel)
		f.mu.Unlock()
	}
}

func (f *folder) skip(in *instance, e *entry) {
	f.mu.Lock()
	fmt.Fprintf(out, "skipped\t%s\t%s\n", shown(e.rel), in.name)
	f.skipped++
	f.mu.Unlock()
	e.flag = "K"
}

// keep marks what instance i had put in at rel as kept (a later instance replaced it).
func (f *folder) keep(i int, rel string) {
	f.mu.Lock()
	f.insts[i].keep(rel)
	f.mu.Unlock()
}

func (f *folder) conflict(rel string, winner, loser int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.conflicts[rel]
	if c == nil {
		c = &conflict{winner: winner, others: map[int]bool{}}
		f.conflicts[rel] = c
	}
	c.winner = winner
	c.others[loser] = true
	delete(c.others, winner)
}

func (f *folder) reportConflicts() int {
	var lines []string
	for rel, c := range f.conflicts {
		var others []int
		for i := range c.others {
			others = append(others, i)
		}
		sort.Ints(others)
		names := make([]string, len(others))
		for k, i := range others {
			names[k] = f.insts[i].name
		}
		lines = append(lines, fmt.Sprintf("conflict\t%s\twinner=%s\tothers=%s\n", shown(rel), f.insts[c.winner].name, strings.Join(names, ",")))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprint(out, l)
	}
	return len(lines)
}

// record adds the manifest lines of one directory's entries, in order.
func (in *instance) record(entries []*entry) {
	for _, e := range entries {
		flag := e.flag
		if flag == "" {
			continue
		}
		if e.kind == claimDir && e.verdict != verdictSkip {
			if v, _ := lgetxattr(at(in.upper, e.rel), in.ns+xattrOpaque); len(v) > 0 {
				flag += "o"
			}
		}
		if flag == "D" && e.kind != claimDir {
			in.won[e.rel] = len(in.manifest)
		}
		in.manifest = append(in.manifest, manifestLine{flag: flag, st: e.st, rel: e.rel})
	}
}

// keep marks a non-directory this instance had put in as kept (a later instance replaced it).
func (in *instance) keep(rel string) {
	if i, ok := in.won[rel]; ok {
		in.manifest[i].flag = "K"
		delete(in.won, rel)
	}
}

// keepPartialLinkGroups: a hard-link group of the upper not folded whole stays in the upper
// whole (every name K), so the instance keeps one inode for it.
func (in *instance) keepPartialLinkGroups() {
	folded := map[uint64]uint64{}
	partial := map[uint64]bool{}
	for _, m := range in.manifest {
		if m.st.fileType() != sIFREG || m.st.nlink < 2 {
			continue
		}
		if m.flag == "D" {
			folded[m.st.ino]++
		} else {
			partial[m.st.ino] = true
		}
	}
	for i, m := range in.manifest {
		if m.flag == "D" && m.st.fileType() == sIFREG && m.st.nlink > 1 && (partial[m.st.ino] || folded[m.st.ino] != m.st.nlink) {
			in.manifest[i].flag = "K"
		}
	}
}

// writeManifests writes every instance's manifest (format: host/lib-fold.sh) into
// <manifestDir>.partial, then moves it into place.
func (f *folder) writeManifests() {
	part := f.manifests + ".partial"
	if err := os.MkdirAll(part, 0o755); err != nil {
		die("cannot create '%s': %v", part, err)
	}
	if err := os.WriteFile(part+"/.overlay-fleet-manifests", nil, 0o644); err != nil {
		die("cannot write in '%s': %v", part, err)
	}
	for _, in := range f.insts {
		var b bytes.Buffer
		fmt.Fprintf(&b, "# overlay-fleet fold manifest 1\n# instance %s\n# upper %s\n# lower %s\n# from %s\n# ns %s\n",
			in.name, in.upper, f.target, f.current, in.ns)
		for _, m := range in.manifest {
			fmt.Fprintf(&b, "%s %x %d %d %s %s %s\n", m.flag, m.st.mode, m.st.ino, m.st.size, ts9(m.st.mtime), ts9(m.st.ctime), enc(m.rel))
		}
		if err := os.WriteFile(part+"/"+in.name+".manifest", b.Bytes(), 0o644); err != nil {
			die("cannot write the manifest of '%s' in '%s': %v", in.name, part, err)
		}
	}
	if st, _ := lstat(f.manifests); st != nil {
		_, noMarker := lstat(f.manifests + "/.overlay-fleet-manifests")
		names, _ := readNames(f.manifests)
		if noMarker != nil && !(st.isDir() && len(names) == 0) {
			die("manifest dir '%s' exists and was not written by fold; refusing to replace it", f.manifests)
		}
		if err := os.RemoveAll(f.manifests); err != nil {
			die("cannot replace the stale manifest dir '%s': %v", f.manifests, err)
		}
	}
	if err := os.Rename(part, f.manifests); err != nil {
		die("cannot move the manifests into '%s': %v", f.manifests, err)
	}
}

// sameDirMeta: two directories with the same mode, owner and attributes.
func sameDirMeta(a, b string) bool {
	sa, _ := lstat(a)
	sb, _ := lstat(b)
	return sa != nil && sb != nil && sa.mode == sb.mode && sa.uid == sb.uid && sa.gid == sb.gid && sameXattrs(a, b)
}

// sameObject: two non-directories with the same type, mode, owner, size, mtime, device numbers,
// content or symlink target, and attributes.
func sameObject(a, b string) bool {
	sa, _ := lstat(a)
	sb, _ := lstat(b)
	if sa == nil || sb == nil || sa.mode != sb.mode || sa.uid != sb.uid || sa.gid != sb.gid ||
		sa.size != sb.size || sa.mtime != sb.mtime || sa.rdev != sb.rdev {
		return false
	}
	switch sa.fileType() {
	case sIFREG:
		if !sameContent(a, b) {
			return false
		}
	case sIFLNK:
		ta, err1 := os.Readlink(a)
		tb, err2 := os.Readlink(b)
		if err1 != nil || err2 != nil || ta != tb {
			return false
		}
	}
	return sameXattrs(a, b)
}

func sameXattrs(a, b string) bool { return sameXattrsBut(a, b, nil) }

// sameXattrsBut: the same extended attributes, those `aside` names left out (nil: none).
func sameXattrsBut(a, b string, aside func(name string) bool) bool {
	xa, err1 := readXattrs(a)
	xb, err2 := readXattrs(b)
	if err1 != nil || err2 != nil {
		return false
	}
	for _, m := range []map[string]string{xa, xb} {
		for k := range m {
			if aside != nil && aside(k) {
				delete(m, k)
			}
		}
	}
	if len(xa) != len(xb) {
		return false
	}
	for k, v := range xa {
		if w, ok := xb[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sameContent(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<16), make([]byte, 1<<16)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return ea == eb || (ea == io.ErrUnexpectedEOF && eb == io.ErrUnexpectedEOF) || (na == 0 && nb == 0)
		}
	}
}
