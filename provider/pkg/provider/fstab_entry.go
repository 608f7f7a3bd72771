package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"

	"overlay-fleet/host/agent/protocol"
)

// DefaultFstab is the fstab an entry goes to unless told otherwise.
const DefaultFstab = "/etc/fstab"

// FstabEntry is one managed line of an overlay instance in a box's fstab. The box agent owns
// the file's format: it writes, reads and removes the line (`fstab-entry` subcommand).
type FstabEntry struct {
	// box finds the box to act on; nil means the provider's configured box. Tests set it.
	box func(context.Context) (Box, error)
}

// FstabEntryArgs are the inputs of an FstabEntry.
type FstabEntryArgs struct {
	Fstab      string `pulumi:"fstab,optional"`
	InstanceID string `pulumi:"instanceId"`
	Merged     string `pulumi:"merged"`
	Options    string `pulumi:"options"`
}

// FstabEntryState is the entry as the box reports it: the inputs' fields as read back from
// the box's fstab, and the line itself.
type FstabEntryState struct {
	Fstab      string `pulumi:"fstab"`
	InstanceID string `pulumi:"instanceId"`
	Merged     string `pulumi:"merged"`
	Options    string `pulumi:"options"`
	Line       string `pulumi:"line"`
}

// args is the state as inputs: what an import adopts.
func (s FstabEntryState) args() FstabEntryArgs {
	return FstabEntryArgs{Fstab: s.Fstab, InstanceID: s.InstanceID, Merged: s.Merged, Options: s.Options}
}

func stateFromInputs(in FstabEntryArgs, line string) FstabEntryState {
	return FstabEntryState{Fstab: in.Fstab, InstanceID: in.InstanceID, Merged: in.Merged, Options: in.Options, Line: line}
}

const (
	docFstab      = "Absolute path of the fstab file on the box. Changing it replaces the entry."
	docInstanceID = "The overlay instance this line belongs to, `<box>/<name>` (e.g. `box1/ttnode1`); " +
		"it marks the line as managed and is the resource ID. Changing it replaces the entry."
	docMerged  = "Absolute path of the instance's merged directory: the mount point."
	docOptions = "The overlay mount options, comma-separated, pinned in full: " +
		"`lowerdir=...,upperdir=...,workdir=...,index=off,nfs_export=off,...`."
)

var (
	_ infer.CustomResource[FstabEntryArgs, FstabEntryState] = (*FstabEntry)(nil)
	_ infer.CustomCheck[FstabEntryArgs]                     = (*FstabEntry)(nil)
	_ infer.CustomDiff[FstabEntryArgs, FstabEntryState]     = (*FstabEntry)(nil)
	_ infer.CustomRead[FstabEntryArgs, FstabEntryState]     = (*FstabEntry)(nil)
	_ infer.CustomUpdate[FstabEntryArgs, FstabEntryState]   = (*FstabEntry)(nil)
	_ infer.CustomDelete[FstabEntryState]                   = (*FstabEntry)(nil)
)

// Annotate documents the resource and sets its token.
func (r *FstabEntry) Annotate(a infer.Annotator) {
	a.SetToken("index", "FstabEntry")
	a.Describe(&r, "One managed line in a box's fstab that mounts an overlay instance at boot. "+
		"The box agent writes it atomically under a lock, leaves every other line untouched and "+
		"keeps a backup. Its outputs are what the box's fstab holds, so `pulumi refresh` shows "+
		"a hand-edited line as drift and a removed line as gone. The resource ID is the "+
		"instance ID; `pulumi import` adopts an existing line by it.")
}

// Annotate documents the inputs.
func (a *FstabEntryArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Fstab, docFstab)
	an.SetDefault(&a.Fstab, DefaultFstab)
	an.Describe(&a.InstanceID, docInstanceID)
	an.Describe(&a.Merged, docMerged)
	an.Describe(&a.Options, docOptions)
}

// Annotate documents the outputs.
func (s *FstabEntryState) Annotate(a infer.Annotator) {
	const asBox = " As the box's fstab has it."
	a.Describe(&s.Fstab, docFstab+asBox)
	a.Describe(&s.InstanceID, docInstanceID+asBox)
	a.Describe(&s.Merged, docMerged+asBox)
	a.Describe(&s.Options, docOptions+asBox)
	a.Describe(&s.Line, "The whole line as it stands in the box's fstab.")
}

// Check applies the defaults and reports malformed inputs by name. Values still unknown
// (during a preview) are left to the next check.
func (*FstabEntry) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[FstabEntryArgs], error) {
	args, failures, err := infer.DefaultCheck[FstabEntryArgs](ctx, req.NewInputs)
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[FstabEntryArgs]{Inputs: args, Failures: failures}, err
	}
	known := func(key string) bool {
		v, ok := req.NewInputs.GetOk(key)
		return !ok || !v.IsComputed()
	}
	return infer.CheckResponse[FstabEntryArgs]{Inputs: args, Failures: args.validate(known)}, nil
}

func (a FstabEntryArgs) validate(known func(string) bool) []p.CheckFailure {
	var fs []p.CheckFailure
	fail := func(prop, format string, args ...any) {
		fs = append(fs, p.CheckFailure{Property: prop, Reason: fmt.Sprintf(format, args...)})
	}
	if known("fstab") && !isAbsPath(a.Fstab) {
		fail("fstab", "%q is not an absolute path", a.Fstab)
	}
	if known("instanceId") {
		if err := validateInstanceID(a.InstanceID); err != nil {
			fail("instanceId", "%v", err)
		}
	}
	if known("merged") && !isAbsPath(a.Merged) {
		fail("merged", "%q is not an absolute path", a.Merged)
	}
	if known("options") && (a.Options == "" || strings.ContainsAny(a.Options, " \t\n")) {
		fail("options", "%q is not a comma-separated option list without blanks", a.Options)
	}
	return fs
}

func isAbsPath(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.ContainsAny(s, " \t\n")
}

func validateInstanceID(id string) error {
	b, n, ok := strings.Cut(id, "/")
	if !ok || b == "" || n == "" || strings.Contains(n, "/") || strings.ContainsAny(id, " \t\n") {
		return fmt.Errorf("%q is not of the form <box>/<name>", id)
	}
	return nil
}

// Diff compares the program's inputs with the entry as the box last reported it: another
// fstab or instance is a new entry (replace), other mount point or options an update.
func (*FstabEntry) Diff(_ context.Context, req infer.DiffRequest[FstabEntryArgs, FstabEntryState]) (infer.DiffResponse, error) {
	diff := map[string]p.PropertyDiff{}
	compare := func(key, old, new string, kind p.DiffKind) {
		if old != new {
			diff[key] = p.PropertyDiff{Kind: kind}
		}
	}
	in, st := req.Inputs, req.State
	compare("fstab", st.Fstab, in.Fstab, p.UpdateReplace)
	compare("instanceId", st.InstanceID, in.InstanceID, p.UpdateReplace)
	compare("merged", st.Merged, in.Merged, p.Update)
	compare("options", st.Options, in.Options, p.Update)
	// A replacement deletes the old line first: a box's fstab has one line per mount point, so
	// the new one would be refused beside it. Always, also when the engine replaces for another
	// reason (--replace, a replacement whose create failed): written beside the old one, "the
	// old one" deleted next would be the new one.
	return infer.DiffResponse{HasChanges: len(diff) > 0, DetailedDiff: diff, DeleteBeforeReplace: true}, nil
}

// Create writes the line. A preview touches nothing.
func (r *FstabEntry) Create(ctx context.Context, req infer.CreateRequest[FstabEntryArgs]) (infer.CreateResponse[FstabEntryState], error) {
	in := req.Inputs
	if req.DryRun {
		return infer.CreateResponse[FstabEntryState]{ID: in.InstanceID, Output: stateFromInputs(in, "")}, nil
	}
	st, err := r.write(ctx, "create", in.InstanceID, in)
	if err != nil {
		if errors.Is(err, errBadAnswer) {
			// The line was written; keep the resource so the next update puts it right.
			return infer.CreateResponse[FstabEntryState]{ID: in.InstanceID, Output: stateFromInputs(in, "")},
				partial(err)
		}
		return infer.CreateResponse[FstabEntryState]{}, err
	}
	return infer.CreateResponse[FstabEntryState]{ID: in.InstanceID, Output: st}, nil
}

// Update rewrites the line with new mount point or options. A preview touches nothing.
func (r *FstabEntry) Update(ctx context.Context, req infer.UpdateRequest[FstabEntryArgs, FstabEntryState]) (infer.UpdateResponse[FstabEntryState], error) {
	in := req.Inputs
	if req.DryRun {
		return infer.UpdateResponse[FstabEntryState]{Output: stateFromInputs(in, req.State.Line)}, nil
	}
	st, err := r.write(ctx, "update", req.ID, in)
	if err != nil {
		if errors.Is(err, errBadAnswer) {
			return infer.UpdateResponse[FstabEntryState]{Output: stateFromInputs(in, "")},
				partial(err)
		}
		return infer.UpdateResponse[FstabEntryState]{}, err
	}
	return infer.UpdateResponse[FstabEntryState]{Output: st}, nil
}

// Read asks the box for the line. A missing line gives an empty ID: the engine drops the
// resource and the next `up` writes it again. On import only the ID is known: the fstab is
// then the default one, and the inputs are taken from the box.
func (r *FstabEntry) Read(ctx context.Context, req infer.ReadRequest[FstabEntryArgs, FstabEntryState]) (infer.ReadResponse[FstabEntryArgs, FstabEntryState], error) {
	fstab := firstNonEmpty(req.State.Fstab, req.Inputs.Fstab, DefaultFstab)
	ans, err := r.call(ctx, "read", protocol.FstabEntryRequest{FSTab: fstab, ID: req.ID})
	if err != nil {
		return infer.ReadResponse[FstabEntryArgs, FstabEntryState]{}, err
	}
	if !ans.Present {
		return infer.ReadResponse[FstabEntryArgs, FstabEntryState]{}, nil
	}
	st := entryFromAnswer(ans)
	inputs := req.Inputs
	if inputs.InstanceID == "" { // import: adopt what the box has
		inputs = st.args()
	}
	return infer.ReadResponse[FstabEntryArgs, FstabEntryState]{ID: req.ID, Inputs: inputs, State: st}, nil
}

// Delete removes the line; a line already gone is fine.
func (r *FstabEntry) Delete(ctx context.Context, req infer.DeleteRequest[FstabEntryState]) (infer.DeleteResponse, error) {
	fstab := firstNonEmpty(req.State.Fstab, DefaultFstab)
	ans, err := r.call(ctx, "delete", protocol.FstabEntryRequest{FSTab: fstab, ID: req.ID})
	if err != nil {
		return infer.DeleteResponse{}, err
	}
	if ans.Present {
		return infer.DeleteResponse{}, fmt.Errorf("fstab-entry delete %s: the agent reports the line still in %s", req.ID, fstab)
	}
	return infer.DeleteResponse{}, nil
}

// write runs create or update and checks that the box now has the line.
func (r *FstabEntry) write(ctx context.Context, op, id string, in FstabEntryArgs) (FstabEntryState, error) {
	ans, err := r.call(ctx, op, protocol.FstabEntryRequest{FSTab: in.Fstab, ID: id, Merged: in.Merged, Options: in.Options})
	if err != nil {
		return FstabEntryState{}, err
	}
	if !ans.Present {
		return FstabEntryState{}, fmt.Errorf("fstab-entry %s %s: %w: it reports no line in %s afterwards", op, id, errBadAnswer, in.Fstab)
	}
	return entryFromAnswer(ans), nil
}

// partial marks err as a failure after the box may have acted: the engine keeps the
// resource (with the planned inputs) and the next `up` updates it.
func partial(err error) error {
	return fmt.Errorf("%w: %w", infer.ResourceInitFailedError{Reasons: []string{err.Error()}}, err)
}

// call runs one fstab-entry operation and checks the answer is about the entry asked for.
func (r *FstabEntry) call(ctx context.Context, op string, req protocol.FstabEntryRequest) (protocol.FstabEntryAnswer, error) {
	find := r.box
	if find == nil {
		find = boxFromConfig
	}
	b, err := find(ctx)
	if err != nil {
		return protocol.FstabEntryAnswer{}, err
	}
	var ans protocol.FstabEntryAnswer
	if err := callAgent(ctx, b, protocol.FstabEntryCommand, op, req, &ans); err != nil {
		return protocol.FstabEntryAnswer{}, err
	}
	if ans.ID != req.ID {
		return protocol.FstabEntryAnswer{}, fmt.Errorf("fstab-entry %s %s on %s: %w: it is about %q", op, req.ID, b.Runner.Addr(), errBadAnswer, ans.ID)
	}
	return ans, nil
}

// entryFromAnswer is the state of an entry the agent reports.
func entryFromAnswer(a protocol.FstabEntryAnswer) FstabEntryState {
	return FstabEntryState{Fstab: a.FSTab, InstanceID: a.ID, Merged: a.Merged, Options: a.Options, Line: a.Line}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
