package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const commandType = "command:remote:Command"

// commandProvider serves the ResourceProvider gRPC API for command:remote:Command.
type commandProvider struct {
	pulumirpc.UnimplementedResourceProviderServer

	host *provider.HostClient // nil in tests

	mu            sync.Mutex
	acceptSecrets bool

	ctx    context.Context // cancelled by Cancel: stops running commands and dial retries
	cancel context.CancelFunc
}

func newProvider(host *provider.HostClient) *commandProvider {
	ctx, cancel := context.WithCancel(context.Background())
	return &commandProvider{host: host, acceptSecrets: true, ctx: ctx, cancel: cancel}
}

// ---- plumbing --------------------------------------------------------------------------------

func (p *commandProvider) unmarshal(s *structpb.Struct, label string) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(s, plugin.MarshalOptions{
		Label: label, KeepUnknowns: true, KeepSecrets: true, KeepResources: true,
	})
}

func (p *commandProvider) marshal(m resource.PropertyMap, label string) (*structpb.Struct, error) {
	p.mu.Lock()
	keepSecrets := p.acceptSecrets
	p.mu.Unlock()
	return plugin.MarshalProperties(m, plugin.MarshalOptions{
		Label: label, KeepUnknowns: true, KeepSecrets: keepSecrets, KeepResources: true,
	})
}

func checkType(typ, urn string) error {
	if typ == "" && urn != "" {
		typ = string(resource.URN(urn).Type())
	}
	if typ != commandType {
		return fmt.Errorf("resource type %q is not supported: this pulumi-resource-command (overlay-fleet's own "+
			"build, tools/command-provider) implements only %s", typ, commandType)
	}
	return nil
}

// opContext bounds an operation by the engine's timeout (customTimeouts) and by Cancel.
func (p *commandProvider) opContext(ctx context.Context, timeoutSeconds float64) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.ctx, cancel)
	if timeoutSeconds > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, time.Duration(timeoutSeconds*float64(time.Second)))
		return ctx, func() { c2(); stop(); cancel() }
	}
	return ctx, func() { stop(); cancel() }
}

// engineReporter logs to the engine against one resource.
type engineReporter struct {
	ctx  context.Context
	host *provider.HostClient
	urn  resource.URN
}

func (r engineReporter) Status(msg string) {
	if r.host != nil {
		_ = r.host.LogStatus(r.ctx, diag.Info, r.urn, msg)
	}
}

func (r engineReporter) Warn(msg string) {
	if r.host != nil {
		_ = r.host.Log(r.ctx, diag.Warning, r.urn, msg)
	}
}

func (p *commandProvider) reporter(ctx context.Context, urn string) reporter {
	// The engine's log must not be tied to the operation's cancellation.
	return engineReporter{ctx: context.WithoutCancel(ctx), host: p.host, urn: resource.URN(urn)}
}

// runFunc is replaced in tests.
var runFunc = runRemote

func stringOr(m resource.PropertyMap, key, def string) resource.PropertyValue {
	if v, ok := m[resource.PropertyKey(key)]; ok && !v.IsNull() {
		return v
	}
	return resource.NewStringProperty(def)
}

func copyMap(m resource.PropertyMap) resource.PropertyMap {
	out := make(resource.PropertyMap, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---- provider-level calls ----------------------------------------------------------------------

func (p *commandProvider) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest) (*pulumirpc.ProviderHandshakeResponse, error) {
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true}, nil
}

func (p *commandProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (p *commandProvider) GetSchema(_ context.Context, req *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: schemaJSON()}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *commandProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *commandProvider) Configure(_ context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	p.mu.Lock()
	p.acceptSecrets = req.GetAcceptSecrets()
	p.mu.Unlock()
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, AcceptResources: true, SupportsPreview: true}, nil
}

func (p *commandProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	p.cancel()
	return &emptypb.Empty{}, nil
}

func (p *commandProvider) GetMapping(context.Context, *pulumirpc.GetMappingRequest) (*pulumirpc.GetMappingResponse, error) {
	return &pulumirpc.GetMappingResponse{}, nil
}

func (p *commandProvider) GetMappings(context.Context, *pulumirpc.GetMappingsRequest) (*pulumirpc.GetMappingsResponse, error) {
	return &pulumirpc.GetMappingsResponse{}, nil
}

// Invoke: upstream's functions (command:local:run, command:remote:run...) are not implemented.
func (p *commandProvider) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	return nil, fmt.Errorf("function %q is not supported: this pulumi-resource-command (overlay-fleet's own "+
		"build, tools/command-provider) implements only the resource %s", req.GetTok(), commandType)
}

// ---- the resource ------------------------------------------------------------------------------

// Check validates the known inputs and returns them unchanged (defaults are applied when the
// command runs, so the state holds what the program sent and Diff does not flap).
func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetType(), req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := p.unmarshal(req.GetNews(), "Check.news")
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.CheckResponse{Inputs: req.GetNews()}
	for _, f := range checkInputs(news) {
		resp.Failures = append(resp.Failures, &pulumirpc.CheckFailure{Property: f.Property, Reason: f.Reason})
	}
	return resp, nil
}

// Diff: a change of triggers replaces; any other input change updates (re-runs update or
// create); stdout and stderr are outputs and never compared.
func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if err := checkType(req.GetType(), req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := p.unmarshal(req.GetNews(), "Diff.news")
	if err != nil {
		return nil, err
	}
	oldState, err := p.unmarshal(req.GetOlds(), "Diff.olds")
	if err != nil {
		return nil, err
	}
	oldInputs, err := p.unmarshal(req.GetOldInputs(), "Diff.oldInputs")
	if err != nil {
		return nil, err
	}
	d := diffInputs(oldInputsOf(oldInputs, oldState), news, req.GetIgnoreChanges())
	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_NONE,
		HasDetailedDiff: true,
		DetailedDiff:    d.Detailed,
	}
	if len(d.Changed) > 0 {
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
		resp.Diffs = d.Changed
		resp.Replaces = d.Replaces
	}
	return resp, nil
}

func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.GetType(), req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := p.unmarshal(req.GetProperties(), "Create.properties")
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = resource.URN(req.GetUrn()).Name()
	}
	id, err := resource.NewUniqueHex(name, 8, 0)
	if err != nil {
		return nil, err
	}
	outs := copyMap(news)
	if req.GetPreview() {
		// Nothing runs during preview; the output is not known yet.
		outs[keyStdout] = resource.MakeComputed(resource.NewStringProperty(""))
		outs[keyStderr] = resource.MakeComputed(resource.NewStringProperty(""))
	} else {
		args, err := parseArgs(news)
		if err != nil {
			return nil, err
		}
		stdout, stderr := "", ""
		if args.Create != nil {
			ctx, done := p.opContext(ctx, req.GetTimeout())
			defer done()
			stdout, stderr, err = runFunc(ctx, runSpec{
				Op: "create", Command: *args.Create, Conn: args.Connection, Environment: args.Environment,
				Stdin: args.Stdin, Logging: args.Logging,
			}, p.reporter(ctx, req.GetUrn()))
			if err != nil {
				return nil, err
			}
		}
		outs[keyStdout] = resource.NewStringProperty(stdout)
		outs[keyStderr] = resource.NewStringProperty(stderr)
	}
	props, err := p.marshal(outs, "Create.outputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

// Update re-runs `update`, or `create` when there is no `update` (as upstream 1.x). During
// preview nothing runs and stdout/stderr keep their old values, as upstream.
func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if err := checkType(req.GetType(), req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := p.unmarshal(req.GetOlds(), "Update.olds")
	if err != nil {
		return nil, err
	}
	news, err := p.unmarshal(req.GetNews(), "Update.news")
	if err != nil {
		return nil, err
	}
	outs := copyMap(news)
	outs[keyStdout] = stringOr(olds, keyStdout, "")
	outs[keyStderr] = stringOr(olds, keyStderr, "")
	if !req.GetPreview() {
		args, err := parseArgs(news)
		if err != nil {
			return nil, err
		}
		cmd, op := args.Update, "update"
		if cmd == nil {
			cmd, op = args.Create, "create (for an update)"
		}
		if cmd != nil {
			spec := runSpec{
				Op: op, Command: *cmd, Conn: args.Connection, Environment: args.Environment,
				Stdin: args.Stdin, Logging: args.Logging,
			}
			if args.AddPreviousOutputInEnv {
				spec.PrevStdout, spec.PrevStderr = stateString(olds, keyStdout), stateString(olds, keyStderr)
			}
			ctx, done := p.opContext(ctx, req.GetTimeout())
			defer done()
			stdout, stderr, err := runFunc(ctx, spec, p.reporter(ctx, req.GetUrn()))
			if err != nil {
				return nil, err
			}
			outs[keyStdout] = resource.NewStringProperty(stdout)
			outs[keyStderr] = resource.NewStringProperty(stderr)
		}
	}
	props, err := p.marshal(outs, "Update.outputs")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func stateString(m resource.PropertyMap, key string) string {
	if v := unwrap(m[resource.PropertyKey(key)]); v.IsString() {
		return v.StringValue()
	}
	return ""
}

// Delete runs `delete`, if set, with the connection and commands of the state.
func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if err := checkType(req.GetType(), req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := p.unmarshal(req.GetProperties(), "Delete.properties")
	if err != nil {
		return nil, err
	}
	if !present(olds, keyDelete) {
		return &emptypb.Empty{}, nil
	}
	args, err := parseArgs(olds)
	if err != nil {
		return nil, fmt.Errorf("cannot run delete: the state is not usable: %w", err)
	}
	spec := runSpec{
		Op: "delete", Command: *args.Delete, Conn: args.Connection, Environment: args.Environment,
		Stdin: args.Stdin, Logging: args.Logging,
	}
	if args.AddPreviousOutputInEnv {
		spec.PrevStdout, spec.PrevStderr = args.Stdout, args.Stderr
	}
	ctx, done := p.opContext(ctx, req.GetTimeout())
	defer done()
	if _, _, err := runFunc(ctx, spec, p.reporter(ctx, req.GetUrn())); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Read returns the state unchanged: a command has nothing to read back (as upstream), so
// refresh sees no drift.
func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if err := checkType(req.GetType(), req.GetUrn()); err != nil {
		return nil, err
	}
	if len(req.GetProperties().GetFields()) == 0 {
		return nil, errors.New("command:remote:Command cannot be imported or read: it has no remote state")
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}
