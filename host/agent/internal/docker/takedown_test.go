package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"overlay-fleet/host/agent/internal/down"
	"overlay-fleet/host/agent/internal/lock"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// specN is instance ttnode<n> of box1 on its own merged dir.
func specN(n int) ContainerSpec {
	s := spec1()
	s.Name, s.InstanceID, s.Hostname = fmt.Sprintf("ttnode%d", n), fmt.Sprintf("box1/ttnode%d", n), fmt.Sprintf("box1-ttnode%d", n)
	s.IP, s.MAC, s.Merged = fmt.Sprintf("192.168.1.10%d", n), fmt.Sprintf("02:aa:bb:cc:dd:0%d", n), fmt.Sprintf("/mnt/usbdisk/ttnode%d/mnts", n)
	return s
}

// downEngine is an engine with down records over f, the overlays of mounted mounted (a set the
// test changes), a short wait.
func downEngine(t *testing.T, f *fakeDocker, mounted map[string]bool) *Engine {
	dir := t.TempDir()
	return &Engine{
		Docker:   f,
		Locks:    &lock.Dir{Path: filepath.Join(dir, "locks"), Owner: os.Getuid()},
		DownWait: 300 * time.Millisecond,
		Down:     &down.Store{Dir: filepath.Join(dir, "down"), Owner: os.Getuid()},
		MountTable: func() (mountinfo.Table, error) {
			t := mountinfo.Table{{ID: 1, ParentID: 1, MountPoint: "/", FSType: "ext4"}}
			for dir, ok := range mounted {
				if ok {
					t = append(t, mountinfo.Mount{ID: 10 + len(t), ParentID: 1, MountPoint: dir, FSType: "overlay", Source: "overlay"})
				}
			}
			return t, nil
		},
	}
}

func recorded(t *testing.T, e *Engine) []string {
	t.Helper()
	rs, err := e.Down.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Instance+":"+r.FailedRun)
	}
	return out
}

// A replacement as the engine runs it (delete, then create) of the containers of three instances
// with maxDownPerBox 1, onto an image whose containers exit at once.
func TestReplacementsBoundedByMaxDown(t *testing.T) {
	f := newFakeDocker()
	mounted := map[string]bool{}
	for n := 1; n <= 3; n++ {
		withContainer(f, specN(n), true)
		mounted[specN(n).Merged] = true
	}
	e := downEngine(t, f, mounted)
	f.addImage(labImage, newImageID)
	f.exitOnStart = true
	replace := func(run string) TakeDown { return TakeDown{Max: 1, Run: run, Replacing: true} }
	create := func(run string) TakeDown { return TakeDown{Max: 1, Run: run} }

	if _, err := e.DeleteContainer(t.Context(), "ttnode1", "box1/ttnode1", specN(1).Merged, replace("r2")); err != nil {
		t.Fatal(err)
	}
	// One down already: the next replacement waits, then gives up naming it; its container runs on.
	_, err := e.DeleteContainer(t.Context(), "ttnode2", "box1/ttnode2", specN(2).Merged, replace("r2"))
	if err == nil || !strings.Contains(err.Error(), "maxDownPerBox 1: down already: box1/ttnode1") {
		t.Fatalf("a second take-down while one is down: %v", err)
	}
	if !f.containers["ttnode2"].running {
		t.Fatal("ttnode2 was taken down")
	}
	// The new container exits at once: its instance stays down, marked failed in this run.
	if _, err := e.CreateContainer(t.Context(), specN(1), create("r2")); err == nil {
		t.Fatal("a container that exits at once was reported made")
	}
	if got := recorded(t, e); strings.Join(got, " ") != "box1/ttnode1:r2" {
		t.Fatalf("down records %v", got)
	}
	// The rest of the run replaces nothing, without waiting (a wait would end at the deadline).
	e.DownWait = time.Hour
	soon, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = e.DeleteContainer(soon, "ttnode2", "box1/ttnode2", specN(2).Merged, replace("r2"))
	if err == nil || !strings.Contains(err.Error(), "the replacement of box1/ttnode1 failed in this run") {
		t.Fatalf("a take-down after a failed replacement: %v", err)
	}
	e.DownWait = 300 * time.Millisecond
	// An update that would replace in place is bound the same way.
	_, err = e.CreateContainer(t.Context(), specN(3), create("r2"))
	if err == nil || !strings.Contains(err.Error(), "not taking box1/ttnode3 down") || !f.containers["ttnode3"].running {
		t.Fatalf("an in-place replacement after a failed one: %v", err)
	}
	// The next run, with a good image: the failed instance made again ends its record; then
	// the next replacement may go.
	f.exitOnStart = false
	if _, err := e.CreateContainer(t.Context(), specN(1), create("r3")); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, e); len(got) != 0 {
		t.Fatalf("down records after the container runs again: %v", got)
	}
	if _, err := e.DeleteContainer(t.Context(), "ttnode2", "box1/ttnode2", specN(2).Merged, replace("r3")); err != nil {
		t.Fatal(err)
	}
	// A delete for good is not bound, and ends a record: ttnode3 goes while ttnode2 is down.
	if _, err := e.DeleteContainer(t.Context(), "ttnode3", "box1/ttnode3", specN(3).Merged, TakeDown{Max: 1, Run: "r3"}); err != nil {
		t.Fatal(err)
	}
	// An instance gone for good (its overlay unmounted) no longer counts: its record goes.
	mounted[specN(2).Merged] = false
	withContainer(f, specN(3), true)
	if _, err := e.DeleteContainer(t.Context(), "ttnode3", "box1/ttnode3", specN(3).Merged, replace("r3")); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, e); strings.Join(got, " ") != "box1/ttnode3:" {
		t.Errorf("down records %v, want ttnode3's alone", got)
	}
}

// A record is over once its instance's container runs again (the replacement never took it down,
// or it was made by other means), and it counts while its overlay is mounted, also on a merged
// dir reached through a symlink.
func TestDownRecordsEnd(t *testing.T) {
	f := newFakeDocker()
	root := t.TempDir()
	real := filepath.Join(root, "disk")
	os.MkdirAll(filepath.Join(real, "ttnode2", "mnts"), 0o755)
	os.Symlink(real, filepath.Join(root, "usbdisk"))
	viaLink := filepath.Join(root, "usbdisk", "ttnode2", "mnts")
	mounted := map[string]bool{specN(1).Merged: true, filepath.Join(real, "ttnode2", "mnts"): true}
	e := downEngine(t, f, mounted)
	withContainer(f, specN(1), true)
	two := specN(2)
	two.Merged = viaLink
	withContainer(f, two, false)
	replace := TakeDown{Max: 1, Run: "r1", Replacing: true}
	e.Down.Put(down.Record{Instance: "box1/ttnode2", Merged: viaLink, Container: "ttnode2", Run: "r0"})
	// ttnode2 is down (stopped, overlay mounted through the symlink): ttnode1 waits.
	if _, err := e.DeleteContainer(t.Context(), "ttnode1", "box1/ttnode1", specN(1).Merged, replace); err == nil || !strings.Contains(err.Error(), "down already: box1/ttnode2") {
		t.Fatalf("with ttnode2 down: %v", err)
	}
	// Its container runs again: the record is over, ttnode1 goes.
	f.containers["ttnode2"].running, f.containers["ttnode2"].status = true, "running"
	if _, err := e.DeleteContainer(t.Context(), "ttnode1", "box1/ttnode1", specN(1).Merged, replace); err != nil {
		t.Fatal(err)
	}
	if got := recorded(t, e); strings.Join(got, " ") != "box1/ttnode1:" {
		t.Errorf("down records %v, want ttnode1's alone", got)
	}
}
