package fstab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"overlay-fleet/host/agent/internal/lock"
)

// testEditor is an Editor with a lock directory of its own, owned by the user running the test.
func testEditor(t *testing.T) *Editor {
	t.Helper()
	return &Editor{Locks: &lock.Dir{Path: filepath.Join(t.TempDir(), "locks"), Owner: os.Getuid()}}
}

func writeFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// leftovers are the files in dir whose names start with prefix.
func leftovers(t *testing.T, dir, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestEditorSetAndRemove(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		existing *string // nil: no file
		mode     fs.FileMode
		edit     func(e *Editor, path string) (Result, error)
		want     *string // nil: no file
		changed  bool
	}{
		{
			name: "create a missing fstab",
			edit: func(e *Editor, p string) (Result, error) { return e.Set(ctx, p, "box1/n1", "/d/n1/mnts", opts1) },
			want: ptr(line1 + "\n"), mode: 0o644, changed: true,
		},
		{
			name: "append and keep foreign lines byte for byte", existing: ptr(foreign + "last"), mode: 0o640,
			edit: func(e *Editor, p string) (Result, error) { return e.Set(ctx, p, "box1/n1", "/d/n1/mnts", opts1) },
			want: ptr(foreign + "last\n" + line1 + "\n"), changed: true,
		},
		{
			name: "same line: nothing written", existing: ptr(foreign + line1 + "\n"), mode: 0o600,
			edit: func(e *Editor, p string) (Result, error) { return e.Set(ctx, p, "box1/n1", "/d/n1/mnts", opts1) },
			want: ptr(foreign + line1 + "\n"),
		},
		{
			name: "update in place", existing: ptr(line2 + "\n" + line1 + "\n" + foreign), mode: 0o644,
			edit: func(e *Editor, p string) (Result, error) {
				return e.Set(ctx, p, "box1/n1", "/d/n1/mnts", "lowerdir=/l2,upperdir=/u,workdir=/w")
			},
			want:    ptr(line2 + "\noverlay /d/n1/mnts overlay lowerdir=/l2,upperdir=/u,workdir=/w,x-overlay-fleet=box1/n1 0 0\n" + foreign),
			changed: true,
		},
		{
			name: "remove", existing: ptr(foreign + line1 + "\n" + line2), mode: 0o644,
			edit: func(e *Editor, p string) (Result, error) { return e.Remove(ctx, p, "box1/n1") },
			want: ptr(foreign + line2), changed: true,
		},
		{
			name: "remove an absent line: nothing written", existing: ptr(foreign), mode: 0o644,
			edit: func(e *Editor, p string) (Result, error) { return e.Remove(ctx, p, "box1/n1") },
			want: ptr(foreign),
		},
		{
			name: "remove from a missing fstab: it stays missing",
			edit: func(e *Editor, p string) (Result, error) { return e.Remove(ctx, p, "box1/n1") },
		},
		{
			name: "remove the only line: an empty file stays", existing: ptr(line1 + "\n"), mode: 0o644,
			edit: func(e *Editor, p string) (Result, error) { return e.Remove(ctx, p, "box1/n1") },
			want: ptr(""), changed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "fstab")
			var before fs.FileInfo
			if tt.existing != nil {
				writeFile(t, path, *tt.existing, tt.mode)
				before, _ = os.Stat(path)
			}
			res, err := tt.edit(testEditor(t), path)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed != tt.changed || res.Path != path {
				t.Errorf("Result = %+v, want Changed %v and Path %s", res, tt.changed, path)
			}
			after, err := os.Stat(path)
			if tt.want == nil {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("fstab exists after the edit (%v)", err)
				}
			} else {
				if got := readFile(t, path); got != *tt.want {
					t.Errorf("fstab is\n%q\nwant\n%q", got, *tt.want)
				}
				if after.Mode().Perm() != tt.mode {
					t.Errorf("mode %v, want %v", after.Mode().Perm(), tt.mode)
				}
			}
			bak := path + BackupSuffix
			switch {
			case tt.changed && tt.existing != nil:
				if got := readFile(t, bak); got != *tt.existing {
					t.Errorf("backup is %q, want the previous content %q", got, *tt.existing)
				}
				if res.Backup != bak {
					t.Errorf("Result.Backup = %q, want %q", res.Backup, bak)
				}
				if fi, _ := os.Stat(bak); fi.Mode().Perm() != tt.mode {
					t.Errorf("backup mode %v, want %v", fi.Mode().Perm(), tt.mode)
				}
			default:
				if _, err := os.Stat(bak); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a backup was written (%v) though nothing was replaced", err)
				}
			}
			if !tt.changed && before != nil && !os.SameFile(before, after) {
				t.Error("the fstab was replaced though nothing changed")
			}
			if l := leftovers(t, dir, ".fstab"); len(l) != 0 {
				t.Errorf("temp files left behind: %q", l)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestEditorSymlinkedFstab(t *testing.T) {
	dir := t.TempDir()
	realDir := filepath.Join(dir, "real")
	if err := os.Mkdir(realDir, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(realDir, "fstab.real")
	writeFile(t, target, foreign, 0o644)
	link := filepath.Join(dir, "fstab")
	if err := os.Symlink("real/fstab.real", link); err != nil {
		t.Fatal(err)
	}
	res, err := testEditor(t).Set(context.Background(), link, "box1/n1", "/d/n1/mnts", opts1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != target || !res.Changed {
		t.Errorf("Result = %+v, want the edit of %s", res, target)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the fstab symlink was replaced (%v, %v)", fi.Mode(), err)
	}
	if got := readFile(t, link); got != foreign+line1+"\n" {
		t.Errorf("fstab through the link is %q", got)
	}
	if got := readFile(t, target+BackupSuffix); got != foreign {
		t.Errorf("backup beside the target is %q, want the old content", got)
	}
	tab, err := Load(link)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tab.Lookup("box1/n1"); !ok {
		t.Error("Load through the link does not find the line")
	}

	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink("nowhere/fstab", dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := testEditor(t).Set(context.Background(), dangling, "box1/n1", "/d/n1/mnts", opts1); err == nil || !strings.Contains(err.Error(), dangling) {
		t.Errorf("edit through a dangling symlink = %v, want an error naming it", err)
	}
}

func TestEditorRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fstab")
	writeFile(t, path, foreign, 0o644)
	stale := []string{".fstab.overlay-fleet.tmp-123456", ".fstab.overlay-fleet.tmp-9"}
	for _, n := range stale {
		writeFile(t, filepath.Join(dir, n), "half a fstab", 0o600)
	}
	keep := []string{".fstab.overlay-fleet.lock", ".other.overlay-fleet.tmp-1", "fstab.overlay-fleet.tmp-1"}
	for _, n := range keep {
		writeFile(t, filepath.Join(dir, n), "x", 0o600)
	}
	if err := os.Mkdir(filepath.Join(dir, ".fstab.overlay-fleet.tmp-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	res, err := testEditor(t).Remove(context.Background(), path, "box1/n1") // changes nothing
	if err != nil {
		t.Fatal(err)
	}
	if res.StaleTempFiles != len(stale) || res.Changed {
		t.Errorf("Result = %+v, want %d stale temp files removed and no change", res, len(stale))
	}
	for _, n := range stale {
		if _, err := os.Lstat(filepath.Join(dir, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale %s is still there", n)
		}
	}
	for _, n := range append(keep, ".fstab.overlay-fleet.tmp-dir") {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}

// fakeVerifier records its calls and fails with err.
type fakeVerifier struct {
	calls   int
	written []WrittenLine
	content string
	err     error
}

func (f *fakeVerifier) Verify(_ context.Context, file string, written []WrittenLine) error {
	f.calls++
	f.written = written
	data, _ := os.ReadFile(file)
	f.content = string(data)
	return f.err
}

func TestEditorFailuresLeaveTheFstab(t *testing.T) {
	ctx := context.Background()
	const old = foreign + line2 + "\n"
	tests := []struct {
		name    string
		setup   func(e *Editor)
		wantErr []string
	}{
		{
			name:    "sync fails",
			setup:   func(e *Editor) { e.syncFile = func(*os.File) error { return syscall.EIO } },
			wantErr: []string{"cannot sync", "unchanged", "input/output error"},
		},
		{
			name:    "verify fails",
			setup:   func(e *Editor) { e.Verify = &fakeVerifier{err: errors.New("[E] bad line")} },
			wantErr: []string{"refusing to write fstab", "[E] bad line"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "fstab")
			writeFile(t, path, old, 0o644)
			writeFile(t, path+BackupSuffix, "older", 0o644)
			e := testEditor(t)
			tt.setup(e)
			_, err := e.Set(ctx, path, "box1/n1", "/d/n1/mnts", opts1)
			if err == nil {
				t.Fatal("Set() succeeded")
			}
			for _, w := range append(tt.wantErr, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if got := readFile(t, path); got != old {
				t.Errorf("fstab changed to %q", got)
			}
			if got := readFile(t, path+BackupSuffix); got != "older" {
				t.Errorf("backup changed to %q", got)
			}
			if l := leftovers(t, dir, ".fstab"); len(l) != 0 {
				t.Errorf("temp files left behind: %q", l)
			}
		})
	}
}

func TestEditorVerifiesWrittenLines(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fstab")
	writeFile(t, path, foreign+line1+"\n", 0o644)
	e := testEditor(t)
	v := &fakeVerifier{}
	e.Verify = v
	if _, err := e.Set(ctx, path, "box1/n2", "/d/n2/mnts", opts2); err != nil {
		t.Fatal(err)
	}
	// The verifier gets the written line alone, as line 1 of its file, and its number in the
	// fstab for its findings; the file is gone afterwards.
	wantNo := strings.Count(foreign, "\n") + 2
	if v.calls != 1 || len(v.written) != 1 || v.written[0] != (WrittenLine{LineNo: 1, FstabLineNo: wantNo, MountPoint: "/d/n2/mnts"}) {
		t.Errorf("verifier got %d calls, %+v; want one with line 1 (%d in the fstab)", v.calls, v.written, wantNo)
	}
	if v.content != line2+"\n" {
		t.Errorf("verifier saw %q", v.content)
	}
	if l := leftovers(t, filepath.Dir(path), ".fstab"); len(l) != 0 {
		t.Errorf("temp files left behind: %q", l)
	}
	// No change, and a removal, write no line to check.
	for _, edit := range []func() (Result, error){
		func() (Result, error) { return e.Set(ctx, path, "box1/n2", "/d/n2/mnts", opts2) },
		func() (Result, error) { return e.Remove(ctx, path, "box1/n2") },
	} {
		if _, err := edit(); err != nil {
			t.Fatal(err)
		}
	}
	if v.calls != 1 {
		t.Errorf("verifier called %d times, want once", v.calls)
	}
}

// TestEditorVerifiesSeveralWrittenLines: an edit that writes several lines (one in place, one
// appended) gives the verifier those lines, numbered in its file and in the fstab.
func TestEditorVerifiesSeveralWrittenLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fstab")
	writeFile(t, path, line1+"\n"+foreign, 0o644)
	e := testEditor(t)
	v := &fakeVerifier{}
	e.Verify = v
	opts1b := opts1 + ",uuid=off"
	_, err := e.Edit(context.Background(), path, func(tb *Table) error {
		if err := tb.Set("box1/n2", "/d/n2/mnts", opts2); err != nil {
			return err
		}
		return tb.Set("box1/n1", "/d/n1/mnts", opts1b)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []WrittenLine{
		{LineNo: 1, FstabLineNo: 1, MountPoint: "/d/n1/mnts"},
		{LineNo: 2, FstabLineNo: strings.Count(foreign, "\n") + 2, MountPoint: "/d/n2/mnts"},
	}
	if fmt.Sprint(v.written) != fmt.Sprint(want) {
		t.Errorf("verifier got %+v, want %+v", v.written, want)
	}
	l1b, _ := FormatLine("box1/n1", "/d/n1/mnts", opts1b)
	if v.content != l1b+"\n"+line2+"\n" {
		t.Errorf("verifier saw %q", v.content)
	}
}

// TestEditorFindmntParseErrorOnOurLine is the agent's side of the sh library's test "refuses to
// write when findmnt --verify reports a parse error on our line" (test/host/fstab.test.ts): a
// findmnt that reports a parse error at the line of the file it is given that holds the marker
// refuses the edit, naming the line's number in the fstab, and leaves everything as it was.
func TestEditorFindmntParseErrorOnOurLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fstab")
	writeFile(t, path, foreign, 0o644)
	e := testEditor(t)
	var verified string
	e.Verify = &Findmnt{Path: "findmnt", Run: func(_ context.Context, _ string, args ...string) ([]byte, []byte, error) {
		tab := args[len(args)-1]
		data, err := os.ReadFile(tab)
		if err != nil {
			t.Fatal(err)
		}
		verified = string(data)
		n := 0
		for i, l := range strings.Split(verified, "\n") {
			if strings.Contains(l, MarkerKey+"=") {
				n = i + 1
			}
		}
		return nil, []byte(fmt.Sprintf("findmnt: %s: parse error at line %d -- ignored\n", tab, n)), exitStatus(t, "1")
	}}
	_, err := e.Set(context.Background(), path, "box1/n1", "/d/n1/mnts", opts1)
	wantNo := strings.Count(foreign, "\n") + 1
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("refusing to write fstab %q: findmnt --verify reports for the written lines: parse error at line %d", path, wantNo)) {
		t.Errorf("Set() = %v, want a refusal naming line %d", err, wantNo)
	}
	if verified != line1+"\n" {
		t.Errorf("findmnt was given %q", verified)
	}
	if got := readFile(t, path); got != foreign {
		t.Errorf("fstab changed to %q", got)
	}
	if l := leftovers(t, dir, ".fstab"); len(l) != 0 {
		t.Errorf("temp files left behind: %q", l)
	}
	if _, err := os.Lstat(path + BackupSuffix); err == nil {
		t.Error("a backup was written")
	}
}

// TestEditorFindmntReal: with this machine's findmnt, an edit beside foreign lines findmnt
// reports errors for goes through, and one whose line findmnt finds wrong (a mount point that
// is a file) is refused.
func TestEditorFindmntReal(t *testing.T) {
	v := FindmntOnPath()
	if v == nil {
		t.Skip("no findmnt on PATH")
	}
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	writeFile(t, notADir, "", 0o644)
	path := filepath.Join(dir, "fstab")
	old := foreign + "justone\nUUID=0000-none /boot ext4 noauto 0 2\n" + notADir + " /data ext4 defaults 0 2\n"
	writeFile(t, path, old, 0o644)
	e := testEditor(t)
	e.Verify = v
	ctx := context.Background()
	if _, err := e.Set(ctx, path, "box1/n1", "/d/n1/mnts", opts1); err != nil {
		t.Errorf("Set() beside broken foreign lines = %v", err)
	}
	_, err := e.Set(ctx, path, "box1/n2", notADir, opts2)
	if err == nil || !strings.Contains(err.Error(), "target is not a directory") {
		t.Errorf("Set() on a file = %v, want a refusal", err)
	}
	if got := readFile(t, path); got != old+line1+"\n" {
		t.Errorf("fstab is %q", got)
	}
	if l := leftovers(t, dir, ".fstab"); len(l) != 0 {
		t.Errorf("temp files left behind: %q", l)
	}
}

func TestEditorRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fstabDir := filepath.Join(dir, "fstab.d")
	if err := os.Mkdir(fstabDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conflict := filepath.Join(dir, "conflict")
	writeFile(t, conflict, "/dev/sdc1 /d/n1/mnts ext4 defaults 0 0\n", 0o644)
	tests := []struct {
		name, path, wantErr string
	}{
		{"not a regular file", fstabDir, "not a regular file"},
		{"missing directory", filepath.Join(dir, "nodir", "fstab"), "directory of fstab"},
		{"relative path", "etc/fstab", "absolute"},
		{"conflicting foreign line", conflict, "line 1 already has an entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testEditor(t).Set(ctx, tt.path, "box1/n1", "/d/n1/mnts", opts1)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Set(%s) = %v, want an error with %q naming the path", tt.path, err, tt.wantErr)
			}
		})
	}
}

func TestEditorUnwritableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into a read-only directory anyway; TestEditorFailuresLeaveTheFstab covers write failures")
	}
	dir := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "fstab")
	writeFile(t, path, foreign, 0o644)
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	_, err := testEditor(t).Set(context.Background(), path, "box1/n1", "/d/n1/mnts", opts1)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "unchanged") {
		t.Errorf("Set() = %v, want an error naming %s as unchanged", err, path)
	}
	if got := readFile(t, path); got != foreign {
		t.Errorf("fstab changed to %q", got)
	}
}

func TestEditorKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file another owner")
	}
	path := filepath.Join(t.TempDir(), "fstab")
	writeFile(t, path, foreign, 0o640)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := testEditor(t).Set(context.Background(), path, "box1/n1", "/d/n1/mnts", opts1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + BackupSuffix} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 65534 || st.Gid != 65534 || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: owner %d:%d mode %v, want 65534:65534 0640", p, st.Uid, st.Gid, fi.Mode().Perm())
		}
	}
}

func TestEditorConcurrentEdits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fstab")
	writeFile(t, path, foreign, 0o644)
	e := testEditor(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each edit takes the lock through its own open file, as separate processes do.
			_, err := e.Set(ctx, path, fmt.Sprintf("box1/n%d", i), fmt.Sprintf("/d/n%d/mnts", i), "lowerdir=/l,nofail")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tab, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if ids := tab.IDs(); len(ids) != n {
		t.Errorf("fstab has %d managed lines after %d parallel edits: %q", len(ids), n, ids)
	}
	if got := readFile(t, path); !strings.HasPrefix(got, foreign) {
		t.Errorf("foreign lines changed: %q", got)
	}
}

func TestEditorLockTimeout(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fstab")
	writeFile(t, path, foreign, 0o644)
	e := testEditor(t)
	held, err := e.Locks.Lock(ctx, LockName, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	e.LockTimeout = 10 * time.Millisecond
	_, err = e.Set(ctx, path, "box1/n1", "/d/n1/mnts", opts1)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), held.Path()) {
		t.Errorf("Set() under a held lock = %v, want a timeout naming the fstab and the lock", err)
	}
	if got := readFile(t, path); got != foreign {
		t.Errorf("fstab changed to %q", got)
	}
}

// TestEditorTakesTheShLock: an edit waits for the lock the sh library (host/fstab.sh) takes on
// the same fstab, `<fstab>.overlay-fleet.lock` (for a symlinked fstab, beside its target, as
// the sh resolves it), and writes once it is released.
func TestEditorTakesTheShLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	target := filepath.Join(dir, "fstab.real")
	writeFile(t, target, foreign, 0o644)
	link := filepath.Join(dir, "fstab")
	if err := os.Symlink("fstab.real", link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{target, link} {
		// The sh's of_lock: `exec 9>>"$fstab.overlay-fleet.lock"; flock 9`.
		sh, err := os.OpenFile(target+".overlay-fleet.lock", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(sh.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		e := testEditor(t)
		e.LockTimeout = 20 * time.Millisecond
		_, err = e.Set(ctx, path, "box1/n1", "/d/n1/mnts", opts1)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("waiting for lock %q", target+ShLockSuffix)) || !strings.Contains(err.Error(), path) {
			t.Errorf("Set(%s) while the sh holds its lock = %v, want a timeout naming the fstab and the sh's lock", path, err)
		}
		if got := readFile(t, target); got != foreign {
			t.Errorf("fstab changed to %q while the sh held its lock", got)
		}
		sh.Close()
		e.LockTimeout = 0
		if res, err := e.Set(ctx, path, "box1/n1", "/d/n1/mnts", opts1); err != nil || !res.Changed || readFile(t, target) != foreign+line1+"\n" {
			t.Fatalf("Set(%s) after the sh's release = %+v, %v", path, res, err)
		}
		writeFile(t, target, foreign, 0o644)
	}
	if _, err := os.Lstat(link + ShLockSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a lock beside the symlink, not its target: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	tab, err := Load(filepath.Join(dir, "missing"))
	if err != nil || len(tab.Bytes()) != 0 {
		t.Errorf("Load(missing) = %q, %v; want an empty table", tab.Bytes(), err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Load(dir) = %v, want an error naming it", err)
	}
	if _, err := Load("fstab"); err == nil {
		t.Error("Load(relative) = nil error")
	}
}
