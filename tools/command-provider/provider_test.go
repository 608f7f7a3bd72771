package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

// fakeRuns replaces runFunc and records the runs.
func fakeRuns(t *testing.T, out string, err error) *[]runSpec {
	t.Helper()
	var runs []runSpec
	old := runFunc
	runFunc = func(_ context.Context, spec runSpec, _ reporter) (string, string, error) {
		runs = append(runs, spec)
		return out + " (" + spec.Command + ")", "", err
	}
	t.Cleanup(func() { runFunc = old })
	return &runs
}

func unmarshalT(t *testing.T, s *structpb.Struct) resource.PropertyMap {
	t.Helper()
	m, err := plugin.UnmarshalProperties(s, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreatePreviewRunsNothing(t *testing.T) {
	runs := fakeRuns(t, "out", nil)
	p := newProvider(nil)
	resp, err := p.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: testURN, Name: "c1", Type: commandType, Properties: mustStruct(t, baseInputs()), Preview: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(*runs) != 0 {
		t.Fatalf("preview ran %v", *runs)
	}
	outs := unmarshalT(t, resp.Properties)
	if !outs["stdout"].IsComputed() || !outs["stderr"].IsComputed() {
		t.Fatalf("stdout/stderr must be unknown in preview: %v", outs)
	}
	if !outs["connection"].IsSecret() {
		t.Fatalf("connection must stay secret: %v", outs["connection"])
	}
}

func TestCreateRunsCreate(t *testing.T) {
	runs := fakeRuns(t, "out", nil)
	p := newProvider(nil)
	in := baseInputs()
	in["logging"] = resource.NewStringProperty("none")
	resp, err := p.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: testURN, Name: "c1", Type: commandType, Properties: mustStruct(t, in),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(*runs) != 1 || (*runs)[0].Command != "echo hi" || (*runs)[0].Op != "create" ||
		(*runs)[0].Conn.Host != "10.0.0.1" || (*runs)[0].Logging != "none" || (*runs)[0].PrevStdout != "" {
		t.Fatalf("unexpected runs %+v", *runs)
	}
	if !strings.HasPrefix(resp.Id, "c1") || len(resp.Id) != len("c1")+8 {
		t.Fatalf("unexpected id %q", resp.Id)
	}
	outs := unmarshalT(t, resp.Properties)
	if outs["stdout"].StringValue() != "out (echo hi)" || !outs["connection"].IsSecret() ||
		outs["delete"].StringValue() != "echo bye" || !outs["triggers"].IsArray() {
		t.Fatalf("unexpected outputs %v", outs)
	}
}

func TestCreateFailureIsAnError(t *testing.T) {
	fakeRuns(t, "", errors.New("command exited 3: boom"))
	p := newProvider(nil)
	_, err := p.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: testURN, Type: commandType, Properties: mustStruct(t, baseInputs()),
	})
	if err == nil || !strings.Contains(err.Error(), "command exited 3: boom") {
		t.Fatalf("want the command error, got %v", err)
	}
}

func state(out string) resource.PropertyMap {
	s := baseInputs()
	s["stdout"] = resource.NewStringProperty(out)
	s["stderr"] = resource.NewStringProperty("old err")
	s["addPreviousOutputInEnv"] = resource.NewNullProperty()
	return s
}

func TestUpdate(t *testing.T) {
	p := newProvider(nil)
	olds := state("old out")

	// Preview: nothing runs, the old output stays.
	runs := fakeRuns(t, "new", nil)
	news := baseInputs()
	news["create"] = resource.NewStringProperty("echo 2")
	resp, err := p.Update(context.Background(), &pulumirpc.UpdateRequest{
		Urn: testURN, Olds: mustStruct(t, olds), News: mustStruct(t, news), Preview: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if outs := unmarshalT(t, resp.Properties); len(*runs) != 0 || outs["stdout"].StringValue() != "old out" {
		t.Fatalf("preview: runs %v outputs %v", *runs, outs)
	}

	// No update command: create re-runs; addPreviousOutputInEnv false: no previous output.
	resp, err = p.Update(context.Background(), &pulumirpc.UpdateRequest{
		Urn: testURN, Olds: mustStruct(t, olds), News: mustStruct(t, news),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(*runs) != 1 || (*runs)[0].Command != "echo 2" || (*runs)[0].PrevStdout != "" {
		t.Fatalf("unexpected runs %+v", *runs)
	}
	if outs := unmarshalT(t, resp.Properties); outs["stdout"].StringValue() != "new (echo 2)" {
		t.Fatalf("unexpected outputs %v", outs)
	}

	// An update command wins; addPreviousOutputInEnv defaults to true.
	news["update"] = resource.NewStringProperty("echo upd")
	delete(news, "addPreviousOutputInEnv")
	if _, err = p.Update(context.Background(), &pulumirpc.UpdateRequest{
		Urn: testURN, Olds: mustStruct(t, olds), News: mustStruct(t, news),
	}); err != nil {
		t.Fatal(err)
	}
	if r := (*runs)[1]; r.Command != "echo upd" || r.PrevStdout != "old out" || r.PrevStderr != "old err" {
		t.Fatalf("unexpected run %+v", r)
	}
}

func TestDeleteUsesTheState(t *testing.T) {
	runs := fakeRuns(t, "", nil)
	p := newProvider(nil)
	olds := state("old out")
	olds["connection"] = conn("10.9.9.9")
	if _, err := p.Delete(context.Background(), &pulumirpc.DeleteRequest{
		Urn: testURN, Id: "c1", Properties: mustStruct(t, olds),
	}); err != nil {
		t.Fatal(err)
	}
	if len(*runs) != 1 || (*runs)[0].Command != "echo bye" || (*runs)[0].Conn.Host != "10.9.9.9" ||
		(*runs)[0].PrevStdout != "old out" {
		t.Fatalf("unexpected runs %+v", *runs)
	}
	delete(olds, "delete")
	olds["connection"] = resource.NewStringProperty("garbage") // not needed without delete
	if _, err := p.Delete(context.Background(), &pulumirpc.DeleteRequest{
		Urn: testURN, Id: "c1", Properties: mustStruct(t, olds),
	}); err != nil || len(*runs) != 1 {
		t.Fatalf("no delete command: want no run and no error, got %v %v", err, *runs)
	}

	fakeRuns(t, "", errors.New("command exited 1: nope"))
	olds = state("x")
	if _, err := p.Delete(context.Background(), &pulumirpc.DeleteRequest{
		Urn: testURN, Id: "c1", Properties: mustStruct(t, olds),
	}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("want the delete error, got %v", err)
	}
}

func TestReadReturnsState(t *testing.T) {
	p := newProvider(nil)
	s := mustStruct(t, state("x"))
	resp, err := p.Read(context.Background(), &pulumirpc.ReadRequest{Urn: testURN, Id: "c1", Properties: s})
	if err != nil || resp.Id != "c1" || resp.Properties != s {
		t.Fatalf("unexpected %v %v", resp, err)
	}
}

func TestConfigureAndInfo(t *testing.T) {
	p := newProvider(nil)
	resp, err := p.Configure(context.Background(), &pulumirpc.ConfigureRequest{AcceptSecrets: true, AcceptResources: true})
	if err != nil || !resp.AcceptSecrets || !resp.SupportsPreview || !resp.AcceptResources {
		t.Fatalf("unexpected %v %v", resp, err)
	}
	info, _ := p.GetPluginInfo(context.Background(), nil)
	if info.Version != Version {
		t.Fatalf("version %q", info.Version)
	}
	schema, _ := p.GetSchema(context.Background(), &pulumirpc.GetSchemaRequest{})
	if !strings.Contains(schema.Schema, `"command:remote:Command"`) {
		t.Fatalf("schema %s", schema.Schema)
	}
}

func TestParseConnectionDefaults(t *testing.T) {
	c, err := parseConnection(resource.NewObjectProperty(resource.PropertyMap{
		"host": resource.NewStringProperty("h"),
	}), "connection.", true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 22 || c.User != "root" || c.DialErrorLimit != 10 || c.PerDialTimeout != 15 || c.Proxy != nil {
		t.Fatalf("defaults: %+v", c)
	}
	if _, err := parseConnection(resource.NewObjectProperty(resource.PropertyMap{
		"host": resource.NewStringProperty("h"), "port": resource.NewNumberProperty(70000),
	}), "connection.", true); err == nil {
		t.Fatal("want a port error")
	}
}
