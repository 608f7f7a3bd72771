package docker

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const merged1 = "/mnt/usbdisk/ttnode1/mnts"

func spec1() ContainerSpec {
	return ContainerSpec{
		Name: "ttnode1", InstanceID: "box1/ttnode1", Hostname: "box1-ttnode1", Network: "macnet",
		IP: "192.168.1.101", MAC: "02:aa:bb:cc:dd:01", Image: labImage, Merged: merged1, Target: "/mnts",
		Restart: "always", DNS: []string{"192.168.1.53"}, Env: map[string]string{"NODE": "1"},
	}
}

// withContainer puts the container s would make on f (running or not).
func withContainer(f *fakeDocker, s ContainerSpec, running bool) *fakeContainer {
	c := &fakeContainer{
		id: f.nextID(), name: s.Name, hostname: s.Hostname, network: s.Network, ip: s.IP, mac: s.MAC, imageRef: s.Image,
		imageID: f.images[s.Image].id, status: "exited", labels: map[string]string{InstanceLabel: s.InstanceID, MACLabel: s.MAC},
		restart: s.Restart, privileged: s.Privileged, dns: s.DNS, env: slices.Clone(f.images[s.Image].env), source: s.Merged, target: s.Target,
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		c.env = append(c.env, k+"="+s.Env[k])
	}
	if running {
		c.running, c.status = true, "running"
	}
	f.containers[s.Name] = c
	return c
}

// want1 is what the operations report about the container of spec1 on f.
func want1(f *fakeDocker) Container {
	s := spec1()
	return Container{
		Name: s.Name, Present: true, ID: f.containers[s.Name].id, Running: true, Status: "running", InstanceID: s.InstanceID,
		Hostname: s.Hostname, Network: s.Network, IP: s.IP, MAC: s.MAC, Image: labImage, ImageID: labImageID,
		Merged: merged1, Target: "/mnts", Restart: "always", DNS: []string{"192.168.1.53"}, Env: map[string]string{"NODE": "1"},
	}
}

// public drops the unexported fields for comparisons.
func public(c Container) Container {
	c.env, c.labels, c.restarts = nil, nil, 0
	return c
}

func TestCreateContainerRunArgs(t *testing.T) {
	f := newFakeDocker()
	s := spec1()
	s.Privileged = true
	s.DNS = []string{"192.168.1.53", "192.168.1.54"}
	s.Env = map[string]string{"NODE": "1", "A": "x y"}
	if _, err := testEngine(t, f, merged1).CreateContainer(t.Context(), s, TakeDown{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"run", "--detach", "--name", "ttnode1", "--hostname", "box1-ttnode1",
		"--label", "overlay-fleet.instance=box1/ttnode1", "--label", "overlay-fleet.mac=02:aa:bb:cc:dd:01",
		"--network", "macnet", "--ip", "192.168.1.101", "--mac-address", "02:aa:bb:cc:dd:01", "--restart", "always",
		"--mount", "type=bind,source=/mnt/usbdisk/ttnode1/mnts,target=/mnts", "--privileged",
		"--dns", "192.168.1.53", "--dns", "192.168.1.54", "--env", "A=x y", "--env", "NODE=1", labImage}
	var run []string
	for _, c := range f.calls {
		if c[0] == "run" {
			run = c
		}
	}
	if !slices.Equal(run, want) {
		t.Errorf("docker run\n%q\nwant\n%q", run, want)
	}
}

func TestCreateContainer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fakeDocker)
		spec  func(s *ContainerSpec)
		// overlays are the dirs with an overlay mounted (default: merged1).
		overlays []string
		wantErr  []string
		// wantCalls are the changing calls made, by their first words.
		wantCalls []string
		// present says whether the container is there afterwards.
		present bool
		// wantImageID is the image id reported (default labImageID).
		wantImageID string
	}{
		{name: "absent: made", setup: func(*fakeDocker) {}, wantCalls: []string{"run"}, present: true},
		{name: "as planned and running: kept, nothing done", setup: func(f *fakeDocker) { withContainer(f, spec1(), true) }, present: true},
		{name: "as planned but stopped: started", setup: func(f *fakeDocker) { withContainer(f, spec1(), false) },
			wantCalls: []string{"start"}, present: true},
		{name: "other restart policy: updated in place", setup: func(f *fakeDocker) {
			s := spec1()
			s.Restart = "no"
			withContainer(f, s, true)
		}, wantCalls: []string{"update"}, present: true},
		{name: "other IP: made again", setup: func(f *fakeDocker) {
			s := spec1()
			s.IP = "192.168.1.199"
			withContainer(f, s, true)
		}, wantCalls: []string{"rm", "run"}, present: true},
		{name: "other image id under the same tag: made again", setup: func(f *fakeDocker) {
			withContainer(f, spec1(), true)
			f.addImage(labImage, newImageID)
		}, wantCalls: []string{"rm", "run"}, present: true, wantImageID: newImageID},
		{name: "other env: made again", setup: func(f *fakeDocker) {
			s := spec1()
			s.Env = map[string]string{"NODE": "1", "EXTRA": "1"}
			withContainer(f, s, true)
		}, wantCalls: []string{"rm", "run"}, present: true},
		{name: "env equal to the image's default is still as planned", setup: func(f *fakeDocker) {
			s := spec1()
			s.Env = map[string]string{"NODE": "1", "CACHE": "/mnts"}
			withContainer(f, s, true)
		}, spec: func(s *ContainerSpec) { s.Env = map[string]string{"NODE": "1", "CACHE": "/mnts"} }, present: true},
		{name: "a container of that name that is not ours", setup: func(f *fakeDocker) {
			withContainer(f, spec1(), true).labels = map[string]string{}
		}, wantErr: []string{"a container named ttnode1 exists that overlay-fleet did not create for box1/ttnode1 (no overlay-fleet.instance label)", "nothing was changed"}, present: true},
		{name: "another instance's", setup: func(f *fakeDocker) {
			withContainer(f, spec1(), true).labels[InstanceLabel] = "box2/ttnode1"
		}, wantErr: []string{"it belongs to box2/ttnode1"}, present: true},
		{name: "image not on the box", setup: func(f *fakeDocker) {}, spec: func(s *ContainerSpec) { s.Image = "ericwang2006/ttnode" },
			wantErr: []string{"image ericwang2006/ttnode is not on this box"}},
		{name: "image id not as planned", setup: func(f *fakeDocker) {}, spec: func(s *ContainerSpec) { s.ImageID = newImageID },
			wantErr: []string{"image overlay-fleet/cache-node:lab on this box is " + labImageID + ", not " + newImageID}},
		{name: "overlay not mounted", setup: func(f *fakeDocker) {}, overlays: []string{"/elsewhere"},
			wantErr: []string{"the overlay of box1/ttnode1 is not mounted at /mnt/usbdisk/ttnode1/mnts (nothing is)"}},
		{name: "stopped, overlay not mounted: not started", setup: func(f *fakeDocker) { withContainer(f, spec1(), false) }, overlays: []string{"/elsewhere"},
			wantErr: []string{"not mounted"}, present: true},
		{name: "to be made again, overlay not mounted: the old one is kept", setup: func(f *fakeDocker) {
			s := spec1()
			s.IP = "192.168.1.199"
			withContainer(f, s, true)
		}, overlays: []string{"/elsewhere"}, wantErr: []string{"not mounted"}, present: true},
		{name: "engine gives another MAC: removed again", setup: func(f *fakeDocker) { f.giveMAC = "02:42:c0:a8:01:65" },
			wantErr: []string{
				"container ttnode1 of box1/ttnode1 does not have its planned identity",
				"planned hostname=box1-ttnode1 ip=192.168.1.101 mac=02:aa:bb:cc:dd:01 on macnet",
				"the engine reports hostname=box1-ttnode1 ip=192.168.1.101 mac=02:42:c0:a8:01:65 on macnet",
				"(container removed)"},
			wantCalls: []string{"run", "rm"}},
		{name: "docker run fails: what it made is removed", setup: func(f *fakeDocker) {
			f.fail["run"] = &Error{Args: []string{"run"}, ExitStatus: 125, Stderr: "docker: Error response from daemon: unable to apply caps: operation not permitted."}
		}, wantErr: []string{"docker run of container ttnode1 of box1/ttnode1 failed", "unable to apply caps", "what it made was removed"},
			wantCalls: []string{"run", "rm"}},
		{name: "restarted by its restart policy since its start: error, removed", setup: func(f *fakeDocker) { f.crashLoop = true },
			wantErr: []string{"does not run after its start (status running, exit code 0, restarted 1 times)", "(container removed)"}, wantCalls: []string{"run", "rm"}},
		{name: "a running container that crashed once before, its restart policy changed: kept", setup: func(f *fakeDocker) {
			c := withContainer(f, spec1(), true)
			c.restarts, c.restart = 3, "no"
		}, wantCalls: []string{"update"}, present: true},
		{name: "exits at once: error, removed", setup: func(f *fakeDocker) { f.exitOnStart = true },
			wantErr: []string{"does not run after its start (status exited, exit code 1, restarted 0 times)", "(container removed)"}, wantCalls: []string{"run", "rm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDocker()
			tt.setup(f)
			s := spec1()
			if tt.spec != nil {
				tt.spec(&s)
			}
			overlays := tt.overlays
			if overlays == nil {
				overlays = []string{merged1}
			}
			before := ""
			if c := f.containers["ttnode1"]; c != nil {
				before = c.id
			}
			c, err := testEngine(t, f, overlays...).CreateContainer(t.Context(), s, TakeDown{})
			var changes []string
			for _, call := range f.callsOf("run", "rm", "start", "stop", "update") {
				changes = append(changes, strings.Fields(call)[0])
			}
			if !slices.Equal(changes, tt.wantCalls) {
				t.Errorf("changes %q, want %q (calls %q)", changes, tt.wantCalls, f.calls)
			}
			if got := f.containers["ttnode1"] != nil; got != tt.present {
				t.Errorf("container there afterwards: %v, want %v", got, tt.present)
			}
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; got %+v", c)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if tc := f.containers["ttnode1"]; tc != nil && before != "" && tc.id != before {
					t.Errorf("the container was replaced on an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := want1(f)
			want.Env = s.Env
			if tt.wantImageID != "" {
				want.ImageID = tt.wantImageID
			}
			if got := public(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestReadContainer(t *testing.T) {
	tests := []struct {
		name    string
		oldAPI  bool
		running bool
		view    View
		edit    func(c *fakeContainer)
		want    func(w *Container)
	}{
		{name: "running", running: true, want: func(*Container) {}},
		{name: "stopped, API 1.44+: MAC from its label", want: func(w *Container) { w.Running, w.Status = false, "exited"; w.ExitCode = 1 }},
		{name: "stopped, API 1.41: MAC from Config", oldAPI: true, edit: func(c *fakeContainer) { delete(c.labels, MACLabel) },
			want: func(w *Container) { w.Running, w.Status = false, "exited"; w.ExitCode = 1 }},
		{name: "stopped, no MAC anywhere", edit: func(c *fakeContainer) { delete(c.labels, MACLabel) },
			want: func(w *Container) { w.Running, w.Status, w.MAC = false, "exited", ""; w.ExitCode = 1 }},
		{name: "another network asked for: no address", running: true, view: View{Network: "other"},
			want: func(w *Container) { w.Network, w.IP, w.MAC = "", "", "" }},
		{name: "another target asked for: no merged dir", running: true, view: View{Target: "/data"},
			want: func(w *Container) { w.Merged, w.Target = "", "/data" }},
		{name: "env the image sets: reported when asked for", running: true, view: View{EnvKeys: []string{"CACHE", "NOPE"}},
			want: func(w *Container) { w.Env = map[string]string{"NODE": "1", "CACHE": "/mnts"} }},
		{name: "no label: not overlay-fleet's", running: true, edit: func(c *fakeContainer) { delete(c.labels, InstanceLabel) },
			want: func(w *Container) { w.InstanceID = "" }},
		{name: "empty restart policy is no", running: true, edit: func(c *fakeContainer) { c.restart = "" },
			want: func(w *Container) { w.Restart = "no" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDocker()
			f.oldAPI = tt.oldAPI
			c := withContainer(f, spec1(), tt.running)
			if tt.edit != nil {
				tt.edit(c)
			}
			got, err := testEngine(t, f).ReadContainer(t.Context(), "ttnode1", tt.view)
			if err != nil {
				t.Fatal(err)
			}
			want := want1(f)
			tt.want(&want)
			if !reflect.DeepEqual(public(got), want) {
				t.Errorf("got\n%+v\nwant\n%+v", public(got), want)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		got, err := testEngine(t, newFakeDocker()).ReadContainer(t.Context(), "ttnode1", View{})
		if err != nil || !reflect.DeepEqual(public(got), Container{Name: "ttnode1", DNS: []string{}, Env: map[string]string{}}) {
			t.Errorf("got %+v, %v", got, err)
		}
	})
}

func TestDeleteContainer(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(f *fakeDocker)
		wantErr   string
		wantCalls []string
		present   bool
	}{
		{name: "absent: fine", setup: func(*fakeDocker) {}},
		{name: "running: stopped, then removed", setup: func(f *fakeDocker) { withContainer(f, spec1(), true) }, wantCalls: []string{"stop", "rm"}},
		{name: "stopped: removed", setup: func(f *fakeDocker) { withContainer(f, spec1(), false) }, wantCalls: []string{"rm"}},
		{name: "stop fails: removed by force", setup: func(f *fakeDocker) {
			withContainer(f, spec1(), true)
			f.fail["stop"] = &Error{ExitStatus: 1, Stderr: "Error response from daemon: cannot stop container"}
		}, wantCalls: []string{"stop", "rm"}},
		{name: "not ours: left alone", setup: func(f *fakeDocker) { withContainer(f, spec1(), true).labels = map[string]string{} },
			wantErr: "a container named ttnode1 exists that overlay-fleet did not create for box1/ttnode1 (no overlay-fleet.instance label): left alone", present: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDocker()
			tt.setup(f)
			c, err := testEngine(t, f).DeleteContainer(t.Context(), "ttnode1", "box1/ttnode1", "", TakeDown{})
			var changes []string
			for _, call := range f.callsOf("run", "rm", "start", "stop", "update") {
				changes = append(changes, strings.Fields(call)[0])
			}
			if !slices.Equal(changes, tt.wantCalls) {
				t.Errorf("changes %q, want %q", changes, tt.wantCalls)
			}
			if got := f.containers["ttnode1"] != nil; got != tt.present {
				t.Errorf("there afterwards: %v, want %v", got, tt.present)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.Present {
				t.Errorf("got %+v, %v", c, err)
			}
		})
	}
}
