package provider

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"overlay-fleet/provider/internal/box"
)

const ctrImageID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func ctrArgs() ContainerArgs {
	return ContainerArgs{
		Name: "ttnode1", InstanceID: "box1/ttnode1", Hostname: "box1-ttnode1", Network: "macnet", IP: "192.168.1.101",
		MAC: "02:aa:bb:cc:dd:01", Image: "overlay-fleet/cache-node:lab", Merged: "/mnt/usbdisk/ttnode1/mnts", Target: "/mnts",
		Restart: "always", DNS: []string{"192.168.1.53"}, Env: map[string]string{"NODE": "1"},
	}
}

// ctrState is the state of the container of a, running, as the box reports it.
func ctrState(a ContainerArgs) ContainerState {
	s := a.planned()
	s.ImageID, s.ContainerID = ctrImageID, "c1"
	return s
}

func ctrAnswer(s ContainerState) map[string]any {
	dns := []any{}
	for _, d := range s.DNS {
		dns = append(dns, d)
	}
	env := map[string]any{}
	for k, v := range s.Env {
		env[k] = v
	}
	return map[string]any{"name": s.Name, "id": s.ContainerID, "present": true, "running": s.Running, "status": s.Status,
		"instanceId": s.InstanceID, "hostname": s.Hostname, "network": s.Network, "ip": s.IP, "mac": s.MAC, "image": s.Image,
		"imageId": s.ImageID, "merged": s.Merged, "target": s.Target, "restart": s.Restart, "privileged": s.Privileged,
		"dns": dns, "env": env}
}

var ctrAbsent = map[string]any{"name": "ttnode1", "id": "", "present": false, "running": false, "status": "", "instanceId": "",
	"hostname": "", "network": "", "ip": "", "mac": "", "image": "", "imageId": "", "merged": "", "target": "", "restart": "",
	"privileged": false, "dns": []any{}, "env": map[string]any{}}

func ctrOn(f *fakeRunner) *Container {
	return &Container{box: func(context.Context) (Box, error) { return Box{Runner: f, AgentPath: testAgent}, nil }}
}

// ctrFullRequest is the agent request of create and update for a.
func ctrFullRequest(a ContainerArgs) map[string]any {
	m := map[string]any{"name": a.Name, "instanceId": a.InstanceID, "hostname": a.Hostname, "network": a.Network, "ip": a.IP,
		"mac": a.MAC, "image": a.Image, "merged": a.Merged, "target": a.Target, "restart": a.Restart,
		"maxDown": float64(a.maxDown()), "run": runID}
	if a.Privileged {
		m["privileged"] = true
	}
	if a.ImageID != nil {
		m["imageId"] = *a.ImageID
	}
	if len(a.DNS) > 0 {
		dns := []any{}
		for _, d := range a.DNS {
			dns = append(dns, d)
		}
		m["dns"] = dns
	}
	if len(a.Env) > 0 {
		env := map[string]any{}
		for k, v := range a.Env {
			env[k] = v
		}
		m["env"] = env
	}
	return m
}

func TestContainerDiff(t *testing.T) {
	with := func(edit func(*ContainerArgs)) ContainerArgs { a := ctrArgs(); edit(&a); return a }
	other := "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	same := ctrImageID
	tests := []struct {
		name   string
		inputs ContainerArgs
		state  func(*ContainerState)
		want   map[string]p.DiffKind
	}{
		{"same", ctrArgs(), nil, map[string]p.DiffKind{}},
		{"ip", with(func(a *ContainerArgs) { a.IP = "192.168.1.102" }), nil, map[string]p.DiffKind{"ip": p.UpdateReplace}},
		{"mac", with(func(a *ContainerArgs) { a.MAC = "02:aa:bb:cc:dd:02" }), nil, map[string]p.DiffKind{"mac": p.UpdateReplace}},
		{"hostname", with(func(a *ContainerArgs) { a.Hostname = "node1" }), nil, map[string]p.DiffKind{"hostname": p.UpdateReplace}},
		{"image", with(func(a *ContainerArgs) { a.Image = "ericwang2006/ttnode" }), nil, map[string]p.DiffKind{"image": p.UpdateReplace}},
		{"network", with(func(a *ContainerArgs) { a.Network = "lan" }), nil, map[string]p.DiffKind{"network": p.UpdateReplace}},
		{"merged", with(func(a *ContainerArgs) { a.Merged = "/mnt/b/mnts" }), nil, map[string]p.DiffKind{"merged": p.UpdateReplace}},
		{"target", with(func(a *ContainerArgs) { a.Target = "/data" }), nil, map[string]p.DiffKind{"target": p.UpdateReplace}},
		{"privileged", with(func(a *ContainerArgs) { a.Privileged = true }), nil, map[string]p.DiffKind{"privileged": p.UpdateReplace}},
		{"dns", with(func(a *ContainerArgs) { a.DNS = nil }), nil, map[string]p.DiffKind{"dns": p.UpdateReplace}},
		{"env", with(func(a *ContainerArgs) { a.Env = map[string]string{"NODE": "2"} }), nil, map[string]p.DiffKind{"env": p.UpdateReplace}},
		{"instance", with(func(a *ContainerArgs) { a.InstanceID = "box1/ttnode9" }), nil, map[string]p.DiffKind{"instanceId": p.UpdateReplace}},
		{"new image id", with(func(a *ContainerArgs) { a.ImageID = &other }), nil, map[string]p.DiffKind{"imageId": p.UpdateReplace}},
		{"same image id", with(func(a *ContainerArgs) { a.ImageID = &same }), nil, map[string]p.DiffKind{}},
		{"restart: in place", with(func(a *ContainerArgs) { a.Restart = "unless-stopped" }), nil, map[string]p.DiffKind{"restart": p.Update}},
		{"found stopped: started", ctrArgs(), func(s *ContainerState) { s.Running, s.Status = false, "exited" }, map[string]p.DiffKind{"running": p.Update}},
		{"found with another MAC: replaced", ctrArgs(), func(s *ContainerState) { s.MAC = "02:42:c0:a8:01:65" }, map[string]p.DiffKind{"mac": p.UpdateReplace}},
		{"stopped and ip", with(func(a *ContainerArgs) { a.IP = "192.168.1.102" }), func(s *ContainerState) { s.Running = false },
			map[string]p.DiffKind{"ip": p.UpdateReplace, "running": p.Update}},
		{"no dns either side", with(func(a *ContainerArgs) { a.DNS, a.Env = nil, nil }), func(s *ContainerState) { s.DNS, s.Env = nil, nil }, map[string]p.DiffKind{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ctrState(ctrArgs())
			if tt.state != nil {
				tt.state(&st)
			}
			resp, err := (&Container{}).Diff(t.Context(), infer.DiffRequest[ContainerArgs, ContainerState]{ID: "ttnode1", State: st, Inputs: tt.inputs})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]p.DiffKind{}
			replace := false
			for k, d := range resp.DetailedDiff {
				got[k] = d.Kind
				replace = replace || d.Kind == p.UpdateReplace
			}
			if !reflect.DeepEqual(got, tt.want) || resp.HasChanges != (len(tt.want) > 0) {
				t.Errorf("diff %v (changes %v), want %v", got, resp.HasChanges, tt.want)
			}
			// A replacement deletes first: the IP and MAC cannot exist twice.
			if !resp.DeleteBeforeReplace { // whatever the engine replaces it for
				t.Errorf("delete-before-replace false (replace %v): a replacement must always delete first", replace)
			}
		})
	}
}

func TestContainerCreate(t *testing.T) {
	// The box's answer is the state: here the engine also reports an env var the image sets.
	onBox := ctrState(ctrArgs())
	onBox.Env = map[string]string{"NODE": "1", "EXTRA": "x"}
	f := &fakeRunner{reply: answer(ctrAnswer(onBox))}
	in := ctrArgs()
	in.Privileged = true
	id := ctrImageID
	in.ImageID = &id
	resp, err := ctrOn(f).Create(t.Context(), infer.CreateRequest[ContainerArgs]{Name: "c", Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "container", "create", ctrFullRequest(in))
	if resp.ID != "ttnode1" || !reflect.DeepEqual(resp.Output, onBox) {
		t.Errorf("got %q\n%+v\nwant\n%+v", resp.ID, resp.Output, onBox)
	}
}

func TestContainerPreviewTouchesNothing(t *testing.T) {
	f := &fakeRunner{reply: func([]string, []byte) ([]byte, error) { return nil, errors.New("the box was touched") }}
	r := ctrOn(f)
	c, err := r.Create(t.Context(), infer.CreateRequest[ContainerArgs]{Name: "c", Inputs: ctrArgs(), DryRun: true})
	if err != nil || c.ID != "ttnode1" || c.Output.IP != "192.168.1.101" {
		t.Errorf("create preview: %q %+v, %v", c.ID, c.Output, err)
	}
	in := ctrArgs()
	in.Restart = "no"
	u, err := r.Update(t.Context(), infer.UpdateRequest[ContainerArgs, ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs()), Inputs: in, DryRun: true})
	if err != nil || u.Output.Restart != "no" || u.Output.ContainerID != "c1" {
		t.Errorf("update preview: %+v, %v", u.Output, err)
	}
	if len(f.calls) != 0 {
		t.Errorf("preview ran %d commands on the box", len(f.calls))
	}
}

func TestContainerUpdate(t *testing.T) {
	in := ctrArgs()
	in.Restart = "unless-stopped"
	f := &fakeRunner{reply: answer(ctrAnswer(ctrState(in)))}
	resp, err := ctrOn(f).Update(t.Context(), infer.UpdateRequest[ContainerArgs, ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs()), Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "container", "update", ctrFullRequest(in))
	if !reflect.DeepEqual(resp.Output, ctrState(in)) {
		t.Errorf("got %+v", resp.Output)
	}
}

func TestContainerRead(t *testing.T) {
	stopped := ctrState(ctrArgs())
	stopped.Running, stopped.Status = false, "exited"
	otherMAC := ctrState(ctrArgs())
	otherMAC.MAC = "02:42:c0:a8:01:65"
	otherInstance := ctrState(ctrArgs())
	otherInstance.InstanceID = "box2/ttnode1"
	readReq := map[string]any{"name": "ttnode1", "network": "macnet", "target": "/mnts", "env": map[string]any{"NODE": ""}}
	tests := []struct {
		name       string
		req        infer.ReadRequest[ContainerArgs, ContainerState]
		box        map[string]any
		wantStdin  map[string]any
		wantID     string
		wantInputs ContainerArgs
		wantState  ContainerState
		// wantDiff is what the program's inputs diff against the state read.
		wantDiff []string
	}{
		{name: "running as planned", req: infer.ReadRequest[ContainerArgs, ContainerState]{ID: "ttnode1", Inputs: ctrArgs(), State: ctrState(ctrArgs())},
			box: ctrAnswer(ctrState(ctrArgs())), wantStdin: readReq, wantID: "ttnode1", wantInputs: ctrArgs(), wantState: ctrState(ctrArgs())},
		{name: "stopped: running false is drift", req: infer.ReadRequest[ContainerArgs, ContainerState]{ID: "ttnode1", Inputs: ctrArgs(), State: ctrState(ctrArgs())},
			box: ctrAnswer(stopped), wantStdin: readReq, wantID: "ttnode1", wantInputs: ctrArgs(), wantState: stopped, wantDiff: []string{"running"}},
		{name: "another MAC: drift", req: infer.ReadRequest[ContainerArgs, ContainerState]{ID: "ttnode1", Inputs: ctrArgs(), State: ctrState(ctrArgs())},
			box: ctrAnswer(otherMAC), wantStdin: readReq, wantID: "ttnode1", wantInputs: ctrArgs(), wantState: otherMAC, wantDiff: []string{"mac"}},
		{name: "another instance's container of that name: ours is gone, theirs is not taken into the state", req: infer.ReadRequest[ContainerArgs, ContainerState]{ID: "ttnode1", Inputs: ctrArgs(), State: ctrState(ctrArgs())},
			box: ctrAnswer(otherInstance), wantStdin: readReq},
		{name: "removed: gone", req: infer.ReadRequest[ContainerArgs, ContainerState]{ID: "ttnode1", Inputs: ctrArgs(), State: ctrState(ctrArgs())},
			box: ctrAbsent, wantStdin: readReq},
		{name: "import: the inputs from the box", req: infer.ReadRequest[ContainerArgs, ContainerState]{ID: "ttnode1"},
			box: ctrAnswer(ctrState(ctrArgs())), wantStdin: map[string]any{"name": "ttnode1"}, wantID: "ttnode1", wantInputs: ctrArgs(), wantState: ctrState(ctrArgs())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{reply: answer(tt.box)}
			resp, err := ctrOn(f).Read(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			agentCalls(t, f, "container", "read", tt.wantStdin)
			if resp.ID != tt.wantID || !reflect.DeepEqual(resp.Inputs, tt.wantInputs) || !reflect.DeepEqual(resp.State, tt.wantState) {
				t.Errorf("got %q\n%+v\n%+v\nwant %q\n%+v\n%+v", resp.ID, resp.Inputs, resp.State, tt.wantID, tt.wantInputs, tt.wantState)
			}
			if resp.ID == "" {
				return
			}
			d, err := (&Container{}).Diff(t.Context(), infer.DiffRequest[ContainerArgs, ContainerState]{ID: resp.ID, State: resp.State, Inputs: ctrArgs()})
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(maps.Keys(d.DetailedDiff))
			if !slices.Equal(got, tt.wantDiff) {
				t.Errorf("diff after the read %v, want %v", got, tt.wantDiff)
			}
		})
	}
}

func TestContainerDelete(t *testing.T) {
	f := &fakeRunner{reply: answer(ctrAbsent)}
	if _, err := ctrOn(f).Delete(t.Context(), infer.DeleteRequest[ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs())}); err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "container", "delete", map[string]any{"name": "ttnode1", "instanceId": "box1/ttnode1", "merged": ctrArgs().Merged, "run": runID})

	// Found to be replaced by this process's Diff: the delete takes the instance down in its turn.
	newIP := ctrArgs()
	newIP.IP = "192.168.1.102"
	two := 2
	newIP.MaxDownPerBox = &two
	if _, err := (&Container{}).Diff(t.Context(), infer.DiffRequest[ContainerArgs, ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs()), Inputs: newIP}); err != nil {
		t.Fatal(err)
	}
	f = &fakeRunner{reply: answer(ctrAbsent)}
	if _, err := ctrOn(f).Delete(t.Context(), infer.DeleteRequest[ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs())}); err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "container", "delete", map[string]any{"name": "ttnode1", "instanceId": "box1/ttnode1", "merged": ctrArgs().Merged,
		"run": runID, "replacing": true, "maxDown": float64(2)})
	// A replacement forced by the network's (the engine asks with the network not known yet) is
	// not bounded: every container on it must go before the network does.
	unknownNet := newIP
	unknownNet.Network = ""
	if _, err := (&Container{}).Diff(t.Context(), infer.DiffRequest[ContainerArgs, ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs()), Inputs: unknownNet}); err != nil {
		t.Fatal(err)
	}
	f = &fakeRunner{reply: answer(ctrAbsent)}
	if _, err := ctrOn(f).Delete(t.Context(), infer.DeleteRequest[ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs())}); err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "container", "delete", map[string]any{"name": "ttnode1", "instanceId": "box1/ttnode1", "merged": ctrArgs().Merged, "run": runID})
	// Once: a later delete (the container's scale-down) is for good.
	f = &fakeRunner{reply: answer(ctrAbsent)}
	if _, err := ctrOn(f).Delete(t.Context(), infer.DeleteRequest[ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs())}); err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "container", "delete", map[string]any{"name": "ttnode1", "instanceId": "box1/ttnode1", "merged": ctrArgs().Merged, "run": runID})

	f = &fakeRunner{reply: answer(ctrAnswer(ctrState(ctrArgs())))}
	if _, err := ctrOn(f).Delete(t.Context(), infer.DeleteRequest[ContainerState]{ID: "ttnode1", State: ctrState(ctrArgs())}); err == nil {
		t.Error("a container still there after delete was not reported")
	}
}

func TestContainerAgentFailures(t *testing.T) {
	mismatch := &box.RemoteError{Addr: testAddr, Argv: []string{testAgent, "container", "create"}, ExitStatus: 1,
		Stderr: "overlay-fleet-host: container ttnode1 of box1/ttnode1 does not have its planned identity: planned ... (container removed)"}
	stopped := ctrState(ctrArgs())
	stopped.Running = false
	tests := []struct {
		name     string
		reply    func([]string, []byte) ([]byte, error)
		want     []string
		initFail bool
	}{
		{"read-back mismatch: nothing kept", func([]string, []byte) ([]byte, error) { return nil, mismatch },
			[]string{testAddr, "overlay-fleet-host container create", "does not have its planned identity", "container removed"}, false},
		{"not JSON", func([]string, []byte) ([]byte, error) { return []byte("Segmentation fault"), nil }, []string{"unexpected answer"}, true},
		{"no present field", answer(map[string]any{"name": "ttnode1"}), []string{`no "present" field`}, true},
		{"another container", answer(ctrAnswer(ctrState(ContainerArgs{Name: "ttnode9"}))), []string{`it is about "ttnode9"`}, true},
		{"not running afterwards", answer(ctrAnswer(stopped)), []string{"running=false"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ctrOn(&fakeRunner{reply: tt.reply}).Create(t.Context(), infer.CreateRequest[ContainerArgs]{Name: "c", Inputs: ctrArgs()})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
			var initFailed infer.ResourceInitFailedError
			if got := errors.As(err, &initFailed); got != tt.initFail {
				t.Errorf("partial state kept = %v, want %v", got, tt.initFail)
			}
		})
	}
}

func TestContainerCheck(t *testing.T) {
	bad, minusOne := "sha256:abc", -1
	tests := []struct {
		name    string
		edit    func(*ContainerArgs)
		unknown string
		want    []string
	}{
		{"valid", func(*ContainerArgs) {}, "", nil},
		{"name", func(a *ContainerArgs) { a.Name = "tt node" }, "", []string{"name"}},
		{"instance", func(a *ContainerArgs) { a.InstanceID = "ttnode1" }, "", []string{"instanceId"}},
		{"hostname", func(a *ContainerArgs) { a.Hostname = "-x" }, "", []string{"hostname"}},
		{"ip", func(a *ContainerArgs) { a.IP = "192.168.1.300" }, "", []string{"ip"}},
		{"upper-case mac", func(a *ContainerArgs) { a.MAC = "02:AA:BB:CC:DD:01" }, "", []string{"mac"}},
		{"multicast mac", func(a *ContainerArgs) { a.MAC = "01:aa:bb:cc:dd:01" }, "", []string{"mac"}},
		{"image", func(a *ContainerArgs) { a.Image = "Bad Image" }, "", []string{"image"}},
		{"image id", func(a *ContainerArgs) { a.ImageID = &bad }, "", []string{"imageId"}},
		{"merged with comma", func(a *ContainerArgs) { a.Merged = "/mnt/a,b" }, "", []string{"merged"}},
		{"merged not clean", func(a *ContainerArgs) { a.Merged = "/mnt//a/" }, "", []string{"merged"}},
		{"restart", func(a *ContainerArgs) { a.Restart = "on-failure:3" }, "", []string{"restart"}},
		{"dns", func(a *ContainerArgs) { a.DNS = []string{"8.8.8"} }, "", []string{"dns"}},
		{"env", func(a *ContainerArgs) { a.Env = map[string]string{"1X": "y"} }, "", []string{"env"}},
		{"maxDownPerBox below 0", func(a *ContainerArgs) { a.MaxDownPerBox = &minusOne }, "", []string{"maxDownPerBox"}},
		{"network unknown in preview", func(a *ContainerArgs) { a.Network = "" }, "network", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ctrArgs()
			tt.edit(&a)
			c := &checks{inputs: property.NewMap(map[string]property.Value{})}
			if tt.unknown != "" {
				c.inputs = property.NewMap(map[string]property.Value{tt.unknown: property.New(property.Computed)})
			}
			a.validate(c)
			var got []string
			for _, f := range c.failures {
				got = append(got, f.Property)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("failures %v, want %v", c.failures, tt.want)
			}
		})
	}
}
