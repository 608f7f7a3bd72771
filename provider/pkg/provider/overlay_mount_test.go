package provider

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/blang/semver"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/integration"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"overlay-fleet/provider/internal/box"
)

const omMerged = "/mnt/usbdisk/ttnode1/mnts"

func omArgs() OverlayMountArgs {
	return OverlayMountArgs{Merged: omMerged, Lower: "/mnt/usbdisk/static_cache", Upper: "/mnt/usbdisk/ttnode1/upper",
		Work: "/mnt/usbdisk/ttnode1/work", Options: PinnedOverlayOptions}
}

// omAnswer is the agent's answer for a mounted a.
func omAnswer(a OverlayMountArgs) map[string]any {
	return map[string]any{"merged": a.Merged, "mounted": true, "lower": a.Lower, "upper": a.Upper, "work": a.Work, "options": a.Options}
}

var omUnmounted = map[string]any{"merged": omMerged, "mounted": false, "lower": "", "upper": "", "work": "", "options": ""}

func omState(a OverlayMountArgs) OverlayMountState { return overlayMountPlanned(a) }

func omOn(f *fakeRunner) *OverlayMount {
	return &OverlayMount{box: func(context.Context) (Box, error) { return Box{Runner: f, AgentPath: testAgent}, nil }}
}

// omCalls checks the agent calls f got: one `overlay-mount <op>` per stdin.
func omCalls(t *testing.T, f *fakeRunner, op string, stdins ...map[string]any) {
	t.Helper()
	if len(f.calls) != len(stdins) {
		t.Fatalf("%d agent calls, want %d", len(f.calls), len(stdins))
	}
	for i, c := range f.calls {
		if want := []string{testAgent, "overlay-mount", op}; !slices.Equal(c.argv, want) {
			t.Errorf("argv %q, want %q", c.argv, want)
		}
		if !reflect.DeepEqual(c.stdin, stdins[i]) {
			t.Errorf("stdin %v, want %v", c.stdin, stdins[i])
		}
	}
}

// omFull is the request of create and update for a.
func omFull(a OverlayMountArgs) map[string]any {
	return map[string]any{"merged": a.Merged, "lower": a.Lower, "upper": a.Upper, "work": a.Work, "options": a.Options}
}

func TestOverlayMountDiff(t *testing.T) {
	with := func(edit func(*OverlayMountArgs)) OverlayMountArgs { a := omArgs(); edit(&a); return a }
	tests := []struct {
		name          string
		state         OverlayMountState
		inputs        OverlayMountArgs
		want          map[string]p.DiffKind
		deleteFirst   bool
		wantNoChanges bool
	}{
		{name: "same", state: omState(omArgs()), inputs: omArgs(), want: map[string]p.DiffKind{}},
		{name: "merged replaces, the old one deleted first", state: omState(omArgs()),
			inputs: with(func(a *OverlayMountArgs) { a.Merged = "/mnt/usbdisk/ttnode1/m2" }),
			want:   map[string]p.DiffKind{"merged": p.UpdateReplace}, deleteFirst: true},
		{name: "lower remounts", state: omState(omArgs()), inputs: with(func(a *OverlayMountArgs) { a.Lower = "/mnt/usbdisk/static_cache.g2" }),
			want: map[string]p.DiffKind{"lower": p.Update}},
		{name: "upper and work remount", state: omState(omArgs()),
			inputs: with(func(a *OverlayMountArgs) { a.Upper = "/x/upper"; a.Work = "/x/work" }),
			want:   map[string]p.DiffKind{"upper": p.Update, "work": p.Update}},
		{name: "options remount", state: omState(omArgs()), inputs: with(func(a *OverlayMountArgs) { a.Options += ",noatime" }),
			want: map[string]p.DiffKind{"options": p.Update}},
		{name: "purgeOnRemove alone", state: omState(omArgs()), inputs: with(func(a *OverlayMountArgs) { a.PurgeOnRemove = true }),
			want: map[string]p.DiffKind{"purgeOnRemove": p.Update}},
		{name: "container alone: no change, no remount", state: omState(omArgs()), inputs: with(func(a *OverlayMountArgs) { a.Container = omString("ttnode1") }),
			want: map[string]p.DiffKind{}},
		{name: "container with options: a remount, no replace", state: omState(omArgs()),
			inputs: with(func(a *OverlayMountArgs) { a.Container = omString("ttnode1"); a.Options += ",noatime" }),
			want:   map[string]p.DiffKind{"options": p.Update}},
		{name: "drift found by a refresh", state: func() OverlayMountState {
			s := omState(omArgs())
			s.Options = PinnedOverlayOptions + ",nodev"
			return s
		}(), inputs: omArgs(), want: map[string]p.DiffKind{"options": p.Update}},
		{name: "not mounted (a create that failed half-way)", state: func() OverlayMountState {
			s := omState(omArgs())
			s.Mounted = false
			return s
		}(), inputs: omArgs(), want: map[string]p.DiffKind{"mounted": p.Update}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := (&OverlayMount{}).Diff(t.Context(), infer.DiffRequest[OverlayMountArgs, OverlayMountState]{
				ID: omMerged, State: tt.state, Inputs: tt.inputs,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]p.DiffKind{}
			for k, d := range resp.DetailedDiff {
				got[k] = d.Kind
			}
			if !reflect.DeepEqual(got, tt.want) || resp.HasChanges != (len(tt.want) > 0) || !resp.DeleteBeforeReplace {
				t.Errorf("diff %v (changes %v, delete first %v), want %v (a replacement always deletes first)", got, resp.HasChanges, resp.DeleteBeforeReplace, tt.want)
			}
		})
	}
}

func TestOverlayMountCreate(t *testing.T) {
	// The box reports the layers as it has them: the outputs are the box's.
	onBox := omArgs()
	onBox.Upper = "/mnt/usbdisk/elsewhere/upper"
	f := &fakeRunner{reply: answer(omAnswer(onBox))}
	in := omArgs()
	in.PurgeOnRemove = true
	resp, err := omOn(f).Create(t.Context(), infer.CreateRequest[OverlayMountArgs]{Name: "m", Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	omCalls(t, f, "create", omFull(omArgs()))
	want := omState(onBox)
	want.PurgeOnRemove = true
	if resp.ID != omMerged || resp.Output != want {
		t.Errorf("got %q %+v, want %+v", resp.ID, resp.Output, want)
	}
}

func TestOverlayMountPreviewTouchesNothing(t *testing.T) {
	f := &fakeRunner{reply: func([]string, []byte) ([]byte, error) { return nil, errors.New("the box was touched") }}
	r := omOn(f)
	c, err := r.Create(t.Context(), infer.CreateRequest[OverlayMountArgs]{Name: "m", Inputs: omArgs(), DryRun: true})
	if err != nil || c.ID != omMerged || c.Output != omState(omArgs()) {
		t.Errorf("create preview: %q %+v, %v", c.ID, c.Output, err)
	}
	in := omArgs()
	in.Options += ",noatime"
	if _, err := r.Update(t.Context(), infer.UpdateRequest[OverlayMountArgs, OverlayMountState]{
		ID: omMerged, State: omState(omArgs()), Inputs: in, DryRun: true,
	}); err != nil {
		t.Errorf("update preview: %v", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("preview ran %d commands on the box", len(f.calls))
	}
}

func TestOverlayMountUpdate(t *testing.T) {
	in := omArgs()
	in.Options += ",noatime"
	f := &fakeRunner{reply: answer(omAnswer(in))}
	resp, err := omOn(f).Update(t.Context(), infer.UpdateRequest[OverlayMountArgs, OverlayMountState]{ID: omMerged, State: omState(omArgs()), Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	omCalls(t, f, "update", omFull(in))
	if resp.Output != omState(in) {
		t.Errorf("got %+v", resp.Output)
	}

	// With the instance's container: the agent gets it, to stop it around the remount.
	in = omArgs()
	in.Options += ",noatime"
	in.Container = omString("ttnode1")
	f = &fakeRunner{reply: answer(omAnswer(in))}
	resp, err = omOn(f).Update(t.Context(), infer.UpdateRequest[OverlayMountArgs, OverlayMountState]{ID: omMerged, State: omState(omArgs()), Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	withContainer := omFull(in)
	withContainer["container"] = "ttnode1"
	omCalls(t, f, "update", withContainer)
	if resp.Output != omState(in) {
		t.Errorf("got %+v", resp.Output)
	}

	// purgeOnRemove and container alone: recorded, the box untouched.
	f = &fakeRunner{reply: func([]string, []byte) ([]byte, error) { return nil, errors.New("the box was touched") }}
	in = omArgs()
	in.PurgeOnRemove = true
	in.Container = omString("ttnode1")
	resp, err = omOn(f).Update(t.Context(), infer.UpdateRequest[OverlayMountArgs, OverlayMountState]{ID: omMerged, State: omState(omArgs()), Inputs: in})
	if err != nil || !resp.Output.PurgeOnRemove || resp.Output != omState(in) || len(f.calls) != 0 {
		t.Errorf("purgeOnRemove update: %+v, %v, %d calls", resp.Output, err, len(f.calls))
	}
}

func TestOverlayMountRead(t *testing.T) {
	drifted := omArgs()
	drifted.Options = PinnedOverlayOptions + ",nodev"
	drifted.Lower = "/mnt/usbdisk/static_cache.g2:/mnt/usbdisk/base"
	purging := omState(omArgs())
	purging.PurgeOnRemove = true
	purgingArgs := omArgs()
	purgingArgs.PurgeOnRemove = true
	purgingArgs.Container = omString("ttnode1") // an input only: kept by a refresh, not sent
	withPurge := func(s OverlayMountState) OverlayMountState { s.PurgeOnRemove = true; return s }
	tests := []struct {
		name       string
		req        infer.ReadRequest[OverlayMountArgs, OverlayMountState]
		box        map[string]any
		wantStdin  map[string]any
		wantID     string
		wantInputs OverlayMountArgs
		wantState  OverlayMountState
	}{
		{
			name:       "mounted as applied",
			req:        infer.ReadRequest[OverlayMountArgs, OverlayMountState]{ID: omMerged, Inputs: purgingArgs, State: purging},
			box:        omAnswer(omArgs()),
			wantStdin:  omFull(omArgs()),
			wantID:     omMerged,
			wantInputs: purgingArgs,
			wantState:  purging,
		},
		{
			name:       "other layers and options are drift",
			req:        infer.ReadRequest[OverlayMountArgs, OverlayMountState]{ID: omMerged, Inputs: purgingArgs, State: purging},
			box:        omAnswer(drifted),
			wantStdin:  omFull(omArgs()),
			wantID:     omMerged,
			wantInputs: purgingArgs,
			wantState:  withPurge(omState(drifted)),
		},
		{
			name:      "not mounted is gone",
			req:       infer.ReadRequest[OverlayMountArgs, OverlayMountState]{ID: omMerged, Inputs: omArgs(), State: omState(omArgs())},
			box:       omUnmounted,
			wantStdin: omFull(omArgs()),
			wantID:    "",
		},
		{
			name:       "import by the merged dir alone",
			req:        infer.ReadRequest[OverlayMountArgs, OverlayMountState]{ID: omMerged},
			box:        omAnswer(omArgs()),
			wantStdin:  map[string]any{"merged": omMerged},
			wantID:     omMerged,
			wantInputs: omArgs(),
			wantState:  omState(omArgs()),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{reply: answer(tt.box)}
			resp, err := omOn(f).Read(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			omCalls(t, f, "read", tt.wantStdin)
			if resp.ID != tt.wantID || resp.Inputs != tt.wantInputs || resp.State != tt.wantState {
				t.Errorf("got %q %+v %+v\nwant %q %+v %+v", resp.ID, resp.Inputs, resp.State, tt.wantID, tt.wantInputs, tt.wantState)
			}
		})
	}
}

func TestOverlayMountDelete(t *testing.T) {
	f := &fakeRunner{reply: answer(omUnmounted)}
	if _, err := omOn(f).Delete(t.Context(), infer.DeleteRequest[OverlayMountState]{ID: omMerged, State: omState(omArgs())}); err != nil {
		t.Fatal(err)
	}
	omCalls(t, f, "delete", map[string]any{"merged": omMerged})

	purging := omState(omArgs())
	purging.PurgeOnRemove = true
	f = &fakeRunner{reply: answer(omUnmounted)}
	if _, err := omOn(f).Delete(t.Context(), infer.DeleteRequest[OverlayMountState]{ID: omMerged, State: purging}); err != nil {
		t.Fatal(err)
	}
	omCalls(t, f, "delete", map[string]any{"merged": omMerged, "upper": purging.Upper, "work": purging.Work, "purge": true})

	f = &fakeRunner{reply: answer(omAnswer(omArgs()))}
	if _, err := omOn(f).Delete(t.Context(), infer.DeleteRequest[OverlayMountState]{ID: omMerged, State: purging}); err == nil {
		t.Error("an overlay still mounted after delete was not reported")
	}
}

func TestOverlayMountAgentFailures(t *testing.T) {
	remote := &box.RemoteError{Addr: testAddr, Argv: []string{testAgent, "overlay-mount", "create"}, ExitStatus: 1,
		Stderr: `overlay-fleet-host: upper dir "/mnt/usbdisk/ttnode1/upper" is the same as the upperdir of another overlay on "/mnt/usbdisk/ttnode2/mnts"`}
	tests := []struct {
		name     string
		reply    func([]string, []byte) ([]byte, error)
		want     []string
		initFail bool // the box may have acted: the resource is kept
	}{
		{"remote error", func([]string, []byte) ([]byte, error) { return nil, remote },
			[]string{testAddr, "overlay-fleet-host overlay-mount create", "exit status 1", "another overlay on"}, false},
		{"not JSON", func([]string, []byte) ([]byte, error) { return []byte("Segmentation fault"), nil },
			[]string{testAddr, "Segmentation fault", "unexpected answer"}, true},
		{"no mounted field", answer(map[string]any{"merged": omMerged}), []string{testAddr, `no "mounted" field`}, true},
		{"another mount", answer(map[string]any{"merged": "/mnt/usbdisk/ttnode9/mnts", "mounted": true}), []string{testAddr, "ttnode9"}, true},
		{"not mounted after create", answer(omUnmounted), []string{"nothing mounted afterwards"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := omOn(&fakeRunner{reply: tt.reply}).Create(t.Context(), infer.CreateRequest[OverlayMountArgs]{Name: "m", Inputs: omArgs()})
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
			if tt.initFail && (resp.ID != omMerged || resp.Output.Mounted) {
				t.Errorf("partial state %q %+v, want the planned one, not mounted", resp.ID, resp.Output)
			}
		})
	}
}

func TestOverlayMountCheckInputs(t *testing.T) {
	all := func(string) bool { return true }
	tests := []struct {
		name  string
		edit  func(*OverlayMountArgs)
		known func(string) bool
		want  []string // properties that fail
	}{
		{"valid", func(*OverlayMountArgs) {}, all, nil},
		{"relative merged", func(a *OverlayMountArgs) { a.Merged = "mnts" }, all, []string{"merged"}},
		{"trailing slash", func(a *OverlayMountArgs) { a.Upper += "/" }, all, []string{"upper"}},
		{"dot-dot", func(a *OverlayMountArgs) { a.Work = "/mnt/../work" }, all, []string{"work"}},
		{"colon in lower", func(a *OverlayMountArgs) { a.Lower = "/a:/b" }, all, []string{"lower"}},
		{"space", func(a *OverlayMountArgs) { a.Upper = "/mnt/usb disk/upper" }, all, []string{"upper"}},
		{"root", func(a *OverlayMountArgs) { a.Lower = "/" }, all, []string{"lower"}},
		{"empty options", func(a *OverlayMountArgs) { a.Options = "" }, all, []string{"options"}},
		{"layer in options", func(a *OverlayMountArgs) { a.Options += ",upperdir=/x" }, all, []string{"options"}},
		{"blank in options", func(a *OverlayMountArgs) { a.Options += ", noatime" }, all, []string{"options"}},
		{"a container", func(a *OverlayMountArgs) { a.Container = omString("ttnode1") }, all, nil},
		{"no container (empty)", func(a *OverlayMountArgs) { a.Container = omString("") }, all, nil},
		{"a bad container name", func(a *OverlayMountArgs) { a.Container = omString("-ttnode 1") }, all, []string{"container"}},
		{"container unknown in preview", func(a *OverlayMountArgs) { a.Container = omString("") }, func(k string) bool { return k != "container" }, nil},
		{"unknown in preview", func(a *OverlayMountArgs) { a.Upper = "" }, func(k string) bool { return k != "upper" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := omArgs()
			tt.edit(&a)
			var got []string
			for _, f := range a.validate(tt.known) {
				got = append(got, f.Property)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("failures on %v, want %v", got, tt.want)
			}
		})
	}
}

// omFakeAgent plays the box agent's overlay-mount protocol over the test SSH server: mounts by
// merged dir, in memory.
type omFakeAgent struct {
	mu     sync.Mutex
	mounts map[string]map[string]any
	argvs  []string
	stdins []string
}

func (a *omFakeAgent) handle(cmd string, stdin []byte) (string, string, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.argvs = append(a.argvs, cmd)
	a.stdins = append(a.stdins, string(stdin))
	op, ok := strings.CutPrefix(cmd, sshAgentPath+" overlay-mount ")
	var req map[string]any
	if !ok || json.Unmarshal(stdin, &req) != nil {
		return "", "bad call\n", 2
	}
	merged := req["merged"].(string)
	switch op {
	case "create", "update":
		ans := map[string]any{"mounted": true}
		for _, k := range []string{"merged", "lower", "upper", "work", "options"} {
			ans[k] = req[k]
		}
		a.mounts[merged] = ans
	case "delete":
		delete(a.mounts, merged)
	}
	ans, ok := a.mounts[merged]
	if !ok {
		ans = map[string]any{"merged": merged, "mounted": false, "lower": "", "upper": "", "work": "", "options": ""}
	}
	out, _ := json.Marshal(ans)
	return string(out), "", 0
}

const omURN = resource.URN("urn:pulumi:dev::overlay-fleet::overlay-fleet:index:OverlayMount::box1-ttnode1-mount")

// TestOverlayMountOverSSH drives the resource as the engine does, against an in-process SSH
// server that plays the agent: check (defaults), preview, create, import by ID, delete.
func TestOverlayMountOverSSH(t *testing.T) {
	agent := &omFakeAgent{mounts: map[string]map[string]any{}}
	s, ssh, _ := configuredOverSSH(t, agent.handle)
	a := omArgs()
	checked, err := s.Check(p.CheckRequest{Urn: omURN, Inputs: property.NewMap(map[string]property.Value{
		"merged": property.New(a.Merged), "lower": property.New(a.Lower), "upper": property.New(a.Upper), "work": property.New(a.Work),
	})})
	if err != nil || len(checked.Failures) > 0 {
		t.Fatalf("check: %v %v", err, checked.Failures)
	}
	if got := checked.Inputs.Get("options").AsString(); got != PinnedOverlayOptions {
		t.Errorf("options defaulted to %q", got)
	}
	if got := checked.Inputs.Get("purgeOnRemove"); !got.IsBool() || got.AsBool() {
		t.Errorf("purgeOnRemove defaulted to %v", got)
	}
	if _, err := s.Create(p.CreateRequest{Urn: omURN, Properties: checked.Inputs, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if n := ssh.Connections(); n != 0 {
		t.Fatalf("configure and preview made %d SSH connections, want 0", n)
	}
	created, err := s.Create(p.CreateRequest{Urn: omURN, Properties: checked.Inputs})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != omMerged || !created.Properties.Get("mounted").AsBool() || created.Properties.Get("options").AsString() != PinnedOverlayOptions {
		t.Errorf("created %q %v", created.ID, created.Properties)
	}
	imported, err := s.Read(p.ReadRequest{ID: omMerged, Urn: omURN})
	if err != nil {
		t.Fatal(err)
	}
	if imported.ID != omMerged || imported.Inputs.Get("upper").AsString() != a.Upper || imported.Inputs.Get("options").AsString() != PinnedOverlayOptions {
		t.Errorf("import read %q inputs %v", imported.ID, imported.Inputs)
	}
	if c, ok := imported.Inputs.GetOk("container"); ok {
		t.Errorf("an import set the input container: %v", c)
	}
	if err := s.Delete(p.DeleteRequest{ID: created.ID, Urn: omURN, Properties: created.Properties}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Read(p.ReadRequest{ID: created.ID, Urn: omURN, Properties: created.Properties, Inputs: checked.Inputs})
	if err != nil || gone.ID != "" {
		t.Errorf("read after delete: %q %v", gone.ID, err)
	}
	want := []string{"create", "read", "delete", "read"}
	for i, cmd := range agent.argvs {
		if i >= len(want) || cmd != sshAgentPath+" overlay-mount "+want[i] {
			t.Errorf("agent call %d: %q, want %v", i, cmd, want)
		}
	}
	if agent.stdins[1] != `{"merged":"`+omMerged+`"}` {
		t.Errorf("import sent %s, want the merged dir alone", agent.stdins[1])
	}
}

func TestOverlayMountSchema(t *testing.T) {
	s, err := integration.NewServer(t.Context(), Name, semver.MustParse("0.1.0"), integration.WithProvider(New()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.GetSchema(p.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Resources map[string]struct {
			Description     string   `json:"description"`
			RequiredInputs  []string `json:"requiredInputs"`
			InputProperties map[string]struct {
				Description string `json:"description"`
				Default     any    `json:"default"`
			} `json:"inputProperties"`
			Properties map[string]struct {
				Description string `json:"description"`
			} `json:"properties"`
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(resp.Schema), &schema); err != nil {
		t.Fatal(err)
	}
	r, ok := schema.Resources["overlay-fleet:index:OverlayMount"]
	if !ok {
		t.Fatalf("no overlay-fleet:index:OverlayMount in the schema")
	}
	slices.Sort(r.RequiredInputs)
	if want := []string{"lower", "merged", "upper", "work"}; !slices.Equal(r.RequiredInputs, want) {
		t.Errorf("required inputs %v, want %v", r.RequiredInputs, want)
	}
	if r.Description == "" || r.InputProperties["options"].Default != PinnedOverlayOptions {
		t.Errorf("description %q, options default %v", r.Description, r.InputProperties["options"].Default)
	}
	for name, prop := range r.InputProperties {
		if prop.Description == "" {
			t.Errorf("input %s has no description", name)
		}
	}
	for _, out := range []string{"merged", "mounted", "lower", "upper", "work", "options", "purgeOnRemove"} {
		if r.Properties[out].Description == "" {
			t.Errorf("output %s missing or undocumented", out)
		}
	}
	// container: an optional input only (what the box reports has none).
	if d := r.InputProperties["container"].Description; !strings.Contains(d, "stopped before a remount and started again after it") {
		t.Errorf("input container: %q", d)
	}
	if _, ok := r.Properties["container"]; ok {
		t.Error("container is an output")
	}
}

// omString is a pointer to s, for an optional input.
func omString(s string) *string { return &s }
