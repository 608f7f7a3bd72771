package provider

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"

	"overlay-fleet/provider/internal/box"
)

const (
	testAgent = "/opt/of/overlay-fleet-host"
	testAddr  = "box1.lan:22"
	opts1     = "lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/ttnode1/upper,workdir=/mnt/usbdisk/ttnode1/work,index=off,nfs_export=off"
	opts2     = "lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/ttnode1/upper,workdir=/mnt/usbdisk/ttnode1/work,index=off,nfs_export=off,redirect_dir=off"
)

// fakeRunner records each command and answers with reply.
type fakeRunner struct {
	calls []fakeCall
	reply func(argv []string, stdin []byte) ([]byte, error)
}

type fakeCall struct {
	argv  []string
	stdin map[string]any
}

func (f *fakeRunner) Run(_ context.Context, argv []string, stdin []byte) ([]byte, error) {
	c := fakeCall{argv: argv}
	if err := json.Unmarshal(stdin, &c.stdin); err != nil {
		return nil, err
	}
	f.calls = append(f.calls, c)
	return f.reply(argv, stdin)
}

func (f *fakeRunner) Addr() string { return testAddr }

// answer replies with a fixed agent answer.
func answer(a map[string]any) func([]string, []byte) ([]byte, error) {
	return func([]string, []byte) ([]byte, error) { return json.Marshal(a) }
}

func entryOn(f *fakeRunner) *FstabEntry {
	return &FstabEntry{box: func(context.Context) (Box, error) { return Box{Runner: f, AgentPath: testAgent}, nil }}
}

func args1() FstabEntryArgs {
	return FstabEntryArgs{Fstab: "/etc/fstab", InstanceID: "box1/ttnode1", Merged: "/mnt/usbdisk/ttnode1/mnts", Options: opts1}
}

// boxAnswer is the agent's answer for entry a, present.
func boxAnswer(a FstabEntryArgs) map[string]any {
	return map[string]any{
		"fstab": a.Fstab, "id": a.InstanceID, "present": true, "merged": a.Merged, "options": a.Options,
		"line": "overlay " + a.Merged + " overlay " + a.Options + " 0 0 # overlay-fleet:" + a.InstanceID,
	}
}

func stateOf(a FstabEntryArgs) FstabEntryState {
	return stateFromInputs(a, "overlay "+a.Merged+" overlay "+a.Options+" 0 0 # overlay-fleet:"+a.InstanceID)
}

func checkCalls(t *testing.T, f *fakeRunner, op string, stdin map[string]any) {
	t.Helper()
	if len(f.calls) != 1 {
		t.Fatalf("%d agent calls, want 1", len(f.calls))
	}
	if want := []string{testAgent, "fstab-entry", op}; !slices.Equal(f.calls[0].argv, want) {
		t.Errorf("argv %q, want %q", f.calls[0].argv, want)
	}
	if !reflect.DeepEqual(f.calls[0].stdin, stdin) {
		t.Errorf("stdin %v, want %v", f.calls[0].stdin, stdin)
	}
}

func TestDiff(t *testing.T) {
	with := func(edit func(*FstabEntryArgs)) FstabEntryArgs { a := args1(); edit(&a); return a }
	tests := []struct {
		name   string
		inputs FstabEntryArgs
		want   map[string]p.DiffKind
	}{
		{"same", args1(), map[string]p.DiffKind{}},
		{"fstab replaces", with(func(a *FstabEntryArgs) { a.Fstab = "/etc/fstab.d/of" }), map[string]p.DiffKind{"fstab": p.UpdateReplace}},
		{"instanceId replaces", with(func(a *FstabEntryArgs) { a.InstanceID = "box1/ttnode2" }), map[string]p.DiffKind{"instanceId": p.UpdateReplace}},
		{"merged updates", with(func(a *FstabEntryArgs) { a.Merged = "/mnt/b/mnts" }), map[string]p.DiffKind{"merged": p.Update}},
		{"options update", with(func(a *FstabEntryArgs) { a.Options = opts2 }), map[string]p.DiffKind{"options": p.Update}},
		{"id and options", with(func(a *FstabEntryArgs) { a.InstanceID = "box2/ttnode1"; a.Options = opts2 }),
			map[string]p.DiffKind{"instanceId": p.UpdateReplace, "options": p.Update}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := (&FstabEntry{}).Diff(t.Context(), infer.DiffRequest[FstabEntryArgs, FstabEntryState]{
				ID: "box1/ttnode1", State: stateOf(args1()), Inputs: tt.inputs,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]p.DiffKind{}
			for k, d := range resp.DetailedDiff {
				got[k] = d.Kind
			}
			if !reflect.DeepEqual(got, tt.want) || resp.HasChanges != (len(tt.want) > 0) {
				t.Errorf("diff %v (changes %v), want %v", got, resp.HasChanges, tt.want)
			}
			// A replacement frees the mount point's line first: the box holds one per mount point.
			replaces := tt.want["fstab"] == p.UpdateReplace || tt.want["instanceId"] == p.UpdateReplace
			if !resp.DeleteBeforeReplace { // whatever the engine replaces it for
				t.Errorf("delete-before-replace false (replaces %v): a replacement must always delete first", replaces)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	// The box reports the options in its own form: the outputs are the box's, not the plan's.
	onBox := args1()
	onBox.Options = opts2
	f := &fakeRunner{reply: answer(boxAnswer(onBox))}
	resp, err := entryOn(f).Create(t.Context(), infer.CreateRequest[FstabEntryArgs]{Name: "e", Inputs: args1()})
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f, "create", map[string]any{
		"fstab": "/etc/fstab", "id": "box1/ttnode1", "merged": "/mnt/usbdisk/ttnode1/mnts", "options": opts1,
	})
	if resp.ID != "box1/ttnode1" || resp.Output != stateOf(onBox) {
		t.Errorf("got %q %+v, want the box's state %+v", resp.ID, resp.Output, stateOf(onBox))
	}
}

func TestPreviewTouchesNothing(t *testing.T) {
	f := &fakeRunner{reply: func([]string, []byte) ([]byte, error) { return nil, errors.New("the box was touched") }}
	r := entryOn(f)
	c, err := r.Create(t.Context(), infer.CreateRequest[FstabEntryArgs]{Name: "e", Inputs: args1(), DryRun: true})
	if err != nil || c.ID != "box1/ttnode1" {
		t.Errorf("create preview: %q, %v", c.ID, err)
	}
	in := args1()
	in.Options = opts2
	if _, err := r.Update(t.Context(), infer.UpdateRequest[FstabEntryArgs, FstabEntryState]{
		ID: "box1/ttnode1", State: stateOf(args1()), Inputs: in, DryRun: true,
	}); err != nil {
		t.Errorf("update preview: %v", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("preview ran %d commands on the box", len(f.calls))
	}
}

func TestUpdate(t *testing.T) {
	in := args1()
	in.Options = opts2
	f := &fakeRunner{reply: answer(boxAnswer(in))}
	resp, err := entryOn(f).Update(t.Context(), infer.UpdateRequest[FstabEntryArgs, FstabEntryState]{
		ID: "box1/ttnode1", State: stateOf(args1()), Inputs: in,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f, "update", map[string]any{
		"fstab": "/etc/fstab", "id": "box1/ttnode1", "merged": "/mnt/usbdisk/ttnode1/mnts", "options": opts2,
	})
	if resp.Output != stateOf(in) {
		t.Errorf("got %+v", resp.Output)
	}
}

func TestDelete(t *testing.T) {
	st := stateOf(args1())
	st.Fstab = "/srv/box1/fstab"
	f := &fakeRunner{reply: answer(map[string]any{"fstab": st.Fstab, "id": "box1/ttnode1", "present": false})}
	if _, err := entryOn(f).Delete(t.Context(), infer.DeleteRequest[FstabEntryState]{ID: "box1/ttnode1", State: st}); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f, "delete", map[string]any{"fstab": "/srv/box1/fstab", "id": "box1/ttnode1"})

	f = &fakeRunner{reply: answer(boxAnswer(args1()))}
	if _, err := entryOn(f).Delete(t.Context(), infer.DeleteRequest[FstabEntryState]{ID: "box1/ttnode1", State: st}); err == nil {
		t.Error("a line still present after delete was not reported")
	}
}

func TestRead(t *testing.T) {
	drifted := args1()
	drifted.Options = strings.Replace(opts1, "index=off", "index=on", 1)
	absent := map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1", "present": false}
	tests := []struct {
		name       string
		req        infer.ReadRequest[FstabEntryArgs, FstabEntryState]
		box        map[string]any
		wantStdin  map[string]any
		wantID     string
		wantInputs FstabEntryArgs
		wantState  FstabEntryState
	}{
		{
			name:       "present and equal",
			req:        infer.ReadRequest[FstabEntryArgs, FstabEntryState]{ID: "box1/ttnode1", Inputs: args1(), State: stateOf(args1())},
			box:        boxAnswer(args1()),
			wantStdin:  map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1"},
			wantID:     "box1/ttnode1",
			wantInputs: args1(),
			wantState:  stateOf(args1()),
		},
		{
			name:       "hand-edited line is drift",
			req:        infer.ReadRequest[FstabEntryArgs, FstabEntryState]{ID: "box1/ttnode1", Inputs: args1(), State: stateOf(args1())},
			box:        boxAnswer(drifted),
			wantStdin:  map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1"},
			wantID:     "box1/ttnode1",
			wantInputs: args1(),
			wantState:  stateOf(drifted),
		},
		{
			name:      "absent line is gone",
			req:       infer.ReadRequest[FstabEntryArgs, FstabEntryState]{ID: "box1/ttnode1", Inputs: args1(), State: stateOf(args1())},
			box:       absent,
			wantStdin: map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1"},
			wantID:    "",
		},
		{
			name:       "import with the ID only",
			req:        infer.ReadRequest[FstabEntryArgs, FstabEntryState]{ID: "box1/ttnode1"},
			box:        boxAnswer(args1()),
			wantStdin:  map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1"},
			wantID:     "box1/ttnode1",
			wantInputs: args1(),
			wantState:  stateOf(args1()),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{reply: answer(tt.box)}
			resp, err := entryOn(f).Read(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			checkCalls(t, f, "read", tt.wantStdin)
			if resp.ID != tt.wantID || resp.Inputs != tt.wantInputs || resp.State != tt.wantState {
				t.Errorf("got %q %+v %+v\nwant %q %+v %+v", resp.ID, resp.Inputs, resp.State, tt.wantID, tt.wantInputs, tt.wantState)
			}
		})
	}
}

// TestDriftShowsInDiff: after a refresh found a hand-edited line, the program's inputs diff
// against it as an update.
func TestDriftShowsInDiff(t *testing.T) {
	drifted := args1()
	drifted.Merged = "/mnt/elsewhere"
	resp, err := (&FstabEntry{}).Diff(t.Context(), infer.DiffRequest[FstabEntryArgs, FstabEntryState]{
		ID: "box1/ttnode1", State: stateOf(drifted), Inputs: args1(),
	})
	if err != nil || !resp.HasChanges || resp.DetailedDiff["merged"].Kind != p.Update {
		t.Errorf("got %+v, %v", resp, err)
	}
}

func TestAgentFailures(t *testing.T) {
	remote := &box.RemoteError{Addr: testAddr, Argv: []string{testAgent, "fstab-entry", "create"}, ExitStatus: 1,
		Stderr: "fstab-entry: /etc/fstab: another line already mounts /mnt/usbdisk/ttnode1/mnts"}
	tests := []struct {
		name     string
		reply    func([]string, []byte) ([]byte, error)
		want     []string
		initFail bool // the operation may have happened: the resource is kept
	}{
		{"remote error", func([]string, []byte) ([]byte, error) { return nil, remote },
			[]string{testAddr, "overlay-fleet-host fstab-entry create", "exit status 1", "another line already mounts"}, false},
		{"not JSON", func([]string, []byte) ([]byte, error) { return []byte("Segmentation fault"), nil },
			[]string{testAddr, "Segmentation fault", "unexpected answer"}, true},
		{"no present field", answer(map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1"}),
			[]string{testAddr, `no "present" field`}, true},
		{"another entry", answer(boxAnswer(FstabEntryArgs{Fstab: "/etc/fstab", InstanceID: "box1/ttnode9"})),
			[]string{testAddr, "box1/ttnode9"}, true},
		{"absent after create", answer(map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1", "present": false}),
			[]string{"no line"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := entryOn(&fakeRunner{reply: tt.reply}).Create(t.Context(),
				infer.CreateRequest[FstabEntryArgs]{Name: "e", Inputs: args1()})
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

// TestReadWithoutPresentFails: an answer that does not say "present" must not drop the
// resource from the state.
func TestReadWithoutPresentFails(t *testing.T) {
	f := &fakeRunner{reply: answer(map[string]any{"fstab": "/etc/fstab", "id": "box1/ttnode1"})}
	resp, err := entryOn(f).Read(t.Context(), infer.ReadRequest[FstabEntryArgs, FstabEntryState]{ID: "box1/ttnode1"})
	if err == nil {
		t.Fatalf("no error; read gave %+v", resp)
	}
}

func TestCheckInputs(t *testing.T) {
	all := func(string) bool { return true }
	tests := []struct {
		name  string
		edit  func(*FstabEntryArgs)
		known func(string) bool
		want  []string // properties that fail
	}{
		{"valid", func(*FstabEntryArgs) {}, all, nil},
		{"relative fstab", func(a *FstabEntryArgs) { a.Fstab = "fstab" }, all, []string{"fstab"}},
		{"id without box", func(a *FstabEntryArgs) { a.InstanceID = "ttnode1" }, all, []string{"instanceId"}},
		{"id with two slashes", func(a *FstabEntryArgs) { a.InstanceID = "a/b/c" }, all, []string{"instanceId"}},
		{"merged with a space", func(a *FstabEntryArgs) { a.Merged = "/mnt/usb disk" }, all, []string{"merged"}},
		{"empty options", func(a *FstabEntryArgs) { a.Options = "" }, all, []string{"options"}},
		{"unknown in preview", func(a *FstabEntryArgs) { a.Merged = "" }, func(k string) bool { return k != "merged" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := args1()
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
