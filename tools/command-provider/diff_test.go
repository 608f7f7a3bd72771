package main

import (
	"context"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

const testURN = "urn:pulumi:dev::proj::command:remote:Command::c1"

func conn(host string) resource.PropertyValue {
	return resource.MakeSecret(resource.NewObjectProperty(resource.PropertyMap{
		"host":           resource.NewStringProperty(host),
		"port":           resource.NewNumberProperty(22),
		"user":           resource.NewStringProperty("root"),
		"privateKey":     resource.NewStringProperty("KEY"),
		"dialErrorLimit": resource.NewNumberProperty(10),
		"perDialTimeout": resource.NewNumberProperty(15),
	}))
}

func baseInputs() resource.PropertyMap {
	return resource.PropertyMap{
		"connection":             conn("10.0.0.1"),
		"create":                 resource.NewStringProperty("echo hi"),
		"delete":                 resource.NewStringProperty("echo bye"),
		"addPreviousOutputInEnv": resource.NewBoolProperty(false),
		"triggers": resource.NewArrayProperty([]resource.PropertyValue{
			resource.NewStringProperty("a"), resource.NewNumberProperty(1),
		}),
	}
}

func mustStruct(t *testing.T, m resource.PropertyMap) *structpb.Struct {
	t.Helper()
	s, err := plugin.MarshalProperties(m, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func diff(t *testing.T, olds, news resource.PropertyMap) *pulumirpc.DiffResponse {
	t.Helper()
	p := newProvider(nil)
	state := copyMap(olds)
	state["stdout"] = resource.NewStringProperty("old out")
	state["stderr"] = resource.NewStringProperty("")
	resp, err := p.Diff(context.Background(), &pulumirpc.DiffRequest{
		Id: "c1", Urn: testURN, Type: commandType,
		Olds: mustStruct(t, state), OldInputs: mustStruct(t, olds), News: mustStruct(t, news),
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestDiffEqualIsNone(t *testing.T) {
	resp := diff(t, baseInputs(), baseInputs())
	if resp.Changes != pulumirpc.DiffResponse_DIFF_NONE || len(resp.Diffs) != 0 || len(resp.Replaces) != 0 {
		t.Fatalf("want no diff, got %v", resp)
	}
}

func TestDiffIgnoresOutputsAndNullVersusMissing(t *testing.T) {
	olds := baseInputs()
	news := baseInputs()
	news["stdin"] = resource.NewNullProperty()
	// The old state (no OldInputs) includes stdout/stderr; they are not inputs.
	p := newProvider(nil)
	state := copyMap(olds)
	state["stdout"] = resource.NewStringProperty("x")
	resp, err := p.Diff(context.Background(), &pulumirpc.DiffRequest{
		Urn: testURN, Olds: mustStruct(t, state), News: mustStruct(t, news),
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("want no diff, got %v", resp)
	}
}

func TestDiffSecretnessAloneIsNoChange(t *testing.T) {
	olds := baseInputs()
	news := baseInputs()
	news["connection"] = resource.NewObjectProperty(news["connection"].SecretValue().Element.ObjectValue())
	if resp := diff(t, olds, news); resp.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("want no diff, got %v", resp)
	}
}

func TestDiffTriggersReplace(t *testing.T) {
	news := baseInputs()
	news["triggers"] = resource.NewArrayProperty([]resource.PropertyValue{
		resource.NewStringProperty("a"), resource.NewNumberProperty(2),
	})
	resp := diff(t, baseInputs(), news)
	if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME || strings.Join(resp.Replaces, ",") != "triggers" ||
		strings.Join(resp.Diffs, ",") != "triggers" {
		t.Fatalf("want replace on triggers, got %v", resp)
	}
	if d := resp.DetailedDiff["triggers[1]"]; d == nil || d.Kind != pulumirpc.PropertyDiff_UPDATE_REPLACE {
		t.Fatalf("want triggers[1] UPDATE_REPLACE, got %v", resp.DetailedDiff)
	}
	// Added triggers.
	olds := baseInputs()
	delete(olds, "triggers")
	resp = diff(t, olds, baseInputs())
	if d := resp.DetailedDiff["triggers"]; d == nil || d.Kind != pulumirpc.PropertyDiff_ADD_REPLACE {
		t.Fatalf("want triggers ADD_REPLACE, got %v", resp.DetailedDiff)
	}
}

func TestDiffOtherChangeUpdates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(resource.PropertyMap)
		key    string
		kind   pulumirpc.PropertyDiff_Kind
	}{
		{"create", func(m resource.PropertyMap) { m["create"] = resource.NewStringProperty("echo 2") }, "create", pulumirpc.PropertyDiff_UPDATE},
		{"add update", func(m resource.PropertyMap) { m["update"] = resource.NewStringProperty("u") }, "update", pulumirpc.PropertyDiff_ADD},
		{"drop delete", func(m resource.PropertyMap) { delete(m, "delete") }, "delete", pulumirpc.PropertyDiff_DELETE},
		{"connection", func(m resource.PropertyMap) { m["connection"] = conn("10.0.0.2") }, "connection", pulumirpc.PropertyDiff_UPDATE},
		{"environment", func(m resource.PropertyMap) {
			m["environment"] = resource.NewObjectProperty(resource.PropertyMap{"A": resource.NewStringProperty("1")})
		}, "environment", pulumirpc.PropertyDiff_ADD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			news := baseInputs()
			tc.change(news)
			resp := diff(t, baseInputs(), news)
			if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME || len(resp.Replaces) != 0 ||
				strings.Join(resp.Diffs, ",") != tc.key {
				t.Fatalf("want update of %s, got %v", tc.key, resp)
			}
			if d := resp.DetailedDiff[tc.key]; d == nil || d.Kind != tc.kind || !d.InputDiff {
				t.Fatalf("want %s %v, got %v", tc.key, tc.kind, resp.DetailedDiff)
			}
		})
	}
}

func TestDiffUnknownsCountAsChanged(t *testing.T) {
	news := baseInputs()
	news["create"] = resource.MakeComputed(resource.NewStringProperty(""))
	resp := diff(t, baseInputs(), news)
	if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME || len(resp.Replaces) != 0 || resp.Diffs[0] != "create" {
		t.Fatalf("want update for unknown create, got %v", resp)
	}

	news = baseInputs()
	news["triggers"] = resource.NewArrayProperty([]resource.PropertyValue{
		resource.NewStringProperty("a"), resource.MakeComputed(resource.NewStringProperty("")),
	})
	resp = diff(t, baseInputs(), news)
	if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME || strings.Join(resp.Replaces, ",") != "triggers" {
		t.Fatalf("want replace for unknown trigger, got %v", resp)
	}

	news = baseInputs()
	news["connection"] = resource.MakeComputed(resource.NewObjectProperty(resource.PropertyMap{}))
	resp = diff(t, baseInputs(), news)
	if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME || resp.Diffs[0] != "connection" {
		t.Fatalf("want update for unknown connection, got %v", resp)
	}
}

func TestCheck(t *testing.T) {
	p := newProvider(nil)
	check := func(m resource.PropertyMap) []*pulumirpc.CheckFailure {
		resp, err := p.Check(context.Background(), &pulumirpc.CheckRequest{Urn: testURN, News: mustStruct(t, m)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Failures
	}
	if f := check(baseInputs()); len(f) != 0 {
		t.Fatalf("unexpected failures %v", f)
	}
	bad := baseInputs()
	bad["logging"] = resource.NewStringProperty("loud")
	if f := check(bad); len(f) != 1 || f[0].Property != "logging" {
		t.Fatalf("want a logging failure, got %v", f)
	}
	bad = baseInputs()
	c := bad["connection"].SecretValue().Element.ObjectValue()
	c["hostKey"] = resource.NewStringProperty("ssh-ed25519 notbase64!")
	if f := check(bad); len(f) != 1 || f[0].Property != "connection.hostKey" {
		t.Fatalf("want a hostKey failure, got %v", f)
	}
	unknown := baseInputs()
	unknown["connection"] = resource.MakeComputed(resource.NewObjectProperty(resource.PropertyMap{}))
	unknown["create"] = resource.MakeComputed(resource.NewStringProperty(""))
	if f := check(unknown); len(f) != 0 {
		t.Fatalf("unknowns must pass Check, got %v", f)
	}
	if _, err := p.Check(context.Background(), &pulumirpc.CheckRequest{
		Urn: "urn:pulumi:dev::proj::command:local:Command::x", News: mustStruct(t, baseInputs()),
	}); err == nil || !strings.Contains(err.Error(), "only command:remote:Command") {
		t.Fatalf("want unsupported type error, got %v", err)
	}
}
