package provider

import (
	"context"
	"errors"
	"fmt"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"

	"overlay-fleet/host/agent/protocol"
)

// Network is a box's docker macvlan network, made by the box's own docker CLI through the box
// agent (`network` subcommand) and labelled `overlay-fleet.box=<box>`.
type Network struct {
	// box finds the box to act on; nil means the provider's configured box. Tests set it.
	box func(context.Context) (Box, error)
}

// NetworkArgs are the inputs of a Network.
type NetworkArgs struct {
	Name    string `pulumi:"name"`
	Parent  string `pulumi:"parent"`
	Subnet  string `pulumi:"subnet"`
	Gateway string `pulumi:"gateway"`
	Box     string `pulumi:"box"`
}

// NetworkState is the network as the box's engine reports it (`docker network inspect`).
type NetworkState struct {
	Name      string `pulumi:"name"`
	Parent    string `pulumi:"parent"`
	Subnet    string `pulumi:"subnet"`
	Gateway   string `pulumi:"gateway"`
	Box       string `pulumi:"box"`
	Driver    string `pulumi:"driver"`
	NetworkID string `pulumi:"networkId"`
}

// args is the state as inputs: what an import adopts.
func (s NetworkState) args() NetworkArgs {
	return NetworkArgs{Name: s.Name, Parent: s.Parent, Subnet: s.Subnet, Gateway: s.Gateway, Box: s.Box}
}

const (
	docNetworkName = "Name of the docker network on the box (e.g. `macnet`); it is the resource ID. " +
		"Changing it replaces the network."
	docNetworkParent  = "The box's LAN interface the macvlan network hangs off, e.g. `eth0`. Changing it replaces the network."
	docNetworkSubnet  = "The LAN's IPv4 subnet in CIDR form, e.g. `192.168.1.0/24`. Changing it replaces the network."
	docNetworkGateway = "The LAN's gateway, an address in the subnet. Changing it replaces the network."
	docNetworkBox     = "The box the network belongs to: its label `overlay-fleet.box=<box>` marks it as " +
		"overlay-fleet's. Changing it replaces the network."
)

var (
	_ infer.CustomResource[NetworkArgs, NetworkState] = (*Network)(nil)
	_ infer.CustomCheck[NetworkArgs]                  = (*Network)(nil)
	_ infer.CustomDiff[NetworkArgs, NetworkState]     = (*Network)(nil)
	_ infer.CustomRead[NetworkArgs, NetworkState]     = (*Network)(nil)
	_ infer.CustomDelete[NetworkState]                = (*Network)(nil)
)

// Annotate documents the resource and sets its token.
func (r *Network) Annotate(a infer.Annotator) {
	a.SetToken("index", "Network")
	a.Describe(&r, "A box's docker macvlan network, which the instances' containers join with their "+
		"own IP and MAC on the LAN. It is made by the box's own docker CLI and labelled "+
		"`overlay-fleet.box=<box>`; a network of that name that overlay-fleet did not make is never "+
		"touched. Its outputs are what the engine reports, so `pulumi refresh` shows a network "+
		"changed or removed by hand. Any change replaces it, deleting it first (an engine refuses "+
		"two networks on the same addresses, and old engines two macvlan networks on one "+
		"interface); its delete is refused while any container uses it.")
}

// Annotate documents the inputs.
func (a *NetworkArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Name, docNetworkName)
	an.Describe(&a.Parent, docNetworkParent)
	an.Describe(&a.Subnet, docNetworkSubnet)
	an.Describe(&a.Gateway, docNetworkGateway)
	an.Describe(&a.Box, docNetworkBox)
}

// Annotate documents the outputs.
func (s *NetworkState) Annotate(a infer.Annotator) {
	const asBox = " As the box's engine reports it."
	a.Describe(&s.Name, docNetworkName)
	a.Describe(&s.Parent, docNetworkParent+asBox)
	a.Describe(&s.Subnet, docNetworkSubnet+asBox+" (its first IPv4 pool)")
	a.Describe(&s.Gateway, docNetworkGateway+asBox)
	a.Describe(&s.Box, "The network's `overlay-fleet.box` label; empty for a network overlay-fleet did not make.")
	a.Describe(&s.Driver, "The network's driver as the engine reports it: `macvlan`.")
	a.Describe(&s.NetworkID, "The engine's id of the network.")
}

// Check reports malformed inputs by name.
func (*Network) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[NetworkArgs], error) {
	args, failures, err := infer.DefaultCheck[NetworkArgs](ctx, req.NewInputs)
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[NetworkArgs]{Inputs: args, Failures: failures}, err
	}
	c := &checks{inputs: req.NewInputs}
	args.validate(c)
	return infer.CheckResponse[NetworkArgs]{Inputs: args, Failures: c.failures}, nil
}

func (a NetworkArgs) validate(c *checks) {
	c.check("name", dockerNameProblem("network", a.Name))
	if !ifacePattern.MatchString(a.Parent) {
		c.fail("parent", "%q is not a network interface name (A-Z a-z 0-9 _ . -, at most 15)", a.Parent)
	}
	subnetProblems(c, a.Subnet, a.Gateway)
	if !boxNamePattern.MatchString(a.Box) {
		c.fail("box", "%q is not a box name (a-z 0-9 -, at most 32)", a.Box)
	}
}

// Diff compares the program's inputs with the network as the box last reported it. Every
// change replaces it, deleting the old one first; so does a network of that name that is not
// a macvlan network.
func (*Network) Diff(_ context.Context, req infer.DiffRequest[NetworkArgs, NetworkState]) (infer.DiffResponse, error) {
	diff := map[string]p.PropertyDiff{}
	replace := func(key string, differs bool) {
		if differs {
			diff[key] = p.PropertyDiff{Kind: p.UpdateReplace}
		}
	}
	in, st := req.Inputs, req.State
	replace("name", in.Name != st.Name)
	replace("parent", in.Parent != st.Parent)
	replace("subnet", in.Subnet != st.Subnet)
	replace("gateway", in.Gateway != st.Gateway)
	replace("box", in.Box != st.Box)
	if st.Driver != "" && st.Driver != "macvlan" {
		diff["driver"] = p.PropertyDiff{Kind: p.UpdateReplace}
	}
	// Always delete before replace (also on --replace): the engine has one network of the name.
	return infer.DiffResponse{HasChanges: len(diff) > 0, DetailedDiff: diff, DeleteBeforeReplace: true}, nil
}

// Create makes the network (or keeps it when it is there as planned). A preview touches nothing.
func (r *Network) Create(ctx context.Context, req infer.CreateRequest[NetworkArgs]) (infer.CreateResponse[NetworkState], error) {
	in := req.Inputs
	planned := NetworkState{Name: in.Name, Parent: in.Parent, Subnet: in.Subnet, Gateway: in.Gateway, Box: in.Box, Driver: "macvlan"}
	if req.DryRun {
		return infer.CreateResponse[NetworkState]{ID: in.Name, Output: planned}, nil
	}
	ans, err := r.call(ctx, "create", protocol.NetworkRequest{Name: in.Name, Parent: in.Parent, Subnet: in.Subnet, Gateway: in.Gateway, Box: in.Box})
	if err == nil && !ans.Present {
		err = fmt.Errorf("network create %s: %w: it reports no network afterwards", in.Name, errBadAnswer)
	}
	if err != nil {
		if errors.Is(err, errBadAnswer) {
			return infer.CreateResponse[NetworkState]{ID: in.Name, Output: planned}, partial(err)
		}
		return infer.CreateResponse[NetworkState]{}, err
	}
	return infer.CreateResponse[NetworkState]{ID: in.Name, Output: networkFromAnswer(ans)}, nil
}

// Read asks the box's engine for the network. A missing network gives an empty ID: the engine
// drops the resource and the next `up` makes it again. On import the inputs are taken from
// what the engine reports.
func (r *Network) Read(ctx context.Context, req infer.ReadRequest[NetworkArgs, NetworkState]) (infer.ReadResponse[NetworkArgs, NetworkState], error) {
	ans, err := r.call(ctx, "read", protocol.NetworkRequest{Name: req.ID})
	if err != nil {
		return infer.ReadResponse[NetworkArgs, NetworkState]{}, err
	}
	if !ans.Present {
		return infer.ReadResponse[NetworkArgs, NetworkState]{}, nil
	}
	st := networkFromAnswer(ans)
	inputs := req.Inputs
	if inputs.Name == "" { // import: adopt what the box has
		inputs = st.args()
	}
	return infer.ReadResponse[NetworkArgs, NetworkState]{ID: req.ID, Inputs: inputs, State: st}, nil
}

// Delete removes the network; one already gone is fine. The agent refuses a network that is
// not the box's, or that a container still uses, naming the containers.
func (r *Network) Delete(ctx context.Context, req infer.DeleteRequest[NetworkState]) (infer.DeleteResponse, error) {
	ans, err := r.call(ctx, "delete", protocol.NetworkRequest{Name: req.ID, Box: req.State.Box})
	if err != nil {
		return infer.DeleteResponse{}, err
	}
	if ans.Present {
		return infer.DeleteResponse{}, fmt.Errorf("network delete %s: the agent reports the network still there", req.ID)
	}
	return infer.DeleteResponse{}, nil
}

// call runs one network operation and checks that the answer is about the network asked for.
func (r *Network) call(ctx context.Context, op string, req protocol.NetworkRequest) (protocol.NetworkAnswer, error) {
	b, err := findBox(ctx, r.box)
	if err != nil {
		return protocol.NetworkAnswer{}, err
	}
	var ans protocol.NetworkAnswer
	if err := callAgent(ctx, b, protocol.NetworkCommand, op, req, &ans); err != nil {
		return protocol.NetworkAnswer{}, err
	}
	if ans.Name != req.Name {
		return protocol.NetworkAnswer{}, fmt.Errorf("network %s %s on %s: %w: it is about %q", op, req.Name, b.Runner.Addr(), errBadAnswer, ans.Name)
	}
	return ans, nil
}

// findBox is the box of a resource: its own finder (tests) or the provider's configured box.
func findBox(ctx context.Context, find func(context.Context) (Box, error)) (Box, error) {
	if find == nil {
		find = boxFromConfig
	}
	return find(ctx)
}

// networkFromAnswer is the state of a network the agent reports.
func networkFromAnswer(a protocol.NetworkAnswer) NetworkState {
	return NetworkState{Name: a.Name, Parent: a.Parent, Subnet: a.Subnet, Gateway: a.Gateway, Box: a.Box, Driver: a.Driver, NetworkID: a.ID}
}
