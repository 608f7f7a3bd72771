package provider

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/blang/semver"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/integration"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

const (
	networkURN   = resource.URN("urn:pulumi:dev::overlay-fleet::overlay-fleet:index:Network::box1-network")
	containerURN = resource.URN("urn:pulumi:dev::overlay-fleet::overlay-fleet:index:Container::box1-ttnode1-container")
)

func ctrInputs(edit map[string]property.Value) property.Map {
	m := map[string]property.Value{
		"name": property.New("ttnode1"), "instanceId": property.New("box1/ttnode1"), "hostname": property.New("box1-ttnode1"),
		"network": property.New("macnet"), "ip": property.New("192.168.1.101"), "mac": property.New("02:aa:bb:cc:dd:01"),
		"image": property.New("overlay-fleet/cache-node:lab"), "merged": property.New("/mnt/usbdisk/ttnode1/mnts"),
	}
	for k, v := range edit {
		m[k] = v
	}
	return property.NewMap(m)
}

// TestDockerResourcesThroughServer drives Network and Container as the engine does, without a
// box: the schema, check with its defaults, a preview (nothing reaches a box; what only the box
// can tell is unknown) and the diff of a changed IP (a delete-before-replace of the container).
func TestDockerResourcesThroughServer(t *testing.T) {
	s, err := integration.NewServer(t.Context(), Name, semver.MustParse("0.1.0"), integration.WithProvider(New()))
	if err != nil {
		t.Fatal(err)
	}
	schemaResp, err := s.GetSchema(p.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Resources map[string]struct {
			Description     string   `json:"description"`
			RequiredInputs  []string `json:"requiredInputs"`
			InputProperties map[string]struct {
				Description string `json:"description"`
			} `json:"inputProperties"`
			Properties map[string]struct {
				Description string `json:"description"`
			} `json:"properties"`
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(schemaResp.Schema), &schema); err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string][]string{
		"overlay-fleet:index:Network":   {"box", "gateway", "name", "parent", "subnet"},
		"overlay-fleet:index:Container": {"hostname", "image", "instanceId", "ip", "mac", "merged", "name", "network"},
	} {
		r, ok := schema.Resources[token]
		if !ok {
			t.Fatalf("no %s in the schema", token)
		}
		slices.Sort(r.RequiredInputs)
		if !slices.Equal(r.RequiredInputs, want) {
			t.Errorf("%s: required inputs %v, want %v", token, r.RequiredInputs, want)
		}
		if r.Description == "" {
			t.Errorf("%s has no description", token)
		}
		for name, prop := range r.InputProperties {
			if prop.Description == "" {
				t.Errorf("%s input %s has no description", token, name)
			}
		}
		for name, prop := range r.Properties {
			if prop.Description == "" {
				t.Errorf("%s output %s has no description", token, name)
			}
		}
	}

	// Network: check, preview.
	netIn := property.NewMap(map[string]property.Value{
		"name": property.New("macnet"), "parent": property.New("eth0"), "subnet": property.New("192.168.1.0/24"),
		"gateway": property.New("192.168.1.1"), "box": property.New("box1"),
	})
	checkedNet, err := s.Check(p.CheckRequest{Urn: networkURN, Inputs: netIn})
	if err != nil || len(checkedNet.Failures) > 0 {
		t.Fatalf("network check: %v %v", err, checkedNet.Failures)
	}
	previewNet, err := s.Create(p.CreateRequest{Urn: networkURN, Properties: checkedNet.Inputs, DryRun: true})
	if err != nil || previewNet.ID != "macnet" || !previewNet.Properties.Get("networkId").IsComputed() {
		t.Errorf("network preview: %q %v, %v", previewNet.ID, previewNet.Properties, err)
	}

	// Container: defaults, a failure named by property, preview.
	bad, err := s.Check(p.CheckRequest{Urn: containerURN, Inputs: ctrInputs(map[string]property.Value{"mac": property.New("02-aa-bb-cc-dd-01")})})
	if err != nil || len(bad.Failures) != 1 || bad.Failures[0].Property != "mac" {
		t.Errorf("bad MAC: %v %+v", err, bad.Failures)
	}
	checked, err := s.Check(p.CheckRequest{Urn: containerURN, Inputs: ctrInputs(nil)})
	if err != nil || len(checked.Failures) > 0 {
		t.Fatalf("container check: %v %v", err, checked.Failures)
	}
	if checked.Inputs.Get("target").AsString() != DefaultContainerTarget || checked.Inputs.Get("restart").AsString() != DefaultContainerRestart {
		t.Errorf("defaults: %v", checked.Inputs)
	}
	preview, err := s.Create(p.CreateRequest{Urn: containerURN, Properties: checked.Inputs, DryRun: true})
	if err != nil || preview.ID != "ttnode1" {
		t.Fatalf("container preview: %q, %v", preview.ID, err)
	}
	for _, k := range []string{"containerId", "imageId", "running"} {
		if !preview.Properties.Get(k).IsComputed() {
			t.Errorf("%s is %v in the preview, want unknown", k, preview.Properties.Get(k))
		}
	}
	if got := preview.Properties.Get("mac").AsString(); got != "02:aa:bb:cc:dd:01" {
		t.Errorf("mac %q in the preview", got)
	}

	// A changed IP: replace, the old container deleted first.
	state := property.NewMap(map[string]property.Value{})
	for k, v := range checked.Inputs.AsMap() {
		if k != "maxDownPerBox" { // an input only: how replacements go, nothing the box has
			state = state.Set(k, v)
		}
	}
	state = state.Set("running", property.New(true)).Set("status", property.New("running")).
		Set("imageId", property.New(ctrImageID)).Set("containerId", property.New("c1"))
	newIP, err := s.Check(p.CheckRequest{Urn: containerURN, Inputs: ctrInputs(map[string]property.Value{"ip": property.New("192.168.1.102")})})
	if err != nil {
		t.Fatal(err)
	}
	diff, err := s.Diff(p.DiffRequest{ID: "ttnode1", Urn: containerURN, State: state, Inputs: newIP.Inputs, OldInputs: checked.Inputs})
	if err != nil {
		t.Fatal(err)
	}
	if !diff.HasChanges || !diff.DeleteBeforeReplace || diff.DetailedDiff["ip"].Kind != p.UpdateReplace || len(diff.DetailedDiff) != 1 {
		t.Errorf("diff %+v, want a delete-before-replace on ip alone", diff)
	}
	same, err := s.Diff(p.DiffRequest{ID: "ttnode1", Urn: containerURN, State: state, Inputs: checked.Inputs, OldInputs: checked.Inputs})
	if err != nil || same.HasChanges {
		t.Errorf("unchanged: %+v, %v", same, err)
	}
}
