// Package lock serialises the changes on a box with flock(2) locks on files in a directory that
// only root can write (default /run/overlay-fleet).
//
// A lock file in a directory others can write is a trap: any user can hold its flock and stall
// every change on the box, or plant a symlink there and make root create or truncate a file of
// their choosing. So the directory is refused unless it is a real directory, owned by root, not
// writable by group or others, and lock files are opened without following symlinks.
//
// One kind of lock lives elsewhere: a lock file the box shares with the sh library, which locks
// an fstab on `<fstab>.overlay-fleet.lock` (Dir.LockFile). It is taken on the same terms: opened
// without following symlinks, a regular file of the owner of the lock directory, or refused.
//
// A flock belongs to the open file: it is released when the holder closes it or exits, however
// it ends, so a killed agent never leaves a stale lock behind. Lock files are never removed
// (removing one while another process waits on it would let two processes hold "the" lock).
package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// DefaultDir is the directory of a box's lock files.
const DefaultDir = "/run/overlay-fleet"

// Dir is a directory of lock files that only its owner can change.
type Dir struct {
	// Path is the directory; it is created (mode 0700) when missing.
	Path string
	// Owner is the uid the directory must belong to: 0 (root) on a box. Tests use their own.
	Owner int

	// procDir is where /proc/locks and /proc/<pid>/comm are read from, to name a lock's holder.
	procDir string
	// onWait, when set, is called once when Lock finds the lock taken and starts to wait.
	onWait func()
}

// Root is the lock directory at path that must belong to root.
func Root(path string) *Dir {
	return &Dir{Path: path, Owner: 0}
}

// Lock is a held lock.
type Lock struct {
	name string
	path string
	f    *os.File
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Pauses between tries while a lock is taken: from the first to the last, doubling.
const (
	firstPause = 2 * time.Millisecond
	lastPause  = 50 * time.Millisecond
)

// Lock takes the exclusive lock name (the file `<dir>/<name>.lock`), waiting while another
// process holds it, until timeout has passed (0: no limit other than ctx) or ctx is done. The
// error of a lock that stays taken names the lock file and, when /proc/locks tells, the process
// that holds it.
func (d *Dir) Lock(ctx context.Context, name string, timeout time.Duration) (*Lock, error) {
	if !namePattern.MatchString(name) {
		return nil, fmt.Errorf("lock name %q must be of a-z 0-9 . _ - and start with a letter or digit", name)
	}
	if err := d.ensure(); err != nil {
		return nil, err
	}
	path := filepath.Join(d.Path, name+".lock")
	f, _, err := openLockFile(path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	return d.wait(ctx, f, name, path, timeout)
}

// LockFile takes the exclusive lock on the file at path, a lock file outside the directory that
// the box shares with other tools: the sh library (host/lib.sh of_lock) locks an fstab with
// flock on `<fstab>.overlay-fleet.lock`, so an edit of the agent takes that lock too. Such a file
// lies in a directory the agent does not own (/etc for /etc/fstab), so it is opened read-only
// (a flock needs no more), without following a symlink and without blocking on a FIFO; a new one
// is created with mode 0600; one that is not a regular file or does not belong to d.Owner is
// refused (whoever made it could hold or swap it). It waits like Lock; the lock's name is the
// file's base name.
func (d *Dir) LockFile(ctx context.Context, path string, timeout time.Duration) (*Lock, error) {
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return nil, fmt.Errorf("lock file %q must be an absolute, clean path", path)
	}
	f, fi, err := openLockFile(path, os.O_RDONLY|syscall.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != d.Owner {
		f.Close()
		return nil, fmt.Errorf("lock file %q belongs to uid %d, not %d; refusing it (remove it, and find out who made it)", path, uid, d.Owner)
	}
	return d.wait(ctx, f, filepath.Base(path), path, timeout)
}

// wait takes the flock on f, the open lock file path, as Lock describes; on failure f is closed.
func (d *Dir) wait(ctx context.Context, f *os.File, name, path string, timeout time.Duration) (*Lock, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	pause := firstPause
	var timer *time.Timer
	for waited := false; ; waited = true {
		err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if timer != nil {
				timer.Stop()
			}
			return &Lock{name: name, path: path, f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cannot lock %q: %w", path, err)
		}
		if !waited && d.onWait != nil {
			d.onWait()
		}
		if timer == nil {
			timer = time.NewTimer(pause)
		} else {
			timer.Reset(pause)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			holder := d.holder(f)
			f.Close()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
				return nil, fmt.Errorf("timed out after %v waiting for lock %q: %s", timeout, path, holder)
			}
			return nil, fmt.Errorf("gave up waiting for lock %q (%s): %w", path, holder, ctx.Err())
		case <-timer.C:
		}
		pause = min(2*pause, lastPause)
	}
}

// Name is the name the lock was taken with.
func (l *Lock) Name() string { return l.name }

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("cannot release lock %q: %w", l.path, err)
	}
	return nil
}

// ensure creates the directory when it is missing and checks that only its owner can change it.
func (d *Dir) ensure() error {
	if d.Path == "" || !filepath.IsAbs(d.Path) {
		return fmt.Errorf("lock directory %q must be an absolute path", d.Path)
	}
	err := os.Mkdir(d.Path, 0o700)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cannot create the lock directory: %w", err)
	}
	fi, err := os.Lstat(d.Path)
	if err != nil {
		return fmt.Errorf("cannot look at the lock directory: %w", err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("lock directory %q is a symlink; refusing it (remove it, and find out who made it)", d.Path)
	case !fi.IsDir():
		return fmt.Errorf("lock directory %q is not a directory (%v)", d.Path, fi.Mode().Type())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if uid := int(st.Uid); uid != d.Owner {
		return fmt.Errorf("lock directory %q belongs to uid %d, not %d; refusing it (remove it, and find out who made it)", d.Path, uid, d.Owner)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("lock directory %q has mode %04o: others can write it; refusing it (chmod go-w %s)", d.Path, st.Mode&0o7777, d.Path)
	}
	return nil
}

// openLockFile opens (creating it, mode 0600) a lock file with the extra open flags, not following
// a symlink, and checks that it is a regular file; it returns the file and what it is.
func openLockFile(path string, flags int) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, flags|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, nil, fmt.Errorf("lock file %q is a symlink; refusing it (remove it, and find out who made it)", path)
		}
		return nil, nil, fmt.Errorf("cannot open lock file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cannot look at lock file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("lock file %q is not a regular file (%v); refusing it (remove it, and find out who made it)", path, fi.Mode().Type())
	}
	return f, fi, nil
}

// flock calls flock(2) on f, again when a signal interrupts it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}
