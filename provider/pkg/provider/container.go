package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"

	"overlay-fleet/host/agent/protocol"
)

// Defaults of a Container's optional inputs.
const (
	DefaultContainerTarget  = "/mnts"
	DefaultContainerRestart = "always"
)

// Container is the docker container of one overlay instance, made by the box's own docker CLI
// through the box agent (`container` subcommand) with exactly its hostname, IP and MAC on the
// box's macvlan network, and labelled `overlay-fleet.instance=<box>/<name>`.
type Container struct {
	// box finds the box to act on; nil means the provider's configured box. Tests set it.
	box func(context.Context) (Box, error)
}

// ContainerArgs are the inputs of a Container.
type ContainerArgs struct {
	Name       string            `pulumi:"name"`
	InstanceID string            `pulumi:"instanceId"`
	Hostname   string            `pulumi:"hostname"`
	Network    string            `pulumi:"network"`
	IP         string            `pulumi:"ip"`
	MAC        string            `pulumi:"mac"`
	Image      string            `pulumi:"image"`
	ImageID    *string           `pulumi:"imageId,optional"`
	Merged     string            `pulumi:"merged"`
	Target     string            `pulumi:"target,optional"`
	Restart    string            `pulumi:"restart,optional"`
	Privileged bool              `pulumi:"privileged,optional"`
	DNS        []string          `pulumi:"dns,optional"`
	Env        map[string]string `pulumi:"env,optional"`
	// MaxDownPerBox bounds the box's instances down at once by replacements.
	MaxDownPerBox *int `pulumi:"maxDownPerBox,optional"`
}

// DefaultMaxDownPerBox is a Container's maxDownPerBox unless given.
const DefaultMaxDownPerBox = 1

// maxDown is the bound the inputs give.
func (a ContainerArgs) maxDown() int {
	if a.MaxDownPerBox == nil {
		return DefaultMaxDownPerBox
	}
	return *a.MaxDownPerBox
}

// replacements are the containers this provider process's Diff found to be replaced (by
// resource ID), with the maxDownPerBox of their new inputs: a replacement deletes the old
// container first, and only that delete must wait for its turn to take the instance down (the
// engine's Delete call does not say why it deletes). One process serves one operation. Not
// bounded: a replacement forced by --replace or by another resource's (Diff sees no cause, or
// inputs not known yet).
var replacements sync.Map

// runID names this operation (this provider process) in the box's down records.
var runID = func() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return fmt.Sprintf("pid%d", os.Getpid())
	}
	return hex.EncodeToString(b)
}()

// ContainerState is the container as the box's engine reports it (`docker inspect`).
type ContainerState struct {
	Name        string            `pulumi:"name"`
	InstanceID  string            `pulumi:"instanceId"`
	Hostname    string            `pulumi:"hostname"`
	Network     string            `pulumi:"network"`
	IP          string            `pulumi:"ip"`
	MAC         string            `pulumi:"mac"`
	Image       string            `pulumi:"image"`
	ImageID     string            `pulumi:"imageId"`
	Merged      string            `pulumi:"merged"`
	Target      string            `pulumi:"target"`
	Restart     string            `pulumi:"restart"`
	Privileged  bool              `pulumi:"privileged"`
	DNS         []string          `pulumi:"dns,optional"`
	Env         map[string]string `pulumi:"env,optional"`
	Running     bool              `pulumi:"running"`
	Status      string            `pulumi:"status"`
	ContainerID string            `pulumi:"containerId"`
}

// args is the state as inputs: what an import adopts.
func (s ContainerState) args() ContainerArgs {
	a := ContainerArgs{
		Name: s.Name, InstanceID: s.InstanceID, Hostname: s.Hostname, Network: s.Network, IP: s.IP, MAC: s.MAC,
		Image: s.Image, Merged: s.Merged, Target: s.Target, Restart: s.Restart, Privileged: s.Privileged,
	}
	if len(s.DNS) > 0 {
		a.DNS = s.DNS
	}
	if len(s.Env) > 0 {
		a.Env = s.Env
	}
	return a
}

// planned is the state the inputs plan (what a preview shows).
func (a ContainerArgs) planned() ContainerState {
	s := ContainerState{
		Name: a.Name, InstanceID: a.InstanceID, Hostname: a.Hostname, Network: a.Network, IP: a.IP, MAC: a.MAC,
		Image: a.Image, Merged: a.Merged, Target: a.Target, Restart: a.Restart, Privileged: a.Privileged,
		DNS: a.DNS, Env: a.Env, Running: true, Status: "running",
	}
	if a.ImageID != nil {
		s.ImageID = *a.ImageID
	}
	return s
}

const (
	docContainerName = "Name of the container on the box (e.g. `ttnode1`); it is the resource ID."
	docCtrInstanceOf = "The overlay instance the container belongs to, `<box>/<name>`: its label " +
		"`overlay-fleet.instance` marks it as overlay-fleet's; a container of that name without it is never touched."
	docCtrHostname = "The container's host name: part of the node's identity."
	docCtrNetwork  = "The box's macvlan network (a `Network`'s name) the container joins."
	docCtrIP       = "The container's fixed IPv4 address on the network."
	docCtrMAC      = "The container's MAC address on the network, lower-case colon form (e.g. `02:42:c0:a8:01:c9`): " +
		"part of the node's identity, set with the box's own `docker run --mac-address` so that every engine honours it."
	docCtrImage   = "The image reference to run; the image must be on the box."
	docCtrImageID = "The image id (`sha256:...`) the image reference must have on the box; when set, a new id replaces the container."
	docCtrMerged  = "The instance's merged dir, bind-mounted into the container; its overlay must be mounted " +
		"(the container is never started on an empty dir)."
	docCtrTarget     = "Where the merged dir appears inside the container."
	docCtrRestart    = "The container's restart policy: always, unless-stopped, on-failure or no."
	docCtrPrivileged = "Run the container privileged."
	docCtrDNS        = "DNS servers given to the container."
	docCtrEnv        = "Environment variables given to the container."
	ctrReplaces      = " Changing it replaces the container (deleting it first: its IP and MAC cannot exist twice)."
)

var (
	_ infer.CustomResource[ContainerArgs, ContainerState] = (*Container)(nil)
	_ infer.CustomCheck[ContainerArgs]                    = (*Container)(nil)
	_ infer.CustomDiff[ContainerArgs, ContainerState]     = (*Container)(nil)
	_ infer.CustomRead[ContainerArgs, ContainerState]     = (*Container)(nil)
	_ infer.CustomUpdate[ContainerArgs, ContainerState]   = (*Container)(nil)
	_ infer.CustomDelete[ContainerState]                  = (*Container)(nil)
)

// Annotate documents the resource and sets its token.
func (r *Container) Annotate(a infer.Annotator) {
	a.SetToken("index", "Container")
	a.Describe(&r, "The docker container of one overlay instance: on the box's macvlan network with exactly "+
		"its hostname, IP and MAC (the node's identity), its merged cache dir bind-mounted. It is made by the "+
		"box's own docker CLI, since engines differ (API 1.41 on Docker 20.10, 1.56 on Docker 29) and only the "+
		"engine's own CLI sets the MAC on every one of them; the box agent reads the container back and removes "+
		"it again when the engine did not give it its identity. Its outputs are what the engine reports: "+
		"`pulumi refresh` shows a stopped container (`running: false`, which `up` starts again), one with "+
		"another MAC (which `up` replaces) and a removed one (which `up` makes again). A change of identity, "+
		"image, network or mount replaces it, deleting the old container first.")
}

// Annotate documents the inputs.
func (a *ContainerArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Name, docContainerName+ctrReplaces)
	an.Describe(&a.InstanceID, docCtrInstanceOf+ctrReplaces)
	an.Describe(&a.Hostname, docCtrHostname+ctrReplaces)
	an.Describe(&a.Network, docCtrNetwork+ctrReplaces)
	an.Describe(&a.IP, docCtrIP+ctrReplaces)
	an.Describe(&a.MAC, docCtrMAC+ctrReplaces)
	an.Describe(&a.Image, docCtrImage+ctrReplaces)
	an.Describe(&a.ImageID, docCtrImageID+ctrReplaces)
	an.Describe(&a.Merged, docCtrMerged+ctrReplaces)
	an.Describe(&a.Target, docCtrTarget+ctrReplaces)
	an.SetDefault(&a.Target, DefaultContainerTarget)
	an.Describe(&a.Restart, docCtrRestart+" Changing it updates the container in place.")
	an.SetDefault(&a.Restart, DefaultContainerRestart)
	an.Describe(&a.Privileged, docCtrPrivileged+ctrReplaces)
	an.Describe(&a.DNS, docCtrDNS+ctrReplaces)
	an.Describe(&a.Env, docCtrEnv+ctrReplaces)
	an.Describe(&a.MaxDownPerBox, "At most this many instances of the box are down at once through replacements "+
		"of their containers (a new image, a new address), whatever order the deployment runs them in: a replacement "+
		"waits for its turn before it deletes the old container, and once a replacement fails (its new container does "+
		"not run), the rest of the operation replaces no other container of the box. 0: not bounded. Changing it "+
		"changes nothing on the box.")
	an.SetDefault(&a.MaxDownPerBox, DefaultMaxDownPerBox)
}

// Annotate documents the outputs.
func (s *ContainerState) Annotate(a infer.Annotator) {
	const asBox = " As the box's engine reports it."
	a.Describe(&s.Name, docContainerName)
	a.Describe(&s.InstanceID, "The container's `overlay-fleet.instance` label; empty for a container overlay-fleet did not make.")
	a.Describe(&s.Hostname, docCtrHostname+asBox)
	a.Describe(&s.Network, "The network the IP and MAC are read on."+asBox)
	a.Describe(&s.IP, docCtrIP+asBox+" While the container is stopped, its configured address.")
	a.Describe(&s.MAC, "The container's MAC on the network."+asBox+" While the container is stopped, the one it was created with.")
	a.Describe(&s.Image, "The image reference the container was made from.")
	a.Describe(&s.ImageID, "The id of the image the container runs.")
	a.Describe(&s.Merged, "The source of the container's bind mount on `target`."+asBox)
	a.Describe(&s.Target, docCtrTarget)
	a.Describe(&s.Restart, docCtrRestart+asBox)
	a.Describe(&s.Privileged, docCtrPrivileged+asBox)
	a.Describe(&s.DNS, docCtrDNS+asBox)
	a.Describe(&s.Env, "The container's environment variables beyond what its image sets (and those of `env`)."+asBox)
	a.Describe(&s.Running, "Whether the container runs; a refresh that finds it stopped shows `false`, and `up` starts it.")
	a.Describe(&s.Status, "The engine's word for the container's state: running, exited, created, restarting, ...")
	a.Describe(&s.ContainerID, "The engine's id of the container.")
}

// Check applies the defaults and reports malformed inputs by name.
func (*Container) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[ContainerArgs], error) {
	args, failures, err := infer.DefaultCheck[ContainerArgs](ctx, req.NewInputs)
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[ContainerArgs]{Inputs: args, Failures: failures}, err
	}
	c := &checks{inputs: req.NewInputs}
	args.validate(c)
	return infer.CheckResponse[ContainerArgs]{Inputs: args, Failures: c.failures}, nil
}

func (a ContainerArgs) validate(c *checks) {
	c.check("name", dockerNameProblem("container", a.Name))
	c.check("instanceId", instanceIDProblem(a.InstanceID))
	c.check("hostname", hostnameProblem(a.Hostname))
	c.check("network", dockerNameProblem("network", a.Network))
	c.check("ip", ipv4Problem(a.IP))
	c.check("mac", macProblem(a.MAC))
	c.check("image", imageProblem(a.Image))
	if a.ImageID != nil && !imageIDPattern.MatchString(*a.ImageID) {
		c.fail("imageId", "%q is not an image id, sha256:<64 lower-case hex digits>", *a.ImageID)
	}
	c.check("merged", bindPathProblem(a.Merged))
	c.check("target", bindPathProblem(a.Target))
	c.check("restart", restartProblem(a.Restart))
	if a.MaxDownPerBox != nil && *a.MaxDownPerBox < 0 {
		c.fail("maxDownPerBox", "%d is not 0 (not bounded) or more", *a.MaxDownPerBox)
	}
	for _, d := range a.DNS {
		if problem := ipv4Problem(d); problem != "" {
			c.fail("dns", "DNS server %s", problem)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		if !envKeyPattern.MatchString(k) {
			c.fail("env", "%q is not an environment variable name (letters, digits and _, not starting with a digit)", k)
		}
	}
}

// Diff compares the program's inputs with the container as the box last reported it. A change
// of identity, image, network, mount, privileges, DNS or environment replaces the container,
// deleting the old one first (its IP and MAC cannot exist twice); another restart policy, or a
// container found stopped, is an update (set in place, started).
func (*Container) Diff(_ context.Context, req infer.DiffRequest[ContainerArgs, ContainerState]) (infer.DiffResponse, error) {
	diff := map[string]p.PropertyDiff{}
	in, st := req.Inputs, req.State
	mark := func(key string, differs bool, kind p.DiffKind) {
		if differs {
			diff[key] = p.PropertyDiff{Kind: kind, InputDiff: key != "running"}
		}
	}
	mark("name", in.Name != st.Name, p.UpdateReplace)
	mark("instanceId", in.InstanceID != st.InstanceID, p.UpdateReplace)
	mark("hostname", in.Hostname != st.Hostname, p.UpdateReplace)
	mark("network", in.Network != st.Network, p.UpdateReplace)
	mark("ip", in.IP != st.IP, p.UpdateReplace)
	mark("mac", in.MAC != st.MAC, p.UpdateReplace)
	mark("image", in.Image != st.Image, p.UpdateReplace)
	mark("imageId", in.ImageID != nil && *in.ImageID != st.ImageID, p.UpdateReplace)
	mark("merged", in.Merged != st.Merged, p.UpdateReplace)
	mark("target", in.Target != st.Target, p.UpdateReplace)
	mark("privileged", in.Privileged != st.Privileged, p.UpdateReplace)
	mark("dns", !slices.Equal(in.DNS, st.DNS), p.UpdateReplace)
	mark("env", !maps.Equal(in.Env, st.Env), p.UpdateReplace)
	mark("restart", in.Restart != st.Restart, p.Update)
	mark("running", !st.Running, p.Update)
	replace := false
	for _, d := range diff {
		replace = replace || d.Kind == p.UpdateReplace
	}
	// A replacement the engine asks about with inputs not known yet (another resource feeds them:
	// a network replaced first) is forced by that resource and is not bounded: its containers
	// must all go before the network does, one after another.
	if replace && in.Network != "" && in.Merged != "" && in.Image != "" {
		replacements.Store(req.ID, in.maxDown())
	} else {
		replacements.Delete(req.ID)
	}
	// Always delete before replace, also when the engine replaces for another reason (--replace,
	// a replacement whose create failed): the box has one container of the name; made beside
	// the old one, "the old one" deleted next would be the new one.
	return infer.DiffResponse{HasChanges: len(diff) > 0, DetailedDiff: diff, DeleteBeforeReplace: true}, nil
}

// Create makes the container and reads it back. A preview touches nothing.
func (r *Container) Create(ctx context.Context, req infer.CreateRequest[ContainerArgs]) (infer.CreateResponse[ContainerState], error) {
	in := req.Inputs
	if req.DryRun {
		return infer.CreateResponse[ContainerState]{ID: in.Name, Output: in.planned()}, nil
	}
	st, err := r.converge(ctx, "create", in)
	if err != nil {
		if errors.Is(err, errBadAnswer) {
			return infer.CreateResponse[ContainerState]{ID: in.Name, Output: in.planned()}, partial(err)
		}
		return infer.CreateResponse[ContainerState]{}, err
	}
	return infer.CreateResponse[ContainerState]{ID: in.Name, Output: st}, nil
}

// Update sets a new restart policy and starts a stopped container; the agent reads it back.
// A preview touches nothing.
func (r *Container) Update(ctx context.Context, req infer.UpdateRequest[ContainerArgs, ContainerState]) (infer.UpdateResponse[ContainerState], error) {
	in := req.Inputs
	if req.DryRun {
		st := in.planned()
		st.ContainerID, st.ImageID = req.State.ContainerID, req.State.ImageID
		return infer.UpdateResponse[ContainerState]{Output: st}, nil
	}
	st, err := r.converge(ctx, "update", in)
	if err != nil {
		if errors.Is(err, errBadAnswer) {
			return infer.UpdateResponse[ContainerState]{Output: in.planned()}, partial(err)
		}
		return infer.UpdateResponse[ContainerState]{}, err
	}
	return infer.UpdateResponse[ContainerState]{Output: st}, nil
}

// converge runs create or update and checks that the box now has the container running.
func (r *Container) converge(ctx context.Context, op string, in ContainerArgs) (ContainerState, error) {
	req := protocol.ContainerRequest{
		Name: in.Name, InstanceID: in.InstanceID, Hostname: in.Hostname, Network: in.Network, IP: in.IP, MAC: in.MAC,
		Image: in.Image, Merged: in.Merged, Target: in.Target, Restart: in.Restart, Privileged: in.Privileged,
		DNS: in.DNS, Env: in.Env, MaxDown: in.maxDown(), Run: runID,
	}
	if in.ImageID != nil {
		req.ImageID = *in.ImageID
	}
	ans, err := r.call(ctx, op, req)
	if err != nil {
		return ContainerState{}, err
	}
	if !ans.Present || !ans.Running {
		return ContainerState{}, fmt.Errorf("container %s %s: %w: it reports the container present=%v running=%v afterwards", op, in.Name, errBadAnswer, ans.Present, ans.Running)
	}
	return containerFromAnswer(ans), nil
}

// Read asks the box's engine for the container. A missing container gives an empty ID: the
// engine drops the resource and the next `up` makes it again. On import the inputs are taken
// from what the engine reports.
func (r *Container) Read(ctx context.Context, req infer.ReadRequest[ContainerArgs, ContainerState]) (infer.ReadResponse[ContainerArgs, ContainerState], error) {
	// Where to look: the network, mount target and variables of the state, else of the inputs.
	envKeys := map[string]string{}
	for k := range req.Inputs.Env {
		envKeys[k] = ""
	}
	for k := range req.State.Env {
		envKeys[k] = ""
	}
	ans, err := r.call(ctx, "read", protocol.ContainerRequest{
		Name:    req.ID,
		Network: firstNonEmpty(req.State.Network, req.Inputs.Network),
		Target:  firstNonEmpty(req.State.Target, req.Inputs.Target),
		Env:     envKeys,
	})
	if err != nil {
		return infer.ReadResponse[ContainerArgs, ContainerState]{}, err
	}
	if !ans.Present {
		return infer.ReadResponse[ContainerArgs, ContainerState]{}, nil
	}
	st := containerFromAnswer(ans)
	inputs := req.Inputs
	if inputs.Name == "" { // import: adopt what the box has
		inputs = st.args()
	} else if want := firstNonEmpty(req.State.InstanceID, req.Inputs.InstanceID); st.InstanceID != want {
		// A container of that name, but another instance's (or nobody's): this resource's is
		// gone. Taking the other's label into the state would let a delete remove it.
		return infer.ReadResponse[ContainerArgs, ContainerState]{}, nil
	}
	return infer.ReadResponse[ContainerArgs, ContainerState]{ID: req.ID, Inputs: inputs, State: st}, nil
}

// Delete stops and removes the container; one already gone is fine. The agent refuses a
// container of that name that is not the instance's.
func (r *Container) Delete(ctx context.Context, req infer.DeleteRequest[ContainerState]) (infer.DeleteResponse, error) {
	del := protocol.ContainerRequest{Name: req.ID, InstanceID: req.State.InstanceID, Merged: req.State.Merged, Run: runID}
	if max, ok := replacements.LoadAndDelete(req.ID); ok {
		del.Replacing, del.MaxDown = true, max.(int)
	}
	ans, err := r.call(ctx, "delete", del)
	if err != nil {
		return infer.DeleteResponse{}, err
	}
	if ans.Present {
		return infer.DeleteResponse{}, fmt.Errorf("container delete %s: the agent reports the container still there", req.ID)
	}
	return infer.DeleteResponse{}, nil
}

// call runs one container operation and checks that the answer is about the container asked for.
func (r *Container) call(ctx context.Context, op string, req protocol.ContainerRequest) (protocol.ContainerAnswer, error) {
	b, err := findBox(ctx, r.box)
	if err != nil {
		return protocol.ContainerAnswer{}, err
	}
	var ans protocol.ContainerAnswer
	if err := callAgent(ctx, b, protocol.ContainerCommand, op, req, &ans); err != nil {
		return protocol.ContainerAnswer{}, err
	}
	if ans.Name != req.Name {
		return protocol.ContainerAnswer{}, fmt.Errorf("container %s %s on %s: %w: it is about %q", op, req.Name, b.Runner.Addr(), errBadAnswer, ans.Name)
	}
	return ans, nil
}

// containerFromAnswer is the state of a container the agent reports.
func containerFromAnswer(a protocol.ContainerAnswer) ContainerState {
	s := ContainerState{
		Name: a.Name, InstanceID: a.InstanceID, Hostname: a.Hostname, Network: a.Network, IP: a.IP, MAC: a.MAC,
		Image: a.Image, ImageID: a.ImageID, Merged: a.Merged, Target: a.Target, Restart: a.Restart, Privileged: a.Privileged,
		DNS: a.DNS, Env: a.Env, Running: a.Running, Status: a.Status, ContainerID: a.ID,
	}
	if len(s.DNS) == 0 {
		s.DNS = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	return s
}
