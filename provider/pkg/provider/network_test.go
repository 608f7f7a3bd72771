package provider

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"overlay-fleet/provider/internal/box"
)

func netArgs() NetworkArgs {
	return NetworkArgs{Name: "macnet", Parent: "eth0", Subnet: "192.168.1.0/24", Gateway: "192.168.1.1", Box: "box1"}
}

func netState(a NetworkArgs) NetworkState {
	return NetworkState{Name: a.Name, Parent: a.Parent, Subnet: a.Subnet, Gateway: a.Gateway, Box: a.Box, Driver: "macvlan", NetworkID: "n1"}
}

func netAnswer(s NetworkState) map[string]any {
	return map[string]any{"name": s.Name, "id": s.NetworkID, "present": true, "driver": s.Driver, "parent": s.Parent,
		"subnet": s.Subnet, "gateway": s.Gateway, "box": s.Box}
}

var netAbsent = map[string]any{"name": "macnet", "id": "", "present": false, "driver": "", "parent": "", "subnet": "", "gateway": "", "box": ""}

func netOn(f *fakeRunner) *Network {
	return &Network{box: func(context.Context) (Box, error) { return Box{Runner: f, AgentPath: testAgent}, nil }}
}

// agentCalls checks the agent calls f got: `<agent> <subcommand> <op>` each, with stdins.
func agentCalls(t *testing.T, f *fakeRunner, subcommand, op string, stdins ...map[string]any) {
	t.Helper()
	if len(f.calls) != len(stdins) {
		t.Fatalf("%d agent calls, want %d: %v", len(f.calls), len(stdins), f.calls)
	}
	for i, c := range f.calls {
		if want := []string{testAgent, subcommand, op}; !slices.Equal(c.argv, want) {
			t.Errorf("argv %q, want %q", c.argv, want)
		}
		if !reflect.DeepEqual(c.stdin, stdins[i]) {
			t.Errorf("stdin\n%v\nwant\n%v", c.stdin, stdins[i])
		}
	}
}

func TestNetworkDiff(t *testing.T) {
	with := func(edit func(*NetworkArgs)) NetworkArgs { a := netArgs(); edit(&a); return a }
	tests := []struct {
		name   string
		inputs NetworkArgs
		state  func(*NetworkState)
		want   []string // properties that replace
	}{
		{"same", netArgs(), nil, nil},
		{"name", with(func(a *NetworkArgs) { a.Name = "lan" }), nil, []string{"name"}},
		{"parent", with(func(a *NetworkArgs) { a.Parent = "eth1" }), nil, []string{"parent"}},
		{"subnet and gateway", with(func(a *NetworkArgs) { a.Subnet, a.Gateway = "10.0.0.0/24", "10.0.0.1" }), nil, []string{"gateway", "subnet"}},
		{"box", with(func(a *NetworkArgs) { a.Box = "box2" }), nil, []string{"box"}},
		{"not macvlan on the box", netArgs(), func(s *NetworkState) { s.Driver = "bridge" }, []string{"driver"}},
		{"label gone on the box", netArgs(), func(s *NetworkState) { s.Box = "" }, []string{"box"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := netState(netArgs())
			if tt.state != nil {
				tt.state(&st)
			}
			resp, err := (&Network{}).Diff(t.Context(), infer.DiffRequest[NetworkArgs, NetworkState]{ID: "macnet", State: st, Inputs: tt.inputs})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for k, d := range resp.DetailedDiff {
				if d.Kind != p.UpdateReplace {
					t.Errorf("%s: %v, want a replace", k, d.Kind)
				}
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) || resp.HasChanges != (len(tt.want) > 0) {
				t.Errorf("replaces %v (changes %v), want %v", got, resp.HasChanges, tt.want)
			}
			if !resp.DeleteBeforeReplace {
				t.Errorf("delete-before-replace false: a replacement must always delete first")
			}
		})
	}
}

func TestNetworkCreate(t *testing.T) {
	f := &fakeRunner{reply: answer(netAnswer(netState(netArgs())))}
	resp, err := netOn(f).Create(t.Context(), infer.CreateRequest[NetworkArgs]{Name: "n", Inputs: netArgs()})
	if err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "network", "create", map[string]any{"name": "macnet", "parent": "eth0", "subnet": "192.168.1.0/24", "gateway": "192.168.1.1", "box": "box1"})
	if resp.ID != "macnet" || resp.Output != netState(netArgs()) {
		t.Errorf("got %q %+v", resp.ID, resp.Output)
	}

	// A preview touches nothing.
	f = &fakeRunner{reply: func([]string, []byte) ([]byte, error) { return nil, errors.New("the box was touched") }}
	if resp, err := netOn(f).Create(t.Context(), infer.CreateRequest[NetworkArgs]{Name: "n", Inputs: netArgs(), DryRun: true}); err != nil || resp.ID != "macnet" || len(f.calls) != 0 {
		t.Errorf("preview: %q %v, %d calls", resp.ID, err, len(f.calls))
	}

	// The agent's refusal reaches the user as it is, and nothing is kept.
	refused := &box.RemoteError{Addr: testAddr, Argv: []string{testAgent, "network", "create"}, ExitStatus: 1,
		Stderr: "overlay-fleet-host: a docker network named macnet exists that overlay-fleet did not create for box box1"}
	f = &fakeRunner{reply: func([]string, []byte) ([]byte, error) { return nil, refused }}
	_, err = netOn(f).Create(t.Context(), infer.CreateRequest[NetworkArgs]{Name: "n", Inputs: netArgs()})
	var initFailed infer.ResourceInitFailedError
	if err == nil || !strings.Contains(err.Error(), "did not create for box box1") || errors.As(err, &initFailed) {
		t.Errorf("error %v", err)
	}

	// An answer without the network keeps the resource for the next up.
	f = &fakeRunner{reply: answer(netAbsent)}
	_, err = netOn(f).Create(t.Context(), infer.CreateRequest[NetworkArgs]{Name: "n", Inputs: netArgs()})
	if !errors.As(err, &initFailed) {
		t.Errorf("error %v, want a partial failure", err)
	}
}

func TestNetworkRead(t *testing.T) {
	drifted := netState(netArgs())
	drifted.Gateway = "192.168.1.254"
	tests := []struct {
		name       string
		req        infer.ReadRequest[NetworkArgs, NetworkState]
		box        map[string]any
		wantID     string
		wantInputs NetworkArgs
		wantState  NetworkState
	}{
		{"present", infer.ReadRequest[NetworkArgs, NetworkState]{ID: "macnet", Inputs: netArgs(), State: netState(netArgs())},
			netAnswer(netState(netArgs())), "macnet", netArgs(), netState(netArgs())},
		{"made otherwise by hand: drift", infer.ReadRequest[NetworkArgs, NetworkState]{ID: "macnet", Inputs: netArgs(), State: netState(netArgs())},
			netAnswer(drifted), "macnet", netArgs(), drifted},
		{"gone", infer.ReadRequest[NetworkArgs, NetworkState]{ID: "macnet", Inputs: netArgs(), State: netState(netArgs())},
			netAbsent, "", NetworkArgs{}, NetworkState{}},
		{"import", infer.ReadRequest[NetworkArgs, NetworkState]{ID: "macnet"},
			netAnswer(netState(netArgs())), "macnet", netArgs(), netState(netArgs())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{reply: answer(tt.box)}
			resp, err := netOn(f).Read(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			agentCalls(t, f, "network", "read", map[string]any{"name": "macnet"})
			if resp.ID != tt.wantID || resp.Inputs != tt.wantInputs || resp.State != tt.wantState {
				t.Errorf("got %q %+v %+v", resp.ID, resp.Inputs, resp.State)
			}
		})
	}
}

func TestNetworkDelete(t *testing.T) {
	f := &fakeRunner{reply: answer(netAbsent)}
	if _, err := netOn(f).Delete(t.Context(), infer.DeleteRequest[NetworkState]{ID: "macnet", State: netState(netArgs())}); err != nil {
		t.Fatal(err)
	}
	agentCalls(t, f, "network", "delete", map[string]any{"name": "macnet", "box": "box1"})

	// The agent refuses a network a foreign container uses: the error names them.
	refused := &box.RemoteError{Addr: testAddr, Argv: []string{testAgent, "network", "delete"}, ExitStatus: 1,
		Stderr: "overlay-fleet-host: docker network macnet is used by containers overlay-fleet did not create for box box1: pihole; nothing was changed"}
	f = &fakeRunner{reply: func([]string, []byte) ([]byte, error) { return nil, refused }}
	if _, err := netOn(f).Delete(t.Context(), infer.DeleteRequest[NetworkState]{ID: "macnet", State: netState(netArgs())}); err == nil || !strings.Contains(err.Error(), "pihole") {
		t.Errorf("error %v, want the refusal naming pihole", err)
	}

	f = &fakeRunner{reply: answer(netAnswer(netState(netArgs())))}
	if _, err := netOn(f).Delete(t.Context(), infer.DeleteRequest[NetworkState]{ID: "macnet", State: netState(netArgs())}); err == nil {
		t.Error("a network still there after delete was not reported")
	}
}

func TestNetworkCheck(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*NetworkArgs)
		unknown string
		want    []string
	}{
		{"valid", func(*NetworkArgs) {}, "", nil},
		{"bad name", func(a *NetworkArgs) { a.Name = "mac net" }, "", []string{"name"}},
		{"bad parent", func(a *NetworkArgs) { a.Parent = "eth0 " }, "", []string{"parent"}},
		{"host bits", func(a *NetworkArgs) { a.Subnet = "192.168.1.1/24" }, "", []string{"subnet"}},
		{"gateway outside", func(a *NetworkArgs) { a.Gateway = "192.168.2.1" }, "", []string{"gateway"}},
		{"gateway is the broadcast", func(a *NetworkArgs) { a.Gateway = "192.168.1.255" }, "", []string{"gateway"}},
		{"bad box", func(a *NetworkArgs) { a.Box = "Box1" }, "", []string{"box"}},
		{"unknown in preview", func(a *NetworkArgs) { a.Name = "" }, "name", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := netArgs()
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
