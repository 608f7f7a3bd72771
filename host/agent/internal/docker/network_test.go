package docker

import (
	"errors"
	"strings"
	"testing"
)

var macnet = NetworkSpec{Name: "macnet", Parent: "eth0", Subnet: "192.168.1.0/24", Gateway: "192.168.1.1", Box: "box1"}

func withNetwork(f *fakeDocker, s NetworkSpec, box string) *fakeNetwork {
	n := &fakeNetwork{id: f.nextID(), name: s.Name, driver: "macvlan", parent: s.Parent, subnet: s.Subnet, gateway: s.Gateway, labels: map[string]string{}}
	if box != "" {
		n.labels[BoxLabel] = box
	}
	f.networks[s.Name] = n
	return n
}

func TestCreateNetwork(t *testing.T) {
	other := macnet
	other.Subnet, other.Gateway = "10.0.0.0/24", "10.0.0.1"
	tests := []struct {
		name    string
		setup   func(f *fakeDocker)
		wantErr []string // parts of the error; none: success
		creates bool
	}{
		{name: "absent: made", setup: func(*fakeDocker) {}, creates: true},
		{name: "there as planned: kept", setup: func(f *fakeDocker) { withNetwork(f, macnet, "box1") }},
		{name: "not ours", setup: func(f *fakeDocker) { withNetwork(f, macnet, "") },
			wantErr: []string{"macnet exists that overlay-fleet did not create for box box1", "nothing was changed"}},
		{name: "another box's", setup: func(f *fakeDocker) { withNetwork(f, macnet, "box2") },
			wantErr: []string{"did not create for box box1", `overlay-fleet.box="box2"`}},
		{name: "ours, otherwise", setup: func(f *fakeDocker) { withNetwork(f, other, "box1") },
			wantErr: []string{"is macvlan on eth0, 10.0.0.0/24 via 10.0.0.1, the plan wants macvlan on eth0, 192.168.1.0/24 via 192.168.1.1"}},
		{name: "engine refuses", setup: func(f *fakeDocker) {
			f.fail["network create"] = &Error{ExitStatus: 1, Stderr: "Error response from daemon: network dm-1 is already using parent interface eth0"}
		}, wantErr: []string{"cannot create docker network macnet", "already using parent interface eth0"}, creates: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDocker()
			tt.setup(f)
			before := len(f.networks)
			n, err := testEngine(t, f).CreateNetwork(t.Context(), macnet)
			if got := len(f.callsOf("network create")) == 1; got != tt.creates {
				t.Errorf("network create called: %v, want %v (%q)", got, tt.creates, f.calls)
			}
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; got %+v", n)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if len(f.networks) != before {
					t.Errorf("networks changed: %d -> %d", before, len(f.networks))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Network{Name: "macnet", Present: true, ID: f.networks["macnet"].id, Driver: "macvlan", Parent: "eth0", Subnet: "192.168.1.0/24", Gateway: "192.168.1.1", Box: "box1"}
			if n != want {
				t.Errorf("got %+v, want %+v", n, want)
			}
		})
	}
}

func TestCreateNetworkArgs(t *testing.T) {
	f := newFakeDocker()
	if _, err := testEngine(t, f).CreateNetwork(t.Context(), macnet); err != nil {
		t.Fatal(err)
	}
	want := "network create --driver macvlan --opt parent=eth0 --subnet 192.168.1.0/24 --gateway 192.168.1.1 --label overlay-fleet.box=box1 macnet"
	if got := f.callsOf("network create"); len(got) != 1 || got[0] != want {
		t.Errorf("calls %q, want %q", got, want)
	}
}

func TestDeleteNetwork(t *testing.T) {
	ours := func(f *fakeDocker, name, instance string) {
		f.containers[name] = &fakeContainer{id: f.nextID(), name: name, network: "macnet", labels: map[string]string{InstanceLabel: instance}}
	}
	tests := []struct {
		name    string
		setup   func(f *fakeDocker)
		wantErr []string
		removes bool
	}{
		{name: "absent: fine", setup: func(*fakeDocker) {}},
		{name: "unused: removed", setup: func(f *fakeDocker) { withNetwork(f, macnet, "box1") }, removes: true},
		{name: "another box's containers elsewhere do not matter", setup: func(f *fakeDocker) {
			withNetwork(f, macnet, "box1")
			f.containers["x"] = &fakeContainer{name: "x", network: "bridge", labels: map[string]string{}}
		}, removes: true},
		{name: "not ours", setup: func(f *fakeDocker) { withNetwork(f, macnet, "") },
			wantErr: []string{"macnet was not created by overlay-fleet for box box1", "left alone"}},
		{name: "used by a foreign container", setup: func(f *fakeDocker) {
			withNetwork(f, macnet, "box1")
			ours(f, "ttnode1", "box1/ttnode1")
			f.containers["pihole"] = &fakeContainer{name: "pihole", network: "macnet", labels: map[string]string{}}
			ours(f, "other", "box2/ttnode1")
		}, wantErr: []string{"used by containers overlay-fleet did not create for box box1: other, pihole", "nothing was changed"}},
		{name: "used by the box's own", setup: func(f *fakeDocker) {
			withNetwork(f, macnet, "box1")
			ours(f, "ttnode2", "box1/ttnode2")
			ours(f, "ttnode1", "box1/ttnode1")
		}, wantErr: []string{"still used by containers of box box1: ttnode1, ttnode2", "delete them first"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDocker()
			tt.setup(f)
			n, err := testEngine(t, f).DeleteNetwork(t.Context(), "macnet", "box1")
			if got := len(f.callsOf("network rm")) == 1; got != tt.removes {
				t.Errorf("network rm called: %v, want %v", got, tt.removes)
			}
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if f.networks["macnet"] == nil {
					t.Error("the network was removed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Present || f.networks["macnet"] != nil {
				t.Errorf("still there: %+v", n)
			}
		})
	}
}

func TestReadNetwork(t *testing.T) {
	f := newFakeDocker()
	e := testEngine(t, f)
	n, err := e.ReadNetwork(t.Context(), "macnet")
	if err != nil || n != (Network{Name: "macnet"}) {
		t.Errorf("absent: %+v, %v", n, err)
	}
	withNetwork(f, macnet, "box1")
	n, err = e.ReadNetwork(t.Context(), "macnet")
	if err != nil || !n.Present || n.Box != "box1" || n.Parent != "eth0" {
		t.Errorf("present: %+v, %v", n, err)
	}
	f.fail["network inspect"] = &Error{Args: []string{"network", "inspect", "macnet"}, ExitStatus: 1, Stderr: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"}
	if _, err := e.ReadNetwork(t.Context(), "macnet"); err == nil || !strings.Contains(err.Error(), "Cannot connect") {
		t.Errorf("engine down: %v", err)
	} else if var_ := new(*Error); !errors.As(err, var_) {
		t.Errorf("not a docker error: %T", err)
	}
}
