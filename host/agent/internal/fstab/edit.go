package fstab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"overlay-fleet/host/agent/internal/lock"
)

const (
	// BackupSuffix is appended to the fstab's path for the copy of its previous content.
	BackupSuffix = ".overlay-fleet.bak"
	// LockName is the box lock every edit of an fstab file holds.
	LockName = "fstab"
	// ShLockSuffix is appended to the path of the fstab file an edit changes (a symlink's
	// target) for the lock file the sh library takes for its edits of that file (host/fstab.sh:
	// flock on `<fstab>.overlay-fleet.lock`): an edit holds it too, after LockName.
	ShLockSuffix = ".overlay-fleet.lock"
	// DefaultLockTimeout is how long an edit waits for LockName.
	DefaultLockTimeout = 5 * time.Minute
	// tempInfix follows `.<fstab name>` in the names of the temp files of an edit; the next edit
	// removes those an interrupted one left behind.
	tempInfix = ".overlay-fleet.tmp-"
	// newFileMode is the mode of an fstab file that an edit creates.
	newFileMode = 0o644
)

// Editor makes atomic edits of fstab files: under the box lock LockName and the sh library's
// lock beside the file (ShLockSuffix: an agent and an sh editing the same fstab exclude each
// other) it reads the file,
// changes the table, writes the new content to a temp file in the same directory (synced, with
// the mode and owner of the old file), lets Verify check the lines it wrote (in a temp file of
// their own), keeps the old content in `<fstab>.overlay-fleet.bak`, renames the temp file over
// the fstab and syncs the directory. A failure before the rename leaves the fstab as it was. An
// edit that changes nothing writes nothing.
type Editor struct {
	// Locks is the directory of the box's locks.
	Locks *lock.Dir
	// LockTimeout is how long to wait for the lock; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// Verify checks the new content before it replaces the fstab; nil skips the check.
	Verify Verifier

	// syncFile syncs a written file; tests replace it to make a sync fail.
	syncFile func(*os.File) error
}

// Result says what an edit did.
type Result struct {
	// Path is the file that was edited: the fstab, or the file a symlinked fstab points to.
	Path string
	// Changed says that the content changed and was written.
	Changed bool
	// Backup is the file with the previous content, "" when none was written.
	Backup string
	// StaleTempFiles counts the temp files of interrupted edits that this edit removed.
	StaleTempFiles int
	// Table is the content after the edit.
	Table *Table
}

// Set makes the managed line of an instance in the fstab at path (see Table.Set); a missing file
// is created.
func (e *Editor) Set(ctx context.Context, path, id, merged, options string) (Result, error) {
	if _, err := FormatLine(id, merged, options); err != nil {
		return Result{}, err
	}
	return e.Edit(ctx, path, func(t *Table) error { return t.Set(id, merged, options) })
}

// Remove drops the managed lines of an instance from the fstab at path; a missing file stays
// missing.
func (e *Editor) Remove(ctx context.Context, path, id string) (Result, error) {
	if err := ValidateID(id); err != nil {
		return Result{}, err
	}
	return e.Edit(ctx, path, func(t *Table) error { return t.Remove(id) })
}

// Edit applies change to the table of the fstab at path and writes the result atomically, all
// under the box lock LockName and the sh library's lock of the file, `<target>.overlay-fleet.lock`
// (target: the fstab, or the file a symlinked fstab points to, as the sh resolves it). Both
// locks are waited for within one LockTimeout. Errors name the file.
func (e *Editor) Edit(ctx context.Context, path string, change func(*Table) error) (Result, error) {
	if err := ValidatePath("fstab", path); err != nil {
		return Result{}, err
	}
	if e.Locks == nil {
		return Result{}, errors.New("fstab editor has no lock directory")
	}
	timeout := e.LockTimeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	lockCtx, cancel := context.WithTimeout(ctx, timeout) // one wait for both locks
	defer cancel()
	l, err := e.Locks.Lock(lockCtx, LockName, timeout)
	if err != nil {
		return Result{}, fmt.Errorf("edit of fstab %q: %w", path, err)
	}
	defer l.Unlock()

	// The file edited decides which lock of the sh's to take; it is resolved again under that
	// lock, in case a symlinked fstab changed meanwhile.
	target, _, err := resolve(path)
	if err != nil {
		return Result{}, err
	}
	sh, err := e.Locks.LockFile(lockCtx, target+ShLockSuffix, timeout)
	if err != nil {
		return Result{}, fmt.Errorf("edit of fstab %q (it is unchanged): %w", path, err)
	}
	defer sh.Unlock()
	locked := target
	target, old, err := resolve(path)
	if err != nil {
		return Result{}, err
	}
	if target != locked {
		return Result{}, fmt.Errorf("fstab %q pointed to %q, now to %q, while the edit waited for its lock; refusing to edit it (retry)", path, locked, target)
	}
	res := Result{Path: target}
	if res.StaleTempFiles, err = removeStaleTemps(target); err != nil {
		return res, err
	}
	var data []byte
	if old != nil {
		if data, err = os.ReadFile(target); err != nil {
			return res, fmt.Errorf("cannot read fstab: %w", err)
		}
	}
	t := Parse(data)
	if err := change(t); err != nil {
		return res, fmt.Errorf("fstab %q: %w", target, err)
	}
	res.Table = t
	content := t.Bytes()
	if bytes.Equal(content, data) {
		return res, nil
	}
	if old == nil && len(content) == 0 {
		return res, nil // nothing to remove from a missing file: leave it missing
	}

	mode, uid, gid := fs.FileMode(newFileMode), os.Getuid(), os.Getgid()
	if old != nil {
		st := old.Sys().(*syscall.Stat_t)
		mode, uid, gid = old.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), int(st.Uid), int(st.Gid)
	}
	tmp, err := e.writeTemp(target, content, mode, uid, gid)
	if err != nil {
		return res, err
	}
	defer os.Remove(tmp) // fails harmlessly once the rename has happened

	if e.Verify != nil {
		if err := e.verifyWritten(ctx, target, t); err != nil {
			return res, err
		}
	}
	if old != nil {
		bak, err := e.writeTemp(target, data, mode, uid, gid)
		if err != nil {
			return res, fmt.Errorf("backup of fstab: %w", err)
		}
		if err := os.Rename(bak, target+BackupSuffix); err != nil {
			os.Remove(bak)
			return res, fmt.Errorf("cannot put the backup of fstab in place (fstab %q is unchanged): %w", target, err)
		}
		res.Backup = target + BackupSuffix
	}
	if err := os.Rename(tmp, target); err != nil {
		return res, fmt.Errorf("cannot rename the new fstab over %q (it is unchanged): %w", target, err)
	}
	res.Changed = true
	if err := syncDir(filepath.Dir(target)); err != nil {
		return res, fmt.Errorf("the new fstab %q is in place but may not survive a crash: %w", target, err)
	}
	return res, nil
}

// verifyWritten lets Verify check the lines of t that the edit wrote, in a temp file beside
// target that holds them alone (not synced: it is read once and removed).
func (e *Editor) verifyWritten(ctx context.Context, target string, t *Table) error {
	written := t.written()
	if len(written) == 0 {
		return nil
	}
	var content bytes.Buffer
	for i := range written {
		content.WriteString(t.lines[written[i].LineNo-1].raw)
		content.WriteByte('\n')
		written[i].FstabLineNo, written[i].LineNo = written[i].LineNo, i+1
	}
	f, err := os.CreateTemp(filepath.Dir(target), tempPrefix(target)+"*")
	if err != nil {
		return fmt.Errorf("cannot create a temp file beside fstab %q (it is unchanged): %w", target, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(content.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write %q (is the filesystem full? fstab %q is unchanged): %w", f.Name(), target, err)
	}
	if err := e.Verify.Verify(ctx, f.Name(), written); err != nil {
		return fmt.Errorf("refusing to write fstab %q: %w", target, err)
	}
	return nil
}

// resolve is the file an edit of path changes: path itself, or the file a symlinked path points
// to (a rename over the link would replace the link). It also returns the file's info, nil when
// it does not exist yet.
func resolve(path string) (string, fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return path, nil, checkDir(path)
	case err != nil:
		return "", nil, fmt.Errorf("cannot look at fstab: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", nil, fmt.Errorf("cannot resolve the fstab symlink %q: %w", path, err)
		}
		fi, err := statRegular(target)
		return target, fi, err
	}
	fi, err = statRegular(path)
	return path, fi, err
}

// statRegular is the info of the regular file at path, nil when there is none. Anything else
// at path is an error.
func statRegular(path string) (fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, checkDir(path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot look at fstab: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fstab %q is not a regular file (%s)", path, fi.Mode().Type())
	}
	return fi, nil
}

// checkDir checks that the directory of a missing fstab exists.
func checkDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory of fstab %q: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("directory of fstab %q: %q is not a directory", path, dir)
	}
	return nil
}

// tempPrefix is the start of the names of an edit's temp files beside target.
func tempPrefix(target string) string {
	return "." + filepath.Base(target) + tempInfix
}

// removeStaleTemps removes the temp files that interrupted edits of target left behind. Every
// edit makes its temp files under the lock that the caller holds, so none of them belongs to an
// edit that is still running.
func removeStaleTemps(target string) (int, error) {
	dir, prefix := filepath.Dir(target), tempPrefix(target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("cannot list the directory of fstab %q: %w", target, err)
	}
	n := 0
	for _, de := range entries {
		if !strings.HasPrefix(de.Name(), prefix) || !de.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, de.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("cannot remove the temp file %q of an interrupted fstab edit: %w", p, err)
		}
		n++
	}
	return n, nil
}

// writeTemp writes content to a new temp file beside target, with the given mode and owner, and
// syncs it. On failure nothing is left behind and the error names target.
func (e *Editor) writeTemp(target string, content []byte, mode fs.FileMode, uid, gid int) (name string, err error) {
	f, err := os.CreateTemp(filepath.Dir(target), tempPrefix(target)+"*")
	if err != nil {
		return "", fmt.Errorf("cannot create a temp file beside fstab %q (it is unchanged): %w", target, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(content); err != nil {
		return "", fmt.Errorf("cannot write %q (is the filesystem full? fstab %q is unchanged): %w", f.Name(), target, err)
	}
	if uid != os.Getuid() || gid != os.Getgid() {
		if err := f.Chown(uid, gid); err != nil {
			return "", fmt.Errorf("cannot give %q the owner %d:%d of fstab %q (it is unchanged): %w", f.Name(), uid, gid, target, err)
		}
	}
	// After the chown, which clears set-id bits.
	if err := f.Chmod(mode); err != nil {
		return "", fmt.Errorf("cannot give %q the mode %v of fstab %q (it is unchanged): %w", f.Name(), mode, target, err)
	}
	sync := e.syncFile
	if sync == nil {
		sync = (*os.File).Sync
	}
	if err := sync(f); err != nil {
		return "", fmt.Errorf("cannot sync %q (fstab %q is unchanged): %w", f.Name(), target, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("cannot close %q (fstab %q is unchanged): %w", f.Name(), target, err)
	}
	return f.Name(), nil
}

// syncDir syncs a directory, so the renames in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open directory %q to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	return nil
}

// Load reads the fstab at path (following a symlink) into a table; a missing file is an empty
// table. It takes no lock: edits replace the file by a rename, so a reader sees the old content
// or the new, never a mix.
func Load(path string) (*Table, error) {
	if err := ValidatePath("fstab", path); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Parse(nil), nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot look at fstab: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fstab %q is not a regular file (%s)", path, fi.Mode().Type())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read fstab: %w", err)
	}
	return Parse(data), nil
}
