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

// PinnedOverlayOptions are the options every overlay mount carries (the box agent adds them
// whatever the inputs say); the default of OverlayMount's options.
const PinnedOverlayOptions = "index=off,nfs_export=off,redirect_dir=off,metacopy=off"

// OverlayMount is the overlay of one instance on a box: its upper, work and merged directories
// and the overlay mounted on the merged dir with the pinned options. The box agent
// (`overlay-mount` subcommand) owns the checks and the mount.
type OverlayMount struct {
	// box finds the box to act on; nil means the provider's configured box. Tests set it.
	box func(context.Context) (Box, error)
}

// OverlayMountArgs are the inputs of an OverlayMount.
type OverlayMountArgs struct {
	Merged        string  `pulumi:"merged"`
	Lower         string  `pulumi:"lower"`
	Upper         string  `pulumi:"upper"`
	Work          string  `pulumi:"work"`
	Options       string  `pulumi:"options,optional"`
	PurgeOnRemove bool    `pulumi:"purgeOnRemove,optional"`
	Container     *string `pulumi:"container,optional"`
}

// OverlayMountState is the mount as the box reports it, and the delete-time setting
// purgeOnRemove.
type OverlayMountState struct {
	Merged        string `pulumi:"merged"`
	Mounted       bool   `pulumi:"mounted"`
	Lower         string `pulumi:"lower"`
	Upper         string `pulumi:"upper"`
	Work          string `pulumi:"work"`
	Options       string `pulumi:"options"`
	PurgeOnRemove bool   `pulumi:"purgeOnRemove"`
}

// args is the state as inputs: what an import adopts.
func (s OverlayMountState) args() OverlayMountArgs {
	return OverlayMountArgs{Merged: s.Merged, Lower: s.Lower, Upper: s.Upper, Work: s.Work, Options: s.Options, PurgeOnRemove: s.PurgeOnRemove}
}

// overlayMountPlanned is the state a preview shows: the inputs, mounted.
func overlayMountPlanned(in OverlayMountArgs) OverlayMountState {
	return OverlayMountState{Merged: in.Merged, Mounted: true, Lower: in.Lower, Upper: in.Upper, Work: in.Work,
		Options: in.Options, PurgeOnRemove: in.PurgeOnRemove}
}

const (
	omDocMerged = "Absolute path of the instance's merged directory, the mount point; created when " +
		"missing. It is the resource ID; changing it replaces the mount (the old one is removed first)."
	omDocLower = "Absolute path of the lower directory the instance reads (the lower cache); never " +
		"created, written or removed by this resource. Changing it remounts."
	omDocUpper = "Absolute path of the instance's upper directory, where its writes go; created when " +
		"missing. No other overlay may use it or a directory inside or around it. Changing it remounts."
	omDocWork = "Absolute path of the instance's overlayfs work directory, on the filesystem of the " +
		"upper; created when missing. Changing it remounts."
	omDocOptions = "Mount options, comma-separated: the pinned `" + PinnedOverlayOptions + "` " +
		"(always in effect; a contrary value is refused) and any of the overlay options xino=, uuid=, " +
		"volatile, userxattr, ... and the flags ro, noatime, nodev, nosuid, noexec, .... Changing " +
		"them remounts (unmount + mount: a remount cannot change an overlay)."
	omDocPurge = "Delete-time setting: when the resource is removed, also delete the upper and work " +
		"directories (the instance's data) after the unmount. Only for the plan's layout " +
		"`<dir>/mnts`, `<dir>/upper`, `<dir>/work`, and never a directory another overlay uses; the " +
		"lower is never touched. Changing it alone changes nothing on the box."
	omDocContainer = "The container of this instance (its name), stopped before a remount and started " +
		"again after it, as the box lock allows one remount at a time. Only a running container that " +
		"carries the `overlay-fleet.instance` label and binds the merged directory is stopped (one that " +
		"does not run stays as it is); another container of that name refuses the remount and is never " +
		"touched. When the new mount fails, the container is left stopped and the error says so. An " +
		"input only: changing it alone changes nothing on the box, and an import leaves it unset."
)

var (
	_ infer.CustomResource[OverlayMountArgs, OverlayMountState] = (*OverlayMount)(nil)
	_ infer.CustomCheck[OverlayMountArgs]                       = (*OverlayMount)(nil)
	_ infer.CustomDiff[OverlayMountArgs, OverlayMountState]     = (*OverlayMount)(nil)
	_ infer.CustomRead[OverlayMountArgs, OverlayMountState]     = (*OverlayMount)(nil)
	_ infer.CustomUpdate[OverlayMountArgs, OverlayMountState]   = (*OverlayMount)(nil)
	_ infer.CustomDelete[OverlayMountState]                     = (*OverlayMount)(nil)
)

// Annotate documents the resource and sets its token.
func (r *OverlayMount) Annotate(a infer.Annotator) {
	a.SetToken("index", "OverlayMount")
	a.Describe(&r, "The overlay of one instance on a box: its upper, work and merged directories and "+
		"the overlay mounted on the merged directory with the pinned options. The box agent checks, "+
		"under the box lock, that no other overlay shares or nests its upper or work directory or "+
		"uses them as a lower, and that the merged directory is not another mount or a non-empty "+
		"bare directory; it reads the mount back and verifies the options in effect. Its outputs are "+
		"what the box's mount table shows, so `pulumi refresh` shows other layers or options as "+
		"drift and an unmounted instance as gone. The resource ID is the merged directory; "+
		"`pulumi import` adopts a mounted overlay by it. A remount (other layers or options) stops "+
		"the instance's running container (input `container`) first and starts it again after the mount.")
}

// Annotate documents the inputs.
func (a *OverlayMountArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Merged, omDocMerged)
	an.Describe(&a.Lower, omDocLower)
	an.Describe(&a.Upper, omDocUpper)
	an.Describe(&a.Work, omDocWork)
	an.Describe(&a.Options, omDocOptions)
	an.SetDefault(&a.Options, PinnedOverlayOptions)
	an.Describe(&a.PurgeOnRemove, omDocPurge)
	an.SetDefault(&a.PurgeOnRemove, false)
	an.Describe(&a.Container, omDocContainer)
}

// Annotate documents the outputs.
func (s *OverlayMountState) Annotate(a infer.Annotator) {
	const asBox = " As the box's mount table shows it: the input's value where it is the same directory or in effect."
	a.Describe(&s.Merged, omDocMerged)
	a.Describe(&s.Mounted, "Whether an overlay is mounted on the merged directory.")
	a.Describe(&s.Lower, omDocLower+asBox+" Several lowers are joined by `:`.")
	a.Describe(&s.Upper, omDocUpper+asBox)
	a.Describe(&s.Work, omDocWork+asBox)
	a.Describe(&s.Options, "The mount options in effect: the inputs' when the kernel has them in "+
		"effect, else those it has, in the same words (the pinned keys first).")
	a.Describe(&s.PurgeOnRemove, omDocPurge)
}

// Check applies the defaults and reports malformed inputs by name. Values still unknown
// (during a preview) are left to the next check; the box agent checks the options against its
// allow-list.
func (*OverlayMount) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[OverlayMountArgs], error) {
	args, failures, err := infer.DefaultCheck[OverlayMountArgs](ctx, req.NewInputs)
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[OverlayMountArgs]{Inputs: args, Failures: failures}, err
	}
	known := func(key string) bool {
		v, ok := req.NewInputs.GetOk(key)
		return !ok || !v.IsComputed()
	}
	return infer.CheckResponse[OverlayMountArgs]{Inputs: args, Failures: args.validate(known)}, nil
}

func (a OverlayMountArgs) validate(known func(string) bool) []p.CheckFailure {
	var fs []p.CheckFailure
	for _, f := range []struct{ key, value string }{{"merged", a.Merged}, {"lower", a.Lower}, {"upper", a.Upper}, {"work", a.Work}} {
		if !known(f.key) {
			continue
		}
		if err := checkOverlayPath(f.value); err != nil {
			fs = append(fs, p.CheckFailure{Property: f.key, Reason: err.Error()})
		}
	}
	if known("options") {
		if err := checkOverlayOptions(a.Options); err != nil {
			fs = append(fs, p.CheckFailure{Property: "options", Reason: err.Error()})
		}
	}
	if known("container") && a.Container != nil && *a.Container != "" && !dockerNamePattern.MatchString(*a.Container) {
		fs = append(fs, p.CheckFailure{Property: "container", Reason: fmt.Sprintf("%q is not a valid docker container name (A-Z a-z 0-9 _ . -, starting with a letter or digit, at most 63)", *a.Container)})
	}
	return fs
}

// checkOverlayPath accepts what the agent takes as an instance directory: an absolute, clean
// path that overlay options and mountinfo carry verbatim.
func checkOverlayPath(s string) error {
	switch {
	case !strings.HasPrefix(s, "/") || s == "/":
		return fmt.Errorf("%q is not an absolute path below /", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%q contains whitespace or control characters", s)
	case strings.ContainsAny(s, `,:\"`):
		return fmt.Errorf(`%q contains one of , : \ " which overlay mount options cannot carry`, s)
	}
	for _, c := range strings.Split(s[1:], "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q is not a clean path (no empty, . or .. components, no trailing slash)", s)
		}
	}
	return nil
}

// checkOverlayOptions accepts a comma-separated option list without blanks, empty options or
// layers (those are inputs of their own).
func checkOverlayOptions(s string) error {
	if s == "" {
		return errors.New("must not be empty (the default is " + PinnedOverlayOptions + ")")
	}
	for _, o := range strings.Split(s, ",") {
		k, _, _ := strings.Cut(o, "=")
		switch {
		case o == "" || strings.ContainsAny(o, " \t\n"):
			return fmt.Errorf("%q is not a comma-separated option list without blanks", s)
		case k == "lowerdir" || k == "upperdir" || k == "workdir" || k == "lowerdir+" || k == "datadir+":
			return fmt.Errorf("%q sets %s: the layers are the inputs lower, upper and work", s, k)
		}
	}
	return nil
}

// Diff compares the program's inputs with the mount as the box last reported it: another merged
// dir is another mount (replaced, the old one deleted first: two overlays on one upper are
// refused); other layers or options are an update (a remount); purgeOnRemove alone is an update
// that does not touch the box. A mount found unmounted is an update too. container is not
// compared: an input only (what a remount stops and starts again), it changes nothing on the box
// by itself, and the next update that remounts uses the program's.
func (*OverlayMount) Diff(_ context.Context, req infer.DiffRequest[OverlayMountArgs, OverlayMountState]) (infer.DiffResponse, error) {
	diff := map[string]p.PropertyDiff{}
	compare := func(key string, changed bool, kind p.DiffKind) {
		if changed {
			diff[key] = p.PropertyDiff{Kind: kind}
		}
	}
	in, st := req.Inputs, req.State
	compare("merged", st.Merged != in.Merged, p.UpdateReplace)
	compare("lower", st.Lower != in.Lower, p.Update)
	compare("upper", st.Upper != in.Upper, p.Update)
	compare("work", st.Work != in.Work, p.Update)
	compare("options", st.Options != in.Options, p.Update)
	compare("purgeOnRemove", st.PurgeOnRemove != in.PurgeOnRemove, p.Update)
	compare("mounted", !st.Mounted, p.Update)
	// Always delete before replace, also when the engine replaces for another reason (--replace,
	// a replacement whose create failed): one mount per merged dir; mounted "beside" the old one,
	// "the old one" unmounted next would be the new one.
	return infer.DiffResponse{HasChanges: len(diff) > 0, DetailedDiff: diff, DeleteBeforeReplace: true}, nil
}

// Create makes the dirs and mounts the overlay. A preview touches nothing.
func (r *OverlayMount) Create(ctx context.Context, req infer.CreateRequest[OverlayMountArgs]) (infer.CreateResponse[OverlayMountState], error) {
	in := req.Inputs
	if req.DryRun {
		return infer.CreateResponse[OverlayMountState]{ID: in.Merged, Output: overlayMountPlanned(in)}, nil
	}
	st, err := r.mount(ctx, "create", in)
	if err != nil {
		if errors.Is(err, errBadAnswer) {
			// The overlay may be mounted; keep the resource so the next update puts it right.
			planned := overlayMountPlanned(in)
			planned.Mounted = false
			return infer.CreateResponse[OverlayMountState]{ID: in.Merged, Output: planned}, partial(err)
		}
		return infer.CreateResponse[OverlayMountState]{}, err
	}
	return infer.CreateResponse[OverlayMountState]{ID: in.Merged, Output: st}, nil
}

// Update remounts with new layers or options; the box agent stops the instance's running
// container (input container) around the remount and starts it again. A change of
// purgeOnRemove alone is recorded without touching the box. A preview touches nothing.
func (r *OverlayMount) Update(ctx context.Context, req infer.UpdateRequest[OverlayMountArgs, OverlayMountState]) (infer.UpdateResponse[OverlayMountState], error) {
	in, old := req.Inputs, req.State
	if req.DryRun {
		return infer.UpdateResponse[OverlayMountState]{Output: overlayMountPlanned(in)}, nil
	}
	if old.Mounted && old.Merged == in.Merged && old.Lower == in.Lower && old.Upper == in.Upper && old.Work == in.Work && old.Options == in.Options {
		old.PurgeOnRemove = in.PurgeOnRemove
		return infer.UpdateResponse[OverlayMountState]{Output: old}, nil
	}
	st, err := r.mount(ctx, "update", in)
	if err != nil {
		if errors.Is(err, errBadAnswer) {
			planned := overlayMountPlanned(in)
			planned.Mounted = false
			return infer.UpdateResponse[OverlayMountState]{Output: planned}, partial(err)
		}
		return infer.UpdateResponse[OverlayMountState]{}, err
	}
	return infer.UpdateResponse[OverlayMountState]{Output: st}, nil
}

// Read asks the box what is mounted on the merged dir (the ID), compared with the inputs the
// program last applied: other layers or options show in the state (drift); nothing mounted gives
// an empty ID (the engine drops the resource and the next `up` mounts it again). On import only
// the ID is known: the box reports the layers and options from its mount table, and they become
// the inputs.
func (r *OverlayMount) Read(ctx context.Context, req infer.ReadRequest[OverlayMountArgs, OverlayMountState]) (infer.ReadResponse[OverlayMountArgs, OverlayMountState], error) {
	in := req.Inputs
	q := protocol.OverlayMountRequest{Merged: req.ID}
	if in.Merged == req.ID { // the inputs the mount was made with: what it is compared with
		q.Lower, q.Upper, q.Work, q.Options = in.Lower, in.Upper, in.Work, in.Options
	}
	ans, err := r.call(ctx, "read", q)
	if err != nil {
		return infer.ReadResponse[OverlayMountArgs, OverlayMountState]{}, err
	}
	if !ans.Mounted {
		return infer.ReadResponse[OverlayMountArgs, OverlayMountState]{}, nil
	}
	st := mountFromAnswer(ans, req.State.PurgeOnRemove)
	if in.Merged == "" { // import: adopt what the box has
		in = st.args()
	}
	return infer.ReadResponse[OverlayMountArgs, OverlayMountState]{ID: req.ID, Inputs: in, State: st}, nil
}

// Delete unmounts the overlay (and purges the upper and work dirs when purgeOnRemove is set); a
// mount already gone is fine.
func (r *OverlayMount) Delete(ctx context.Context, req infer.DeleteRequest[OverlayMountState]) (infer.DeleteResponse, error) {
	st := req.State
	q := protocol.OverlayMountRequest{Merged: req.ID}
	if st.PurgeOnRemove {
		q.Upper, q.Work, q.Purge = st.Upper, st.Work, true
	}
	ans, err := r.call(ctx, "delete", q)
	if err != nil {
		return infer.DeleteResponse{}, err
	}
	if ans.Mounted {
		return infer.DeleteResponse{}, fmt.Errorf("overlay-mount delete %s: %w: it reports the overlay still mounted", req.ID, errBadAnswer)
	}
	return infer.DeleteResponse{}, nil
}

// mount runs create or update and checks that the box now has the overlay mounted.
func (r *OverlayMount) mount(ctx context.Context, op string, in OverlayMountArgs) (OverlayMountState, error) {
	q := protocol.OverlayMountRequest{Merged: in.Merged, Lower: in.Lower, Upper: in.Upper, Work: in.Work, Options: in.Options}
	if in.Container != nil {
		q.Container = *in.Container
	}
	ans, err := r.call(ctx, op, q)
	if err != nil {
		return OverlayMountState{}, err
	}
	if !ans.Mounted {
		return OverlayMountState{}, fmt.Errorf("overlay-mount %s %s: %w: it reports nothing mounted afterwards", op, in.Merged, errBadAnswer)
	}
	return mountFromAnswer(ans, in.PurgeOnRemove), nil
}

// call runs one overlay-mount operation and checks the answer is about the mount asked for.
func (r *OverlayMount) call(ctx context.Context, op string, q protocol.OverlayMountRequest) (protocol.OverlayMountAnswer, error) {
	find := r.box
	if find == nil {
		find = boxFromConfig
	}
	b, err := find(ctx)
	if err != nil {
		return protocol.OverlayMountAnswer{}, err
	}
	var ans protocol.OverlayMountAnswer
	if err := callAgent(ctx, b, protocol.OverlayMountCommand, op, q, &ans); err != nil {
		return protocol.OverlayMountAnswer{}, err
	}
	if ans.Merged != q.Merged {
		return protocol.OverlayMountAnswer{}, fmt.Errorf("overlay-mount %s %s on %s: %w: it is about %q", op, q.Merged, b.Runner.Addr(), errBadAnswer, ans.Merged)
	}
	return ans, nil
}

// mountFromAnswer is the state of a mount the agent reports, with the delete-time setting
// purgeOnRemove.
func mountFromAnswer(a protocol.OverlayMountAnswer, purgeOnRemove bool) OverlayMountState {
	return OverlayMountState{Merged: a.Merged, Mounted: a.Mounted, Lower: a.Lower, Upper: a.Upper, Work: a.Work,
		Options: a.Options, PurgeOnRemove: purgeOnRemove}
}
