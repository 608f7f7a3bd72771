package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testDir is a lock directory (not yet created) that the user running the test owns.
func testDir(t *testing.T) *Dir {
	t.Helper()
	return &Dir{Path: filepath.Join(t.TempDir(), "locks"), Owner: os.Getuid()}
}

func TestLockCreatesRootOnlyDir(t *testing.T) {
	d := testDir(t)
	l, err := d.Lock(context.Background(), "fstab", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	fi, err := os.Lstat(d.Path)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("lock dir %v, %v; want a directory of mode 0700", fi.Mode(), err)
	}
	if want := filepath.Join(d.Path, "fstab.lock"); l.Path() != want || l.Name() != "fstab" {
		t.Errorf("lock %s at %s, want fstab at %s", l.Name(), l.Path(), want)
	}
	lf, err := os.Lstat(l.Path())
	if err != nil || !lf.Mode().IsRegular() || lf.Mode().Perm() != 0o600 {
		t.Errorf("lock file %v, %v; want a regular file of mode 0600", lf.Mode(), err)
	}
}

func TestLockRefusesUnsafeDir(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string) *Dir
		wantErr string
	}{
		{
			name: "world-writable",
			setup: func(t *testing.T, p string) *Dir {
				mkdir(t, p, 0o1777)
				return &Dir{Path: p, Owner: os.Getuid()}
			},
			wantErr: "others can write it",
		},
		{
			name: "group-writable",
			setup: func(t *testing.T, p string) *Dir {
				mkdir(t, p, 0o770)
				return &Dir{Path: p, Owner: os.Getuid()}
			},
			wantErr: "others can write it",
		},
		{
			name: "symlink to a good dir",
			setup: func(t *testing.T, p string) *Dir {
				mkdir(t, p+".real", 0o700)
				if err := os.Symlink(p+".real", p); err != nil {
					t.Fatal(err)
				}
				return &Dir{Path: p, Owner: os.Getuid()}
			},
			wantErr: "is a symlink",
		},
		{
			name: "owned by someone else",
			setup: func(t *testing.T, p string) *Dir {
				mkdir(t, p, 0o700)
				return &Dir{Path: p, Owner: os.Getuid() + 1}
			},
			wantErr: fmt.Sprintf("belongs to uid %d, not %d", os.Getuid(), os.Getuid()+1),
		},
		{
			name: "a file",
			setup: func(t *testing.T, p string) *Dir {
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return &Dir{Path: p, Owner: os.Getuid()}
			},
			wantErr: "not a directory",
		},
		{
			name:    "relative",
			setup:   func(t *testing.T, p string) *Dir { return &Dir{Path: "run/locks", Owner: os.Getuid()} },
			wantErr: "absolute",
		},
		{
			name:    "parent missing",
			setup:   func(t *testing.T, p string) *Dir { return &Dir{Path: filepath.Join(p, "sub"), Owner: os.Getuid()} },
			wantErr: "cannot create the lock directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "locks")
			d := tt.setup(t, p)
			_, err := d.Lock(context.Background(), "fstab", time.Second)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), d.Path) {
				t.Errorf("Lock() = %v, want an error with %q naming %s", err, tt.wantErr, d.Path)
			}
		})
	}
}

func mkdir(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLockRefusesSymlinkedLockFile(t *testing.T) {
	d := testDir(t)
	mkdir(t, d.Path, 0o700)
	victim := filepath.Join(t.TempDir(), "nologin")
	if err := os.Symlink(victim, filepath.Join(d.Path, "fstab.lock")); err != nil {
		t.Fatal(err)
	}
	_, err := d.Lock(context.Background(), "fstab", time.Second)
	if err == nil || !strings.Contains(err.Error(), "is a symlink") {
		t.Errorf("Lock() = %v, want a refusal of the symlink", err)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symlink's target was created (%v)", err)
	}
}

func TestLockRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "../etc/nologin", "a/b", ".hidden", "Fstab", "a b"} {
		if _, err := testDir(t).Lock(context.Background(), name, time.Second); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("Lock(%q) = %v, want an error naming it", name, err)
		}
	}
}

func TestLockExcludesAndWaits(t *testing.T) {
	ctx := context.Background()
	d := testDir(t)
	first, err := d.Lock(ctx, "box", 0)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	d.onWait = func() { close(waiting) }
	got := make(chan error, 1)
	go func() {
		second, err := d.Lock(ctx, "box", time.Minute)
		if err == nil {
			err = second.Unlock()
		}
		got <- err
	}()
	<-waiting // the second Lock found the lock taken
	select {
	case err := <-got:
		t.Fatalf("second Lock returned while the first was held: %v", err)
	default:
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Errorf("second Lock after the release: %v", err)
	}
}

func TestLockTimeoutNamesHolder(t *testing.T) {
	ctx := context.Background()
	d := testDir(t)
	held, err := d.Lock(ctx, "fstab", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	_, err = d.Lock(ctx, "fstab", 5*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out after 5ms waiting for lock") || !strings.Contains(err.Error(), held.Path()) {
		t.Fatalf("Lock() = %v, want a timeout naming %s", err, held.Path())
	}
	if _, statErr := os.Stat("/proc/locks"); statErr == nil {
		if want := fmt.Sprintf("held by pid %d (", os.Getpid()); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name the holder (%q)", err, want)
		}
	}
}

func TestLockContextCanceled(t *testing.T) {
	d := testDir(t)
	held, err := d.Lock(context.Background(), "fstab", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	d.onWait = cancel
	_, err = d.Lock(ctx, "fstab", time.Minute)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), held.Path()) {
		t.Errorf("Lock() = %v, want context.Canceled naming the lock", err)
	}
}

func TestFlockHolders(t *testing.T) {
	proc := t.TempDir()
	locks := "1: FLOCK  ADVISORY  WRITE 4242 08:02:131090 0 EOF\n" +
		"1: -> FLOCK  ADVISORY  WRITE 5151 08:02:131090 0 EOF\n" +
		"2: POSIX  ADVISORY  WRITE 6161 08:02:131090 0 EOF\n" +
		"3: FLOCK  ADVISORY  WRITE 7171 08:03:131090 0 EOF\n" +
		"4: FLOCK  ADVISORY  WRITE 8181 103:0a:131090 0 EOF\n" +
		"garbage\n"
	if err := os.WriteFile(filepath.Join(proc, "locks"), []byte(locks), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   fileID
		want []int
	}{
		{fileID{major: 8, minor: 2, ino: 131090}, []int{4242}},
		{fileID{major: 8, minor: 3, ino: 131090}, []int{7171}},
		{fileID{major: 0x103, minor: 10, ino: 131090}, []int{8181}},
		{fileID{major: 8, minor: 2, ino: 1}, nil},
	}
	for _, tt := range tests {
		got, err := flockHolders(filepath.Join(proc, "locks"), tt.id)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("flockHolders(%+v) = %v, %v; want %v", tt.id, got, err, tt.want)
		}
	}
}

func TestDevNumbers(t *testing.T) {
	for _, tt := range []struct {
		major, minor uint64
	}{{8, 2}, {259, 1}, {0, 0x1f}, {4095, 255}, {4096, 1048575}} {
		// glibc's makedev
		dev := (tt.minor & 0xff) | (tt.major&0xfff)<<8 | (tt.minor&^0xff)<<12 | (tt.major&^0xfff)<<32
		if devMajor(dev) != tt.major || devMinor(dev) != tt.minor {
			t.Errorf("dev %#x: got %d:%d, want %d:%d", dev, devMajor(dev), devMinor(dev), tt.major, tt.minor)
		}
	}
}

func TestLockFileSharedWithSh(t *testing.T) {
	ctx := context.Background()
	d := testDir(t)
	path := filepath.Join(t.TempDir(), "fstab.overlay-fleet.lock")

	// The sh's lock: `exec 9>>"$1"; flock 9`, i.e. flock on an fd of its own.
	sh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(sh, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	d.onWait = func() { close(waiting) }
	got := make(chan error, 1)
	go func() {
		l, err := d.LockFile(ctx, path, time.Minute)
		if err == nil {
			if l.Path() != path || l.Name() != "fstab.overlay-fleet.lock" {
				err = fmt.Errorf("lock %s at %s", l.Name(), l.Path())
			}
			if uerr := l.Unlock(); err == nil {
				err = uerr
			}
		}
		got <- err
	}()
	<-waiting // LockFile found the sh's lock taken
	select {
	case err := <-got:
		t.Fatalf("LockFile returned while the sh held the lock: %v", err)
	default:
	}
	sh.Close() // the sh ends
	if err := <-got; err != nil {
		t.Errorf("LockFile after the sh's release: %v", err)
	}

	// A missing one is made, mode 0600; while it is held, a timeout names it.
	fresh := filepath.Join(t.TempDir(), "fstab.overlay-fleet.lock")
	held, err := (&Dir{Path: d.Path, Owner: d.Owner}).LockFile(ctx, fresh, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	if fi, err := os.Lstat(fresh); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("new lock file %v, %v; want a regular file of mode 0600", fi.Mode(), err)
	}
	_, err = (&Dir{Path: d.Path, Owner: d.Owner}).LockFile(ctx, fresh, 5*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("timed out after 5ms waiting for lock %q", fresh)) {
		t.Errorf("LockFile() of a held lock = %v, want a timeout naming it", err)
	}
}

func TestLockFileRefuses(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string) *Dir
		wantErr string
	}{
		{
			name: "a symlink",
			setup: func(t *testing.T, p string) *Dir {
				if err := os.Symlink(filepath.Join(filepath.Dir(p), "victim"), p); err != nil {
					t.Fatal(err)
				}
				return testDir(t)
			},
			wantErr: "is a symlink",
		},
		{
			name: "a FIFO (not waited on)",
			setup: func(t *testing.T, p string) *Dir {
				if err := syscall.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}
				return testDir(t)
			},
			wantErr: "is not a regular file",
		},
		{
			name: "a directory",
			setup: func(t *testing.T, p string) *Dir {
				mkdir(t, p, 0o700)
				return testDir(t)
			},
			wantErr: "is a directory",
		},
		{
			name: "someone else's",
			setup: func(t *testing.T, p string) *Dir {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return &Dir{Path: filepath.Join(t.TempDir(), "locks"), Owner: os.Getuid() + 1}
			},
			wantErr: fmt.Sprintf("belongs to uid %d, not %d", os.Getuid(), os.Getuid()+1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "fstab.overlay-fleet.lock")
			d := tt.setup(t, p)
			_, err := d.LockFile(context.Background(), p, time.Second)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
				t.Errorf("LockFile() = %v, want an error with %q naming %s", err, tt.wantErr, p)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(p), "victim")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a symlink's target was created (%v)", err)
			}
		})
	}
	for _, p := range []string{"", "fstab.overlay-fleet.lock", "/etc/../etc/fstab.overlay-fleet.lock"} {
		if _, err := testDir(t).LockFile(context.Background(), p, time.Second); err == nil || !strings.Contains(err.Error(), "absolute, clean") {
			t.Errorf("LockFile(%q) = %v, want a refusal", p, err)
		}
	}
}
