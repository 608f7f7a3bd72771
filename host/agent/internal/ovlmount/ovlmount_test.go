package ovlmount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/mountinfo"
	"overlay-fleet/host/agent/internal/overlay"
)

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestLifecycle runs what the provider does with one instance: create, create again, read,
// update of the options, read by the merged dir alone, delete with purge, read.
func TestLifecycle(t *testing.T) {
	l := newLab(t)
	s := l.spec(t, "n1", "")
	st, err := Converge(t.Context(), l.box, s)
	if err != nil {
		t.Fatal(err)
	}
	want := State{Merged: s.Merged, Mounted: true, Lower: s.Lower, Upper: s.Upper, Work: s.Work, Options: overlay.PinnedOptions}
	if got := public(st); !reflect.DeepEqual(got, want) {
		t.Errorf("create: %+v\nwant %+v", got, want)
	}
	for _, d := range []string{s.Upper, s.Work, s.Merged} {
		if !exists(d) {
			t.Errorf("%s was not created", d)
		}
	}
	if !reflect.DeepEqual(l.sys.calls, []string{"mount " + s.Merged}) {
		t.Errorf("calls %q", l.sys.calls)
	}

	// Already the spec's: nothing is done.
	if st, err = Converge(t.Context(), l.box, s); err != nil || !reflect.DeepEqual(public(st), want) {
		t.Errorf("create again: %+v, %v", st, err)
	}
	if len(l.sys.calls) != 1 {
		t.Errorf("create again made calls: %q", l.sys.calls)
	}

	// Other options: unmount, mount.
	s2 := l.spec(t, "n1", "noatime,uuid=null")
	if st, err = Converge(t.Context(), l.box, s2); err != nil {
		t.Fatal(err)
	}
	if st.Options != overlay.PinnedOptions+",noatime,uuid=null" {
		t.Errorf("update: options %q", st.Options)
	}
	if want := []string{"mount " + s.Merged, "umount " + s.Merged, "mount " + s.Merged}; !reflect.DeepEqual(l.sys.calls, want) {
		t.Errorf("update calls %q, want %q", l.sys.calls, want)
	}
	if n := len(mountsAt(l.sys.table, s.Merged)); n != 1 {
		t.Errorf("%d mounts on the merged dir, want 1 (replaced, not stacked)", n)
	}

	// The old spec read against the new mount: its differences, and what is in effect.
	// (uuid=null not asked for does not count: uuid=auto may become it.)
	st, err = Read(l.box, s)
	if err != nil || st.Options != overlay.PinnedOptions+",uuid=null,noatime" || len(st.Differences) != 1 {
		t.Errorf("read with the old options: %+v, %v", st, err)
	}
	// By the merged dir alone (an import): the layers from the mount table.
	st, err = Read(l.box, Spec{Merged: s.Merged})
	if want := (State{Merged: s.Merged, Mounted: true, Lower: s.Lower, Upper: s.Upper, Work: s.Work, Options: overlay.PinnedOptions + ",uuid=null,noatime"}); err != nil || !reflect.DeepEqual(public(st), want) {
		t.Errorf("read by merged: %+v, %v\nwant %+v", public(st), err, want)
	}

	if err := os.WriteFile(filepath.Join(s.Upper, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err = Remove(t.Context(), l.box, s2, true); err != nil || st.Mounted {
		t.Fatalf("delete: %+v, %v", st, err)
	}
	for _, d := range []string{s.Upper, s.Work, s.Merged} {
		if exists(d) {
			t.Errorf("%s is still there after delete with purge", d)
		}
	}
	if data, err := os.ReadFile(filepath.Join(s.Lower, "a.txt")); err != nil || string(data) != "lower-a\n" {
		t.Errorf("lower changed: %q, %v", data, err)
	}
	if st, err = Read(l.box, Spec{Merged: s.Merged}); err != nil || st.Mounted {
		t.Errorf("read after delete: %+v, %v", st, err)
	}
	if st, err = Remove(t.Context(), l.box, s, false); err != nil || st.Mounted {
		t.Errorf("delete of nothing: %+v, %v", st, err)
	}
}

// public is a State without what mountinfo said, for comparisons.
func public(st State) State {
	return State{Merged: st.Merged, Mounted: st.Mounted, Lower: st.Lower, Upper: st.Upper, Work: st.Work, Options: st.Options, Differences: st.Differences}
}

func mountsAt(t mountinfo.Table, mp string) []mountinfo.Mount {
	var out []mountinfo.Mount
	for _, m := range t {
		if m.MountPoint == mp {
			out = append(out, m)
		}
	}
	return out
}

func TestConvergeRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, l *lab) Spec
		wantErr []string
		// mounted says that the instance stays mounted (a refused remount).
		mounted bool
		// calls are the mount and unmount calls the refusal makes.
		calls []string
	}{
		{
			name: "another instance's upper",
			setup: func(t *testing.T, l *lab) Spec {
				mustConverge(t, l, l.spec(t, "n1", ""))
				s := l.spec(t, "n2", "")
				s.Upper = l.spec(t, "n1", "").Upper
				return s
			},
			wantErr: []string{"upper dir", "n1/upper\" is the same as the upperdir of another overlay on", "n1/mnts", `refusing to mount "` + "%ROOT%/disk/n2/mnts"},
		},
		{
			name: "work inside another's upper",
			setup: func(t *testing.T, l *lab) Spec {
				mustConverge(t, l, l.spec(t, "n1", ""))
				s := l.spec(t, "n2", "")
				s.Work = filepath.Join(l.spec(t, "n1", "").Upper, "w")
				return s
			},
			wantErr: []string{"is inside the upperdir of another overlay"},
		},
		{
			name: "another's upper as the lower",
			setup: func(t *testing.T, l *lab) Spec {
				mustConverge(t, l, l.spec(t, "n1", ""))
				s := l.spec(t, "n2", "")
				s.Lower = l.spec(t, "n1", "").Upper
				return s
			},
			wantErr: []string{"lower dir", "is the same as the upperdir of another overlay"},
		},
		{
			name: "a mountpoint of something else",
			setup: func(t *testing.T, l *lab) Spec {
				s := l.spec(t, "n1", "")
				must(t, os.MkdirAll(s.Merged, 0o755))
				l.sys.add(s.Merged, "tmpfs", "of-test", "rw", "rw")
				return s
			},
			wantErr: []string{"is already a mountpoint of tmpfs (of-test), not an overlay"},
		},
		{
			name: "a bare mountpoint with content",
			setup: func(t *testing.T, l *lab) Spec {
				s := l.spec(t, "n1", "")
				must(t, os.MkdirAll(s.Merged, 0o755))
				must(t, os.WriteFile(filepath.Join(s.Merged, "cache.db"), nil, 0o644))
				return s
			},
			wantErr: []string{"is not mounted but not empty"},
		},
		{
			name: "a file where the upper goes",
			setup: func(t *testing.T, l *lab) Spec {
				s := l.spec(t, "n1", "")
				must(t, os.MkdirAll(filepath.Dir(s.Upper), 0o755))
				must(t, os.WriteFile(s.Upper, nil, 0o644))
				return s
			},
			wantErr: []string{"n1/upper\" exists and is not a directory"},
		},
		{
			name: "a missing lower",
			setup: func(t *testing.T, l *lab) Spec {
				s := l.spec(t, "n1", "")
				s.Lower = l.p("nodisk", "cache")
				return s
			},
			wantErr: []string{"lower dir", "nodisk/cache\" does not exist"},
		},
		{
			name: "a busy remount",
			setup: func(t *testing.T, l *lab) Spec {
				s := l.spec(t, "n1", "")
				mustConverge(t, l, s)
				l.sys.busy[s.Merged] = true
				return l.spec(t, "n1", "nodev")
			},
			wantErr: []string{"must be remounted (", "nodev asked for but not in effect", "it is busy", "device or resource busy", "pid 42 (sleep)"},
			mounted: true,
			calls:   []string{"umount %ROOT%/disk/n1/mnts"},
		},
		{
			name: "a remount of an overlay also mounted in another mount namespace (a private copy)",
			setup: func(t *testing.T, l *lab) Spec {
				s := l.spec(t, "n1", "")
				mustConverge(t, l, s)
				l.sys.copyTo("mnt:[9]", s.Merged, s.Merged)
				return l.spec(t, "n1", "nodev")
			},
			wantErr: []string{`overlay at "%ROOT%/disk/n1/mnts" must be remounted (`, "nodev asked for but not in effect",
				`it is also mounted where its unmount does not reach: pid 4242 (sleep) in mount namespace mnt:[9] has it mounted on "%ROOT%/disk/n1/mnts"`},
			mounted: true,
		},
		{
			name: "a remount whose unmount leaves a copy in another namespace: no second overlay on the upper",
			setup: func(t *testing.T, l *lab) Spec {
				s := l.spec(t, "n1", "")
				mustConverge(t, l, s)
				shareTop(l, s.Merged, "shared:7")
				l.sys.copyTo("mnt:[9]", s.Merged, s.Merged, "master:7") // a slave copy the kernel did not unmount
				return l.spec(t, "n1", "nodev")
			},
			wantErr: []string{"must be remounted (", "it is unmounted here but still mounted elsewhere: pid 4242 (sleep) in mount namespace mnt:[9]", "not mounting another overlay"},
			calls:   []string{"umount %ROOT%/disk/n1/mnts"},
		},
		{
			name: "the kernel refuses",
			setup: func(t *testing.T, l *lab) Spec {
				l.sys.mountErr = errors.New("mount(2): invalid argument")
				l.sys.kernel = "overlayfs: workdir and upperdir must reside under the same mount"
				return l.spec(t, "n1", "")
			},
			wantErr: []string{"mounting the overlay on", "failed: mount(2): invalid argument; kernel: overlayfs: workdir and upperdir must reside under the same mount"},
			calls:   []string{"mount %ROOT%/disk/n1/mnts"},
		},
		{
			name: "the kernel mounts without an option",
			setup: func(t *testing.T, l *lab) Spec {
				l.sys.hide["uuid=null"] = true
				return l.spec(t, "n1", "uuid=null")
			},
			wantErr: []string{"is not what was asked for (uuid=null asked for but mounted with uuid=auto)", "unmounted it again"},
			calls:   []string{"mount %ROOT%/disk/n1/mnts", "umount %ROOT%/disk/n1/mnts"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t)
			s := tt.setup(t, l)
			before := len(l.sys.calls)
			_, err := Converge(t.Context(), l.box, s)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if w = strings.ReplaceAll(w, "%ROOT%", l.root); !strings.Contains(err.Error(), w) {
					t.Errorf("%q\ndoes not contain %q", err, w)
				}
			}
			var want []string
			for _, c := range tt.calls {
				want = append(want, strings.ReplaceAll(c, "%ROOT%", l.root))
			}
			if got := l.sys.calls[before:]; len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
				t.Errorf("calls %q, want %q", got, want)
			}
			st, rerr := Read(l.box, Spec{Merged: s.Merged})
			if rerr == nil && st.Mounted != tt.mounted {
				t.Errorf("mounted = %v afterwards, want %v", st.Mounted, tt.mounted)
			}
		})
	}
}

func TestRemoveRefusals(t *testing.T) {
	t.Run("busy", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		mustConverge(t, l, s)
		l.sys.busy[s.Merged] = true
		_, err := Remove(t.Context(), l.box, s, true)
		if err == nil || !strings.Contains(err.Error(), "cannot unmount the overlay at") || !strings.Contains(err.Error(), "busy") || !strings.Contains(err.Error(), "pid 42") {
			t.Fatalf("busy delete: %v", err)
		}
		if st, _ := Read(l.box, s); !st.Mounted || !exists(s.Upper) || !exists(s.Work) {
			t.Errorf("a busy delete changed something: %+v", st)
		}
	})
	t.Run("also mounted in another mount namespace", func(t *testing.T) {
		for _, purge := range []bool{true, false} {
			l := newLab(t)
			s := l.spec(t, "n1", "")
			mustConverge(t, l, s)
			must(t, os.WriteFile(filepath.Join(s.Upper, "data"), []byte("x"), 0o644))
			l.sys.copyTo("mnt:[9]", s.Merged, "/mnts") // a container's volume
			_, err := Remove(t.Context(), l.box, s, purge)
			if want := fmt.Sprintf(`cannot unmount the overlay at %q: it is also mounted where its unmount does not reach: pid 4242 (sleep) in mount namespace mnt:[9] has it mounted on "/mnts"`, s.Merged); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("delete (purge %v): %v\nwant %s", purge, err, want)
			}
			if st, _ := Read(l.box, s); !st.Mounted || !exists(filepath.Join(s.Upper, "data")) || len(l.sys.calls) != 1 {
				t.Errorf("a refused delete changed something: %+v, calls %q", st, l.sys.calls)
			}
		}
	})
	t.Run("copies the unmount reaches by propagation", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		mustConverge(t, l, s)
		shareTop(l, s.Merged, "shared:7")
		l.sys.copyTo("mnt:[9]", s.Merged, s.Merged, "master:7")
		l.sys.copyTo("mnt:[10]", s.Merged, s.Merged, "shared:7")
		l.sys.onUnmount = func() { l.sys.nss = nil } // the kernel takes the copies along
		if st, err := Remove(t.Context(), l.box, s, true); err != nil || st.Mounted || exists(s.Upper) {
			t.Fatalf("delete: %+v, %v", st, err)
		}
	})
	t.Run("a copy the unmount did not reach: no purge", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		mustConverge(t, l, s)
		must(t, os.WriteFile(filepath.Join(s.Upper, "data"), []byte("x"), 0o644))
		shareTop(l, s.Merged, "shared:7")
		l.sys.copyTo("mnt:[9]", s.Merged, s.Merged, "master:7")
		_, err := Remove(t.Context(), l.box, s, true)
		if want := fmt.Sprintf("refusing to purge %q and %q: the overlay unmounted from %q is still mounted elsewhere: pid 4242 (sleep) in mount namespace mnt:[9]", s.Upper, s.Work, s.Merged); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("delete: %v\nwant %s", err, want)
		}
		if !exists(filepath.Join(s.Upper, "data")) || !exists(s.Work) {
			t.Error("purged while the overlay lives on")
		}
	})
	t.Run("the upper bound in another mount namespace", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		mustConverge(t, l, s)
		l.sys.nss = []Namespace{{ID: "mnt:[9]", PID: 77, Comm: "app", Table: mountinfo.Table{
			{ID: 900, ParentID: 1, Major: 8, Minor: 1, Root: filepath.Join(s.Upper, "sub"), MountPoint: "/data", FSType: "ext4"},
		}}}
		_, err := Remove(t.Context(), l.box, s, true)
		if want := fmt.Sprintf(`refusing to purge %q: it, or a dir inside it, is mounted elsewhere: pid 77 (app) in mount namespace mnt:[9] has it mounted on "/data"`, s.Upper); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("delete: %v\nwant %s", err, want)
		}
		if st, _ := Read(l.box, s); !st.Mounted {
			t.Error("unmounted before the purge was refused")
		}
		if st, err := Remove(t.Context(), l.box, s, false); err != nil || st.Mounted || !exists(s.Upper) {
			t.Errorf("delete without purge: %+v, %v", st, err)
		}
	})
	t.Run("upper holds another overlay's lower", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		mustConverge(t, l, s)
		must(t, os.MkdirAll(filepath.Join(s.Upper, "sub"), 0o755))
		l.sys.add(l.p("view"), "overlay", "overlay", "ro,relatime", "ro,lowerdir="+filepath.Join(s.Upper, "sub")+":"+s.Lower)
		_, err := Remove(t.Context(), l.box, s, true)
		if err == nil || !strings.Contains(err.Error(), "refusing to purge") || !strings.Contains(err.Error(), "contains the lowerdir of another overlay on \""+l.p("view")) {
			t.Fatalf("purge: %v", err)
		}
		if st, _ := Read(l.box, s); !st.Mounted || !exists(filepath.Join(s.Upper, "sub")) {
			t.Error("a refused purge changed something")
		}
	})
	t.Run("something mounted inside the work dir", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		mustConverge(t, l, s)
		must(t, os.MkdirAll(filepath.Join(s.Work, "m"), 0o755))
		l.sys.add(filepath.Join(s.Work, "m"), "tmpfs", "x", "rw", "rw")
		_, err := Remove(t.Context(), l.box, s, true)
		if err == nil || !strings.Contains(err.Error(), "something is mounted inside it: "+filepath.Join(s.Work, "m")+" (tmpfs)") {
			t.Fatalf("purge: %v", err)
		}
	})
	t.Run("a mountpoint of something else", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		must(t, os.MkdirAll(s.Merged, 0o755))
		l.sys.add(s.Merged, "tmpfs", "of-test", "rw", "rw")
		_, err := Remove(t.Context(), l.box, s, false)
		if err == nil || !strings.Contains(err.Error(), "is a mountpoint of tmpfs (of-test), not an overlay; refusing to unmount it") {
			t.Fatalf("delete: %v", err)
		}
	})
	t.Run("a merged dir with content is kept", func(t *testing.T) {
		l := newLab(t)
		s := l.spec(t, "n1", "")
		must(t, os.MkdirAll(s.Merged, 0o755))
		must(t, os.WriteFile(filepath.Join(s.Merged, "f"), nil, 0o644))
		if _, err := Remove(t.Context(), l.box, s, false); err != nil || !exists(filepath.Join(s.Merged, "f")) {
			t.Fatalf("delete: %v", err)
		}
	})
}

// shareTop gives the overlay on merged the propagation tags (e.g. shared:7), as a mount in a
// shared subtree has.
func shareTop(l *lab, merged string, tags ...string) {
	top, _ := l.sys.table.Top(merged)
	for i := range l.sys.table {
		if l.sys.table[i].ID == top.ID {
			l.sys.table[i].OptionalFields = tags
		}
	}
}

func mustConverge(t *testing.T, l *lab, s Spec) {
	t.Helper()
	if _, err := Converge(t.Context(), l.box, s); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestObserve(t *testing.T) {
	o, err := overlay.ParseOptions("options", overlay.PinnedOptions+",noatime")
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Merged: "/d/n1/mnts", Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work", Options: o, HasOptions: true}
	line := func(s string) mountinfo.Mount {
		m, err := mountinfo.ParseLine(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	root := line("1 0 8:1 / / rw - ext4 /dev/sda1 rw")
	ours := line("50 1 0:50 / /d/n1/mnts rw,noatime - overlay overlay rw,lowerdir=/d/cache,upperdir=/d/n1/upper,workdir=/d/n1/work,uuid=on")
	same := func(a, b string) bool { return a == b || (a == "/d/alias/upper" && b == "/d/n1/upper") }
	tests := []struct {
		name  string
		table mountinfo.Table
		spec  Spec
		want  State
		// foreign is the type of the foreign mount expected, if any.
		foreign string
	}{
		{name: "nothing mounted", table: mountinfo.Table{root}, spec: spec, want: State{Merged: spec.Merged}},
		{name: "ours", table: mountinfo.Table{root, ours}, spec: spec,
			want: State{Merged: spec.Merged, Mounted: true, Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work", Options: overlay.PinnedOptions + ",noatime"}},
		{name: "by merged alone", table: mountinfo.Table{root, ours}, spec: Spec{Merged: spec.Merged},
			want: State{Merged: spec.Merged, Mounted: true, Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work", Options: overlay.PinnedOptions + ",noatime"}},
		{name: "the same upper by another name: the spec's name",
			table: mountinfo.Table{root, line("50 1 0:50 / /d/n1/mnts rw,noatime - overlay overlay rw,lowerdir=/d/cache,upperdir=/d/alias/upper,workdir=/d/n1/work")},
			spec:  spec,
			want:  State{Merged: spec.Merged, Mounted: true, Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work", Options: overlay.PinnedOptions + ",noatime"}},
		{name: "other layers and options",
			table: mountinfo.Table{root, line("50 1 0:50 / /d/n1/mnts rw,relatime - overlay overlay rw,lowerdir=/d/cache.g2:/d/base,upperdir=/d/x/upper,workdir=/d/n1/work,xino=on")},
			spec:  spec,
			want: State{Merged: spec.Merged, Mounted: true, Lower: "/d/cache.g2:/d/base", Upper: "/d/x/upper", Work: "/d/n1/work",
				Options: overlay.PinnedOptions + ",xino=on",
				Differences: []string{`lowerdir is "/d/cache.g2:/d/base", want "/d/cache"`, `upperdir is "/d/x/upper", want "/d/n1/upper"`,
					"access times noatime asked for but the mount has relatime", "mounted with xino=on, not asked for"}}},
		{name: "a read-only overlay",
			table: mountinfo.Table{root, line("50 1 0:50 / /d/n1/mnts ro,noatime - overlay overlay ro,lowerdir=/d/n1/upper:/d/cache")},
			spec:  spec,
			want: State{Merged: spec.Merged, Mounted: true, Lower: "/d/n1/upper:/d/cache", Options: overlay.PinnedOptions + ",ro,noatime",
				Differences: []string{`lowerdir is "/d/n1/upper:/d/cache", want "/d/cache"`, `no upperdir, want "/d/n1/upper"`, `no workdir, want "/d/n1/work"`, "mounted read-only"}}},
		{name: "a tmpfs over ours", table: mountinfo.Table{root, ours, line("60 50 0:60 / /d/n1/mnts rw - tmpfs x rw")}, spec: spec,
			want: State{Merged: spec.Merged}, foreign: "tmpfs"},
		{name: "ours over a tmpfs", table: mountinfo.Table{root, line("60 1 0:60 / /d/n1/mnts rw - tmpfs x rw"),
			line("50 60 0:50 / /d/n1/mnts rw,noatime - overlay overlay rw,lowerdir=/d/cache,upperdir=/d/n1/upper,workdir=/d/n1/work")}, spec: spec,
			want: State{Merged: spec.Merged, Mounted: true, Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work", Options: overlay.PinnedOptions + ",noatime"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Observe(tt.table, "/d/n1/mnts", tt.spec, debian, same)
			if got := public(st); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Observe() = %+v\nwant %+v", got, tt.want)
			}
			if got := ""; st.Foreign != nil || tt.foreign != "" {
				if st.Foreign != nil {
					got = st.Foreign.FSType
				}
				if got != tt.foreign {
					t.Errorf("foreign mount %q, want %q", got, tt.foreign)
				}
			}
		})
	}
}

func TestDecideConverge(t *testing.T) {
	s := Spec{Merged: "/d/n1/mnts", Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work"}
	present := map[string]dirState{s.Upper: dirPresent, s.Work: dirPresent, s.Merged: dirPresent}
	mounted := State{Merged: s.Merged, Mounted: true}
	tests := []convergeCase{
		{name: "fresh", f: facts{dirs: map[string]dirState{}, mergedEmpty: true},
			want: plan{mkdir: []string{s.Upper, s.Work, s.Merged}, mount: true}},
		{name: "dirs there, empty merged", f: facts{dirs: present, mergedEmpty: true}, want: plan{mount: true}},
		{name: "already ours", f: facts{state: mounted, dirs: present}, want: plan{}},
		{name: "ours, the work dir gone", f: facts{state: mounted, dirs: map[string]dirState{s.Upper: dirPresent, s.Merged: dirPresent}},
			want: plan{mkdir: []string{s.Work}}},
		{name: "differs", f: facts{state: State{Mounted: true, Differences: []string{"a", "b"}}, dirs: present},
			want: plan{unmount: true, reason: "a; b", mount: true}},
		{name: "differs, also mounted in another namespace", f: facts{state: State{Mounted: true, Differences: []string{"a"}}, dirs: present,
			holders: []Holder{{NS: "mnt:[9]", PID: 7, Comm: "sleep", Mount: mountinfo.Mount{MountPoint: "/mnts"}}}},
			wantErr: `overlay at "/d/n1/mnts" must be remounted (a) but it is also mounted where its unmount does not reach: pid 7 (sleep) in mount namespace mnt:[9] has it mounted on "/mnts"`},
		{name: "conflict", f: facts{conflict: &layout.Finding{Label: "upper", Path: s.Upper, Rel: layout.Same, Kind: "upperdir", Layer: s.Upper, MountPoint: "/d/n2/mnts"}, dirs: present},
			wantErr: `upper dir "/d/n1/upper" is the same as the upperdir of another overlay on "/d/n2/mnts" (upperdir "/d/n1/upper"); refusing to mount "/d/n1/mnts"`},
		{name: "not a dir", f: facts{dirs: map[string]dirState{s.Upper: dirPresent, s.Work: dirNotDir}}, wantErr: `"/d/n1/work" exists and is not a directory`},
		{name: "foreign", f: facts{state: State{Foreign: &mountinfo.Mount{FSType: "tmpfs", Source: "t"}}, dirs: present},
			wantErr: `merged dir "/d/n1/mnts" is already a mountpoint of tmpfs (t), not an overlay`},
		{name: "not empty", f: facts{dirs: present}, wantErr: `merged dir "/d/n1/mnts" is not mounted but not empty`},
	}
	checkConverge(t, s, tests)
}

func TestCheckLayout(t *testing.T) {
	base := Spec{Merged: "/d/n1/mnts", Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work"}
	tests := []struct {
		name    string
		edit    func(*Spec)
		wantErr string
	}{
		{"apart", func(*Spec) {}, ""},
		{"upper in lower", func(s *Spec) { s.Upper = "/d/cache/u" }, `upper dir "/d/cache/u" must not be the same as or inside the lower dir "/d/cache"`},
		{"work is upper", func(s *Spec) { s.Work = s.Upper }, `upper dir "/d/n1/upper" must not be the same as or inside the work dir`},
		{"merged in upper", func(s *Spec) { s.Merged = "/d/n1/upper/m" }, `merged dir "/d/n1/upper/m" must not be the same as or inside the upper dir`},
		{"work in merged", func(s *Spec) { s.Work = "/d/n1/mnts/w" }, `work dir "/d/n1/mnts/w" must not be the same as or inside the merged dir`},
		{"lower inside upper", func(s *Spec) { s.Lower = "/d/n1/upper/l" }, `lower dir "/d/n1/upper/l" must not be the same as or inside the upper dir`},
		{"merged alone", func(s *Spec) { *s = Spec{Merged: s.Merged} }, ""},
	}
	for _, tt := range tests {
		s := base
		tt.edit(&s)
		err := CheckLayout(s)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: CheckLayout() = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestCheckPurge(t *testing.T) {
	tests := []struct {
		merged, upper, work, wantErr string
	}{
		{"/d/n1/mnts", "/d/n1/upper", "/d/n1/work", ""},
		{"/d/n1/mnts", "/d/cache", "/d/n1/work", `refusing to purge "/d/cache": the upper dir must be "/d/n1/upper"`},
		{"/d/n1/mnts", "/d/n1/upper", "/d/n2/work", `refusing to purge "/d/n2/work": the work dir must be "/d/n1/work"`},
		{"/d/n1/merged", "/d/n1/upper", "/d/n1/work", `the merged dir "/d/n1/merged" is not <instanceDir>/mnts`},
		{"/mnts", "/upper", "/work", "is not <instanceDir>/mnts"},
	}
	for _, tt := range tests {
		err := CheckPurge(tt.merged, tt.upper, tt.work)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("CheckPurge(%q, %q, %q) = %v, want %q", tt.merged, tt.upper, tt.work, err, tt.wantErr)
		}
	}
}

func TestOverlayMessages(t *testing.T) {
	records := []string{
		"6,100,5000,-;eth0: link up\n",
		"4,101,5001,-;overlayfs: upper fs does not support tmpfile.\n SUBSYSTEM=x\n",
		"3,102,5002,-;overlayfs: workdir and upperdir must reside under the same mount\n",
		"3,103,5003,-;overlayfs: workdir and upperdir must reside under the same mount\n",
		"garbage without a prefix",
	}
	want := "overlayfs: upper fs does not support tmpfile. | overlayfs: workdir and upperdir must reside under the same mount"
	if got := overlayMessages(records); got != want {
		t.Errorf("overlayMessages() = %q, want %q", got, want)
	}
	var many []string
	for _, c := range "abcdefg" {
		many = append(many, "3,1,1,-;overlayfs: "+string(c))
	}
	if got := overlayMessages(many); got != "overlayfs: c | overlayfs: d | overlayfs: e | overlayfs: f | overlayfs: g" {
		t.Errorf("the last five: %q", got)
	}
	if got := markKmsg(filepath.Join(t.TempDir(), "no-kmsg")); got.Since() != "" {
		t.Errorf("a log that cannot be opened says %q", got.Since())
	}
}

func TestUsers(t *testing.T) {
	proc := t.TempDir()
	used := t.TempDir()
	var st syscallStat
	if err := statOf(used, &st); err != nil {
		t.Fatal(err)
	}
	major, minor := devMajor(st.dev), devMinor(st.dev)
	for pid, cwd := range map[string]string{"123": used, "77": "/", "9": used} {
		must(t, os.MkdirAll(filepath.Join(proc, pid, "fd"), 0o755))
		must(t, os.Symlink(cwd, filepath.Join(proc, pid, "cwd")))
		must(t, os.Symlink("/", filepath.Join(proc, pid, "root")))
		must(t, os.WriteFile(filepath.Join(proc, pid, "comm"), []byte("proc"+pid+"\n"), 0o644))
	}
	must(t, os.Symlink(filepath.Join(used, "."), filepath.Join(proc, "77", "fd", "3")))
	must(t, os.MkdirAll(filepath.Join(proc, "self"), 0o755))
	got := users(proc, major, minor)
	if want := []string{"pid 9 (proc9)", "pid 77 (proc77)", "pid 123 (proc123)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("users() = %q, want %q", got, want)
	}
	if inUseBy(got[:1]) != "; in use by: pid 9 (proc9)" || inUseBy(nil) != "" {
		t.Error("inUseBy")
	}
}

// convergeCase is a case of decideConverge: the facts gathered, the plan or the error wanted.
type convergeCase struct {
	name    string
	f       facts
	want    plan
	wantErr string
}

// checkConverge runs decideConverge(s, ...) on each case.
func checkConverge(t *testing.T, s Spec, tests []convergeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decideConverge(s, tt.f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decideConverge() = %+v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decideConverge() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
