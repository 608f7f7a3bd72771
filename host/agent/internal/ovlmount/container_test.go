package ovlmount

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"overlay-fleet/host/agent/internal/docker"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// TestConvergeContainer runs remounts of instance n1 (created with the pinned options, updated
// with nodev) whose spec names its container ttnode1: what is stopped and started, in which order
// around the unmount and the mount, and what a failure leaves.
func TestConvergeContainer(t *testing.T) {
	const name = "ttnode1"
	ours := func(t *testing.T, l *lab) { l.docker.run(t, name, "box1/ttnode1", l.spec(t, "n1", "").Merged) }
	tests := []struct {
		name string
		// setup runs after the create (the container's facts, faults).
		setup func(t *testing.T, l *lab)
		// same converges the spec as created (no remount) instead of with extra.
		same bool
		// extra is the option the update adds ("" for nodev).
		extra string
		// calls are the docker, mount and unmount calls of the update.
		calls   []string
		wantErr []string
		// options are what the merged dir has mounted afterwards ("" for nothing).
		options string
		// running says whether the container runs afterwards.
		running bool
	}{
		{
			name:    "running and the instance's - stopped before the unmount and started after the mount",
			setup:   ours,
			calls:   []string{"docker inspect ttnode1", "docker stop ttnode1", "umount %M", "mount %M", "docker start ttnode1"},
			options: "nodev", running: true,
		},
		{
			name: "not running - stays stopped",
			setup: func(t *testing.T, l *lab) {
				ours(t, l)
				must(t, l.docker.Stop(t.Context(), name))
				l.sys.calls = nil
			},
			calls:   []string{"docker inspect ttnode1", "umount %M", "mount %M"},
			options: "nodev",
		},
		{
			name:    "no such container - a plain remount",
			setup:   func(*testing.T, *lab) {},
			calls:   []string{"docker inspect ttnode1", "umount %M", "mount %M"},
			options: "nodev",
		},
		{
			name:  "no remount - the engine is not asked",
			setup: ours,
			same:  true,
			calls: nil, options: "pinned", running: true,
		},
		{
			name:    "not overlay-fleet's (no label) - refused and never touched",
			setup:   func(t *testing.T, l *lab) { l.docker.run(t, name, "", l.spec(t, "n1", "").Merged) },
			calls:   []string{"docker inspect ttnode1"},
			wantErr: []string{`overlay at "%M" must be remounted (nodev asked for but not in effect), but container "ttnode1" is not overlay-fleet's (it has no overlay-fleet.instance label): refusing to stop it; nothing was changed`},
			options: "pinned", running: true,
		},
		{
			name:    "another instance's (bound to another merged dir) - refused and never touched",
			setup:   func(t *testing.T, l *lab) { l.docker.run(t, name, "box1/ttnode2", l.spec(t, "n2", "").Merged) },
			calls:   []string{"docker inspect ttnode1"},
			wantErr: []string{`container "ttnode1" (of box1/ttnode2) is not this instance's: its bind mount is of "%R/disk/n2/mnts", not of the merged dir; refusing to stop it`},
			options: "pinned", running: true,
		},
		{
			name: "the engine cannot be asked - refused before anything changes",
			setup: func(t *testing.T, l *lab) {
				ours(t, l)
				l.docker.inspectErr = errors.New("docker container inspect ttnode1: no answer")
			},
			calls:   []string{"docker inspect ttnode1"},
			wantErr: []string{`whether its container "ttnode1" runs cannot be told: docker container inspect ttnode1: no answer; nothing was changed`},
			options: "pinned", running: true,
		},
		{
			name:    "the mount fails - the old overlay gone and the container left stopped",
			setup:   func(t *testing.T, l *lab) { ours(t, l); l.sys.mountErr = errors.New("mount(2): invalid argument") },
			calls:   []string{"docker inspect ttnode1", "docker stop ttnode1", "umount %M", "mount %M"},
			wantErr: []string{`mounting the overlay on "%M"`, "failed: mount(2): invalid argument; the overlay it replaced (nodev asked for but not in effect) is unmounted; container \"ttnode1\" left stopped"},
		},
		{
			name: "the new mount is not what was asked - unmounted again and the container left stopped",
			setup: func(t *testing.T, l *lab) {
				ours(t, l)
				l.sys.hide["uuid=null"] = true
			},
			extra:   "uuid=null",
			calls:   []string{"docker inspect ttnode1", "docker stop ttnode1", "umount %M", "mount %M", "umount %M"},
			wantErr: []string{"is not what was asked for", "unmounted it again; container \"ttnode1\" left stopped"},
		},
		{
			name:    "a busy unmount - the old overlay stays and the container is started again",
			setup:   func(t *testing.T, l *lab) { ours(t, l); l.sys.busy[l.spec(t, "n1", "").Merged] = true },
			calls:   []string{"docker inspect ttnode1", "docker stop ttnode1", "umount %M", "docker start ttnode1"},
			wantErr: []string{"cannot be unmounted, it is busy", `; stop what uses it and retry; container "ttnode1" started again`},
			options: "pinned", running: true,
		},
		{
			name: "held besides the container - refused once it is stopped and started again",
			setup: func(t *testing.T, l *lab) {
				ours(t, l)
				l.sys.copyTo("mnt:[9]", l.spec(t, "n1", "").Merged, "/elsewhere")
			},
			calls: []string{"docker inspect ttnode1", "docker stop ttnode1", "docker start ttnode1"},
			wantErr: []string{`with its container "ttnode1" stopped, it is still mounted where its unmount does not reach: pid 4242 (sleep) in mount namespace mnt:[9] has it mounted on "/elsewhere"`,
				`container "ttnode1" started again`},
			options: "pinned", running: true,
		},
		{
			name: "the stop fails - nothing changed",
			setup: func(t *testing.T, l *lab) {
				ours(t, l)
				l.docker.stopErr = errors.New("docker stop ttnode1: no answer")
			},
			calls:   []string{"docker inspect ttnode1", "docker stop ttnode1", "docker start ttnode1"},
			wantErr: []string{`its container "ttnode1" cannot be stopped: docker stop ttnode1: no answer; the overlay was not changed`},
			options: "pinned", running: true,
		},
		{
			name: "the start fails - remounted and said so",
			setup: func(t *testing.T, l *lab) {
				ours(t, l)
				l.docker.startErr = errors.New("docker start ttnode1: bind source missing")
			},
			calls:   []string{"docker inspect ttnode1", "docker stop ttnode1", "umount %M", "mount %M", "docker start ttnode1"},
			wantErr: []string{`the overlay at "%M" is remounted (nodev asked for but not in effect), but container "ttnode1" did not start again: docker start ttnode1: bind source missing`},
			options: "nodev",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t)
			s := l.spec(t, "n1", "")
			mustConverge(t, l, s)
			tt.setup(t, l)
			if extra := tt.extra; !tt.same {
				if extra == "" {
					extra = "nodev"
				}
				s = l.spec(t, "n1", extra)
			}
			s.Container = name
			expand := func(v string) string {
				return strings.NewReplacer("%M", s.Merged, "%R", l.root).Replace(v)
			}
			before := len(l.sys.calls)
			_, err := Converge(t.Context(), l.box, s)
			switch {
			case len(tt.wantErr) == 0 && err != nil:
				t.Fatalf("error: %v", err)
			case len(tt.wantErr) > 0 && err == nil:
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if w = expand(w); !strings.Contains(err.Error(), w) {
					t.Errorf("%q\ndoes not contain %q", err, w)
				}
			}
			var want []string
			for _, c := range tt.calls {
				want = append(want, expand(c))
			}
			if got := l.sys.calls[before:]; !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
				t.Errorf("calls %q\nwant %q", got, want)
			}

			st, err := Read(l.box, l.spec(t, "n1", "nodev"))
			if err != nil {
				t.Fatal(err)
			}
			options := ""
			switch {
			case st.Mounted && len(st.Differences) == 0:
				options = "nodev"
			case st.Mounted:
				options = "pinned"
			}
			if options != tt.options {
				t.Errorf("mounted afterwards: %q (%+v), want %q", options, public(st), tt.options)
			}
			c := l.docker.containers[name]
			if running := c != nil && c.Running; running != tt.running {
				t.Errorf("container running = %v afterwards, want %v", running, tt.running)
			}
			// A running container has the overlay now on the merged dir in its namespace (started
			// after the mount).
			if c != nil && c.Running && c.Merged == s.Merged {
				top, _ := l.sys.table.Top(s.Merged)
				var in []string
				for _, ns := range l.sys.nss {
					if ns.ID == containerNS(name) {
						in = append(in, held(overlayHolders(l.sys.table, s.Merged, top, []Namespace{ns}))...)
					}
				}
				if want := []string{containerNS(name) + ":/mnts"}; !reflect.DeepEqual(in, want) {
					t.Errorf("the container's namespace holds %q, want %q", in, want)
				}
			}
		})
	}
}

func TestDecideContainer(t *testing.T) {
	s := Spec{Merged: "/d/n1/mnts", Lower: "/d/cache", Upper: "/d/n1/upper", Work: "/d/n1/work", Container: "ttnode1"}
	present := map[string]dirState{s.Upper: dirPresent, s.Work: dirPresent, s.Merged: dirPresent}
	differs := State{Mounted: true, Differences: []string{"nodev asked for but not in effect"}}
	ours := func(running bool) *containerFacts {
		return &containerFacts{Container: Container{Name: "ttnode1", Present: true, Running: running, InstanceID: "box1/ttnode1", Merged: s.Merged}, bindsMerged: true}
	}
	holders := []Holder{{NS: "mnt:[9]", PID: 7, Comm: "ttnode", Mount: mountinfo.Mount{MountPoint: "/mnts"}}}
	remount := plan{unmount: true, reason: "nodev asked for but not in effect", mount: true}
	withStop := remount
	withStop.stop = "ttnode1"
	tests := []convergeCase{
		{name: "running and the instance's - stopped", f: facts{state: differs, dirs: present, container: ours(true)}, want: withStop},
		{name: "running and holding the overlay - stopped (the holders looked at again once stopped)",
			f: facts{state: differs, dirs: present, container: ours(true), holders: holders}, want: withStop},
		{name: "not running - stays as it is", f: facts{state: differs, dirs: present, container: ours(false)}, want: remount},
		{name: "not running and the overlay held - refused as before",
			f:       facts{state: differs, dirs: present, container: ours(false), holders: holders},
			wantErr: `it is also mounted where its unmount does not reach: pid 7 (ttnode) in mount namespace mnt:[9]`},
		{name: "none of that name", f: facts{state: differs, dirs: present, container: &containerFacts{Container: Container{Name: "ttnode1"}}}, want: remount},
		{name: "no label", f: facts{state: differs, dirs: present,
			container: &containerFacts{Container: Container{Name: "ttnode1", Present: true, Running: true, Merged: s.Merged}, bindsMerged: true}},
			wantErr: `container "ttnode1" is not overlay-fleet's (it has no overlay-fleet.instance label): refusing to stop it`},
		{name: "no label and stopped - refused too", f: facts{state: differs, dirs: present,
			container: &containerFacts{Container: Container{Name: "ttnode1", Present: true}}},
			wantErr: `container "ttnode1" is not overlay-fleet's`},
		{name: "without a bind", f: facts{state: differs, dirs: present,
			container: &containerFacts{Container: Container{Name: "ttnode1", Present: true, Running: true, InstanceID: "box1/ttnode1"}}},
			wantErr: `container "ttnode1" (of box1/ttnode1) is not this instance's: no bind mount, not of the merged dir`},
		{name: "the conflict comes first", f: facts{state: differs, dirs: map[string]dirState{s.Upper: dirNotDir}, container: ours(true)},
			wantErr: `"/d/n1/upper" exists and is not a directory`},
		{name: "the spec's overlay already - nothing", f: facts{state: State{Mounted: true}, dirs: present}, want: plan{}},
	}
	checkConverge(t, s, tests)
}

// fakeRunner is the docker CLI: it records each call's arguments and answers from out.
type fakeRunner struct {
	calls [][]string
	out   map[string]string
}

func (r *fakeRunner) Run(_ context.Context, kind docker.Kind, args ...string) ([]byte, error) {
	r.calls = append(r.calls, append([]string{fmt.Sprint(kind)}, args...))
	if out, ok := r.out[strings.Join(args, " ")]; ok {
		return []byte(out), nil
	}
	return nil, &docker.Error{Args: args, ExitStatus: 1, Stderr: "Error: No such object: " + args[len(args)-1]}
}

func TestDockerContainers(t *testing.T) {
	r := &fakeRunner{out: map[string]string{
		"container inspect ttnode1": `[{"Id":"c0ffee","Name":"/ttnode1","State":{"Status":"running","Running":true},
			"Config":{"Hostname":"ttnode1","Labels":{"overlay-fleet.instance":"box1/ttnode1"}},
			"HostConfig":{"Mounts":[{"Type":"bind","Source":"/d/n1/mnts","Target":"/mnts"}]}}]`,
		"container inspect web": `[{"Id":"beef","Name":"/web","State":{"Status":"exited","Running":false},"Config":{},"HostConfig":{}}]`,
		"stop ttnode1":          "ttnode1\n",
		"start ttnode1":         "ttnode1\n",
	}}
	d := Docker{CLI: r}
	tests := []struct {
		name string
		want Container
	}{
		{"ttnode1", Container{Name: "ttnode1", Present: true, Running: true, Status: "running", InstanceID: "box1/ttnode1", Merged: "/d/n1/mnts"}},
		{"web", Container{Name: "web", Present: true, Status: "exited"}},
		{"gone", Container{Name: "gone"}},
	}
	for _, tt := range tests {
		if got, err := d.Inspect(t.Context(), tt.name); err != nil || got != tt.want {
			t.Errorf("Inspect(%s) = %+v, %v\nwant %+v", tt.name, got, err, tt.want)
		}
	}
	must(t, d.Stop(t.Context(), "ttnode1"))
	must(t, d.Start(t.Context(), "ttnode1"))
	if err := d.Start(t.Context(), "gone"); err == nil || !strings.Contains(err.Error(), "docker start gone: Error: No such object: gone") {
		t.Errorf("start of a missing container: %v", err)
	}
	change := fmt.Sprint(docker.Change)
	want := [][]string{{"0", "container", "inspect", "ttnode1"}, {"0", "container", "inspect", "web"}, {"0", "container", "inspect", "gone"},
		{change, "stop", "ttnode1"}, {change, "start", "ttnode1"}, {change, "start", "gone"}}
	if !reflect.DeepEqual(r.calls, want) {
		t.Errorf("calls %q\nwant %q", r.calls, want)
	}
}
