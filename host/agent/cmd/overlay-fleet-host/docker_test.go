package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"overlay-fleet/host/agent/internal/docker"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// scriptedDocker answers docker calls from a table keyed by the joined arguments; a call not in
// it is "No such object". It records the calls.
type scriptedDocker struct {
	answers map[string]string
	errors  map[string]error
	calls   []string
}

func (s *scriptedDocker) Run(_ context.Context, _ docker.Kind, args ...string) ([]byte, error) {
	call := strings.Join(args, " ")
	s.calls = append(s.calls, call)
	if err, ok := s.errors[call]; ok {
		return nil, err
	}
	if out, ok := s.answers[call]; ok {
		return []byte(out), nil
	}
	return nil, &docker.Error{Args: args, ExitStatus: 1, Stderr: "Error: No such object: " + args[len(args)-1]}
}

func dockerEnv(t *testing.T, stdin string, d *scriptedDocker, overlays ...string) (*env, *strings.Builder, *strings.Builder) {
	t.Helper()
	e, _, _ := testEnv(t, stdin)
	var stdout, stderr strings.Builder
	e.stdout, e.stderr = &stdout, &stderr
	e.docker = dockerBox{cli: d, mountTable: func() (mountinfo.Table, error) {
		t := mountinfo.Table{{ID: 1, ParentID: 1, MountPoint: "/", FSType: "ext4"}}
		for i, dir := range overlays {
			t = append(t, mountinfo.Mount{ID: 10 + i, ParentID: 1, MountPoint: dir, FSType: "overlay"})
		}
		return t, nil
	}}
	return e, &stdout, &stderr
}

const (
	macnetInspect = `[{"Name":"macnet","Id":"n1","Driver":"macvlan","Options":{"parent":"eth0"},"Labels":{"overlay-fleet.box":"box1"},
"IPAM":{"Config":[{"Subnet":"192.168.1.0/24","Gateway":"192.168.1.1"}]}}]`
	ttnode1Inspect = `[{"Id":"c1","Name":"/ttnode1","Image":"sha256:aaaa","State":{"Status":"running","Running":true},
"Config":{"Hostname":"ttnode1","Image":"ericwang2006/ttnode","Env":["PATH=/bin","NODE=1"],"Labels":{"overlay-fleet.instance":"box1/ttnode1"}},
"HostConfig":{"Privileged":true,"RestartPolicy":{"Name":"always"},"Dns":["192.168.1.1"],"Mounts":[{"Type":"bind","Source":"/mnt/usbdisk/ttnode1/mnts","Target":"/mnts"}]},
"NetworkSettings":{"Networks":{"macnet":{"IPAddress":"192.168.1.101","MacAddress":"02:aa:bb:cc:dd:01"}}}}]`
	imageAAAA = `[{"Id":"sha256:aaaa","Config":{"Env":["PATH=/bin"]}}]`
)

func TestNetworkAnswer(t *testing.T) {
	d := &scriptedDocker{answers: map[string]string{"network inspect macnet": macnetInspect}}
	e, stdout, stderr := dockerEnv(t, `{"name":"macnet"}`, d)
	if code := run(t.Context(), e, []string{"network", "read"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "macnet", "id": "n1", "present": true, "driver": "macvlan", "parent": "eth0",
		"subnet": "192.168.1.0/24", "gateway": "192.168.1.1", "box": "box1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer %v, want %v", got, want)
	}
}

func TestNetworkDeleteRefusesForeignUser(t *testing.T) {
	d := &scriptedDocker{answers: map[string]string{
		"network inspect macnet": macnetInspect,
		`ps -a --no-trunc --filter network=n1 --format {{.Names}}	{{.Label "overlay-fleet.instance"}}`: "pihole\t\nttnode1\tbox1/ttnode1\n",
	}}
	e, _, stderr := dockerEnv(t, `{"name":"macnet","box":"box1"}`, d)
	if code := run(t.Context(), e, []string{"network", "delete"}); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := "overlay-fleet-host: docker network macnet is used by containers overlay-fleet did not create for box box1: pihole; nothing was changed"; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q, want %q...", stderr, want)
	}
	for _, c := range d.calls {
		if strings.HasPrefix(c, "network rm") {
			t.Errorf("the network was removed: %q", d.calls)
		}
	}
}

func TestContainerAnswer(t *testing.T) {
	d := &scriptedDocker{answers: map[string]string{"container inspect ttnode1": ttnode1Inspect, "image inspect sha256:aaaa": imageAAAA}}
	e, stdout, stderr := dockerEnv(t, `{"name":"ttnode1","network":"macnet"}`, d)
	if code := run(t.Context(), e, []string{"container", "read"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "ttnode1", "id": "c1", "present": true, "running": true, "status": "running",
		"instanceId": "box1/ttnode1", "hostname": "ttnode1", "network": "macnet", "ip": "192.168.1.101", "mac": "02:aa:bb:cc:dd:01",
		"image": "ericwang2006/ttnode", "imageId": "sha256:aaaa", "merged": "/mnt/usbdisk/ttnode1/mnts", "target": "/mnts",
		"restart": "always", "privileged": true, "dns": []any{"192.168.1.1"}, "env": map[string]any{"NODE": "1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer\n%v\nwant\n%v", got, want)
	}

	// Absent: every key, empty.
	e, stdout, _ = dockerEnv(t, `{"name":"ttnode9"}`, d)
	if code := run(t.Context(), e, []string{"container", "read"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	got = nil
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatal(err)
	}
	if got["present"] != false || got["name"] != "ttnode9" || len(got) != len(want) || got["dns"] == nil || got["env"] == nil {
		t.Errorf("absent answer %v", got)
	}
}

func TestContainerImageMissing(t *testing.T) {
	d := &scriptedDocker{}
	req := `{"name":"ttnode1","instanceId":"box1/ttnode1","hostname":"ttnode1","network":"macnet","ip":"192.168.1.101","mac":"02:aa:bb:cc:dd:01",
"image":"ericwang2006/ttnode","merged":"/mnt/usbdisk/ttnode1/mnts"}`
	e, _, stderr := dockerEnv(t, req, d, "/mnt/usbdisk/ttnode1/mnts")
	if code := run(t.Context(), e, []string{"container", "create"}); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "image ericwang2006/ttnode is not on this box") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestDockerUsageErrors(t *testing.T) {
	full := map[string]any{"name": "ttnode1", "instanceId": "box1/ttnode1", "hostname": "ttnode1", "network": "macnet",
		"ip": "192.168.1.101", "mac": "02:aa:bb:cc:dd:01", "image": "ericwang2006/ttnode", "merged": "/mnt/usbdisk/ttnode1/mnts"}
	with := func(k string, v any) string {
		m := map[string]any{}
		for key, val := range full {
			m[key] = val
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		data, _ := json.Marshal(m)
		return string(data)
	}
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string
	}{
		{"network: no action", []string{"network"}, `{}`, "network takes one action"},
		{"network: bad action", []string{"network", "update"}, `{"name":"macnet"}`, `got "update"`},
		{"network: bad name", []string{"network", "read"}, `{"name":"-x"}`, `network name "-x"`},
		{"network: unknown key", []string{"network", "read"}, `{"name":"macnet","driver":"bridge"}`, `unknown field "driver"`},
		{"network: delete without box", []string{"network", "delete"}, `{"name":"macnet"}`, `box name ""`},
		{"network: bad subnet", []string{"network", "create"}, `{"name":"macnet","parent":"eth0","subnet":"192.168.1.0","gateway":"192.168.1.1","box":"box1"}`, `subnet "192.168.1.0"`},
		{"network: gateway outside", []string{"network", "create"}, `{"name":"macnet","parent":"eth0","subnet":"192.168.1.0/24","gateway":"10.0.0.1","box":"box1"}`, "outside the subnet"},
		{"container: bad action", []string{"container", "start"}, with("x", nil), `got "start"`},
		{"container: delete without instance", []string{"container", "delete"}, `{"name":"ttnode1"}`, `instance id ""`},
		{"container: bad MAC", []string{"container", "create"}, with("mac", "02:AA:BB:CC:DD:01"), `MAC address "02:AA:BB:CC:DD:01"`},
		{"container: bad IP", []string{"container", "create"}, with("ip", "192.168.1"), `ip "192.168.1"`},
		{"container: no hostname", []string{"container", "create"}, with("hostname", nil), `hostname ""`},
		{"container: merged with comma", []string{"container", "create"}, with("merged", "/mnt/a,b"), "contains a comma"},
		{"container: relative target", []string{"container", "create"}, with("target", "mnts"), "must be an absolute path"},
		{"container: bad restart", []string{"container", "create"}, with("restart", "sometimes"), `restart policy "sometimes"`},
		{"container: bad dns", []string{"container", "create"}, with("dns", []string{"8.8.8"}), `DNS server "8.8.8"`},
		{"container: bad env", []string{"container", "create"}, with("env", map[string]string{"A-B": "1"}), `"A-B"`},
		{"container: bad image id", []string{"container", "create"}, with("imageId", "abc"), `image id "abc"`},
		{"container: negative maxDown", []string{"container", "create"}, with("maxDown", -1), "maxDown must be 0"},
		{"container: maxDown without its run", []string{"container", "create"}, with("maxDown", 1), "needs the run"},
		{"container: replacing on a create", []string{"container", "create"}, with("replacing", true), "replacing is for a delete"},
		{"container: a replacing delete without its merged dir", []string{"container", "delete"},
			`{"name":"ttnode1","instanceId":"box1/ttnode1","maxDown":1,"run":"r1","replacing":true}`, "merged dir must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &scriptedDocker{}
			e, stdout, stderr := dockerEnv(t, tt.stdin, d)
			if code := run(t.Context(), e, tt.args); code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantErr)
			}
			if stdout.Len() != 0 || len(d.calls) != 0 {
				t.Errorf("stdout %q, docker calls %q: a refused request must touch nothing", stdout, d.calls)
			}
		})
	}
}
