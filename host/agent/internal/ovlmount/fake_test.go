package ovlmount

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/lock"
	"overlay-fleet/host/agent/internal/mountinfo"
	"overlay-fleet/host/agent/internal/overlay"
)

// debian is the overlay module parameters of a stock kernel.
var debian = overlay.Params{"index": "N", "nfs_export": "N", "metacopy": "N", "redirect_dir": "N", "redirect_always_follow": "Y"}

// fakeSys is a kernel in memory: a mount table that Mount and Unmount change as Linux would
// (the pinned options, the defaults, not shown; per-mount flags in the mount options).
type fakeSys struct {
	table mountinfo.Table
	// busy are the merged dirs whose unmount fails with EBUSY.
	busy map[string]bool
	// mountErr fails every mount; kernel is what the kernel log says after it.
	mountErr error
	kernel   string
	// hide are overlay options the fake kernel takes but does not show (a kernel ignoring them).
	hide map[string]bool
	// calls are the mounts and unmounts made, as `mount <merged>` and `umount <merged>`.
	calls []string
	next  int
	// nss are the box's other mount namespaces; onUnmount, when set, runs after each unmount
	// (what it did to them: propagation).
	nss       []Namespace
	onUnmount func()
}

func newFakeSys() *fakeSys {
	root, err := mountinfo.ParseLine("1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw")
	if err != nil {
		panic(err)
	}
	return &fakeSys{table: mountinfo.Table{root}, busy: map[string]bool{}, hide: map[string]bool{}}
}

func (f *fakeSys) MountTable() (mountinfo.Table, error) {
	return append(mountinfo.Table(nil), f.table...), nil
}

// add puts a mount on mp (canonical), over what is there.
func (f *fakeSys) add(mp, fstype, source, mountOpts, superOpts string) {
	f.next++
	parent := 1
	if top, ok := f.table.Top(mp); ok {
		parent = top.ID
	}
	f.table = append(f.table, mountinfo.Mount{ID: 100 + f.next, ParentID: parent, Major: 0, Minor: uint32(100 + f.next), Root: "/",
		MountPoint: mp, MountOptions: mountOpts, FSType: fstype, Source: source, SuperOptions: superOpts})
}

func (f *fakeSys) Mount(merged, data string, flags uintptr) error {
	f.calls = append(f.calls, "mount "+merged)
	if f.mountErr != nil {
		return f.mountErr
	}
	super := []string{"rw"}
	if flags&syscall.MS_RDONLY != 0 {
		super[0] = "ro"
	}
	pinned := map[string]bool{}
	for _, o := range strings.Split(overlay.PinnedOptions, ",") {
		pinned[o] = true
	}
	for _, o := range strings.Split(data, ",") {
		if !pinned[o] && !f.hide[o] {
			super = append(super, o)
		}
	}
	mnt := []string{super[0]}
	for _, fl := range []struct {
		bit  uintptr
		name string
	}{{syscall.MS_NOSUID, "nosuid"}, {syscall.MS_NODEV, "nodev"}, {syscall.MS_NOEXEC, "noexec"}} {
		if flags&fl.bit != 0 {
			mnt = append(mnt, fl.name)
		}
	}
	if flags&syscall.MS_NOATIME != 0 {
		mnt = append(mnt, "noatime")
	} else {
		mnt = append(mnt, "relatime")
	}
	f.add(layout.Canon(merged), "overlay", "overlay", strings.Join(mnt, ","), strings.Join(super, ","))
	return nil
}

func (f *fakeSys) Unmount(merged string) error {
	f.calls = append(f.calls, "umount "+merged)
	top, ok := f.table.Top(layout.Canon(merged))
	if !ok {
		return fmt.Errorf("umount(2): %w", syscall.EINVAL)
	}
	if f.busy[merged] {
		return fmt.Errorf("umount(2): %w", syscall.EBUSY)
	}
	for i, m := range f.table {
		if m.ID == top.ID {
			f.table = append(f.table[:i], f.table[i+1:]...)
			break
		}
	}
	if f.onUnmount != nil {
		f.onUnmount()
	}
	return nil
}

func (f *fakeSys) Namespaces() ([]Namespace, error) { return append([]Namespace(nil), f.nss...), nil }

// copyTo puts a copy of the mount on mp (canonical) in namespace id (made when missing, its
// process pid 4242 (sleep)), on mountPoint there, with the optional fields tags.
func (f *fakeSys) copyTo(id, mp, mountPoint string, tags ...string) {
	top, ok := f.table.Top(mp)
	if !ok {
		panic("nothing mounted on " + mp)
	}
	top.ID, top.ParentID, top.MountPoint, top.OptionalFields = 9000+len(f.nss), 1, mountPoint, tags
	for i := range f.nss {
		if f.nss[i].ID == id {
			f.nss[i].Table = append(f.nss[i].Table, top)
			return
		}
	}
	f.nss = append(f.nss, Namespace{ID: id, PID: 4242, Comm: "sleep", Table: mountinfo.Table{f.table[0], top}})
}

type fakeMark string

func (m fakeMark) Since() string { return string(m) }
func (fakeMark) Close()          {}

func (f *fakeSys) KernelLog() KernelMark          { return fakeMark(f.kernel) }
func (f *fakeSys) Users(mountinfo.Mount) []string { return []string{"pid 42 (sleep)"} }
func (f *fakeSys) Params() overlay.Params         { return debian }

// fakeDocker is a docker engine in memory whose containers hold their merged dir as a running
// container does: a running one has a mount namespace of its own (in the fake kernel's nss) with
// a copy of the overlay on its merged dir; stop ends it, start makes it again with the overlay
// mounted there then. Its calls go to the kernel's calls, as `docker <verb> <name>`.
type fakeDocker struct {
	sys        *fakeSys
	containers map[string]*Container
	// inspectErr, stopErr and startErr fail those calls.
	inspectErr, stopErr, startErr error
}

func (d *fakeDocker) Inspect(_ context.Context, name string) (Container, error) {
	d.sys.calls = append(d.sys.calls, "docker inspect "+name)
	if d.inspectErr != nil {
		return Container{}, d.inspectErr
	}
	if c, ok := d.containers[name]; ok {
		return *c, nil
	}
	return Container{Name: name}, nil
}

func (d *fakeDocker) Stop(_ context.Context, name string) error {
	d.sys.calls = append(d.sys.calls, "docker stop "+name)
	if d.stopErr != nil {
		return d.stopErr
	}
	c := d.containers[name]
	c.Running, c.Status = false, "exited"
	d.sys.nss = slices.DeleteFunc(d.sys.nss, func(ns Namespace) bool { return ns.ID == containerNS(name) })
	return nil
}

func (d *fakeDocker) Start(_ context.Context, name string) error {
	d.sys.calls = append(d.sys.calls, "docker start "+name)
	if d.startErr != nil {
		return d.startErr
	}
	c := d.containers[name]
	if c.Running {
		return nil
	}
	c.Running, c.Status = true, "running"
	if _, ok := d.sys.table.Top(layout.Canon(c.Merged)); ok {
		d.sys.copyTo(containerNS(name), layout.Canon(c.Merged), "/mnts")
	}
	return nil
}

// containerNS is the mount namespace of the fake container name.
func containerNS(name string) string { return "mnt:[" + name + "]" }

// run puts a running container name with the instance label id (none when "") on the engine,
// bound to merged.
func (d *fakeDocker) run(t *testing.T, name, id, merged string) {
	t.Helper()
	d.containers[name] = &Container{Name: name, Present: true, InstanceID: id, Merged: merged}
	if err := d.Start(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	d.sys.calls = d.sys.calls[:len(d.sys.calls)-1]
}

// lab is a box in a temp dir: a disk with a lower holding one file, the fake kernel and docker
// engine, a lock dir of the user running the test.
type lab struct {
	root   string
	sys    *fakeSys
	docker *fakeDocker
	box    Box
}

func newLab(t *testing.T) *lab {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "disk", "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "disk", "cache", "a.txt"), []byte("lower-a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sys := newFakeSys()
	d := &fakeDocker{sys: sys, containers: map[string]*Container{}}
	return &lab{root: root, sys: sys, docker: d, box: Box{Sys: sys, Locks: &lock.Dir{Path: filepath.Join(root, "locks"), Owner: os.Getuid()},
		Docker: d, StopSettle: 20 * time.Millisecond}}
}

func (l *lab) p(parts ...string) string { return filepath.Join(append([]string{l.root}, parts...)...) }

// spec is instance name's spec with extra options besides the pinned ones.
func (l *lab) spec(t *testing.T, name, extra string) Spec {
	t.Helper()
	list := overlay.PinnedOptions
	if extra != "" {
		list += "," + extra
	}
	o, err := overlay.ParseOptions("options", list)
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Merged: l.p("disk", name, "mnts"), Lower: l.p("disk", "cache"), Upper: l.p("disk", name, "upper"),
		Work: l.p("disk", name, "work"), Options: o, HasOptions: true}
}
