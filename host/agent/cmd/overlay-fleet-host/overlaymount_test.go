package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"overlay-fleet/host/agent/internal/ovlmount"
)

func TestDecideOverlayMount(t *testing.T) {
	pinned := "index=off,nfs_export=off,redirect_dir=off,metacopy=off"
	full := map[string]any{"merged": "/d/n1/mnts", "lower": "/d/cache", "upper": "/d/n1/upper", "work": "/d/n1/work", "options": pinned}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range full {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		action  string
		req     any
		wantErr string // "" for a request that passes
	}{
		{"create", "create", full, ""},
		{"update with extras", "update", with("options", pinned+",noatime,xino=off"), ""},
		{"create without options: the pinned ones", "create", with("options", nil), ""},
		{"read by merged alone", "read", map[string]any{"merged": "/d/n1/mnts"}, ""},
		{"delete with purge", "delete", with("purge", true), ""},
		{"delete by merged alone", "delete", map[string]any{"merged": "/d/n1/mnts"}, ""},
		{"unknown action", "remount", full, `action must be read, create, update or delete, got "remount"`},
		{"unknown field", "create", with("fstab", "/etc/fstab"), `unknown field "fstab"`},
		{"no merged", "read", map[string]any{}, "merged dir must not be empty"},
		{"create without lower", "create", with("lower", nil), "lower dir must not be empty"},
		{"relative upper", "create", with("upper", "d/n1/upper"), `upper dir "d/n1/upper" must be an absolute path`},
		{"trailing slash", "create", with("merged", "/d/n1/mnts/"), `merged dir "/d/n1/mnts/" must not have repeated or trailing slashes`},
		{"comma in work", "create", with("work", "/d/n1/w,x"), `work dir "/d/n1/w,x" contains one of`},
		{"bad option", "create", with("options", pinned+",bind"), `contain "bind", which is not an overlay mount option`},
		{"contradicts pinned", "create", with("options", "index=on"), `"index=on" contradicts the pinned index=off`},
		{"layer in options", "update", with("options", "upperdir=/x"), "must not set upperdir"},
		{"upper inside lower", "create", with("upper", "/d/cache/upper"), `upper dir "/d/cache/upper" must not be the same as or inside the lower dir "/d/cache"`},
		{"purge on create", "create", with("purge", true), "purge is a setting of delete"},
		{"update with the instance's container", "update", with("container", "ttnode1"), ""},
		{"create with it", "create", with("container", "ttnode1"), ""},
		{"container on read", "read", map[string]any{"merged": "/d/n1/mnts", "container": "ttnode1"}, "container is a setting of create and update"},
		{"container on delete", "delete", map[string]any{"merged": "/d/n1/mnts", "container": "ttnode1"}, "container is a setting of create and update"},
		{"bad container name", "update", with("container", "-x y"), `container "-x y" is not a valid docker name`},
		{"purge without upper", "delete", map[string]any{"merged": "/d/n1/mnts", "work": "/d/n1/work", "purge": true}, "upper dir must not be empty"},
		{"purge of the instance's own dirs", "delete", with("purge", true), ""},
		{"purge of the lower", "delete", map[string]any{"merged": "/d/n1/mnts", "upper": "/d/cache", "work": "/d/n1/work", "purge": true},
			`refusing to purge "/d/cache": the upper dir must be "/d/n1/upper"`},
		{"too long", "create", with("lower", "/"+strings.Repeat("l", 4000)), "more than the 4095 that mount(2) takes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			_, err = decideOverlayMount([]string{tt.action}, strings.NewReader(string(data)))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v; want a usage error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestOverlayMountReadUnmounted runs a read as the provider does, on this machine's mount
// table (no root needed): a merged dir with nothing mounted.
func TestOverlayMountReadUnmounted(t *testing.T) {
	merged := filepath.Join(t.TempDir(), "n1", "mnts")
	e, stdout, stderr := testEnv(t, request(t, map[string]string{"merged": merged}))
	e.mounts = ovlmount.Linux{}
	if code := run(t.Context(), e, []string{"overlay-mount", "read"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `{"merged":"` + merged + `","mounted":false,"lower":"","upper":"","work":"","options":""}` + "\n"
	if stdout.String() != want {
		t.Errorf("answer %s\nwant %s", stdout, want)
	}
}

func TestOverlayMountUsageExit(t *testing.T) {
	e, stdout, stderr := testEnv(t, `{"merged":"relative"}`)
	e.mounts = ovlmount.Linux{}
	if code := run(t.Context(), e, []string{"overlay-mount", "read"}); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "overlay-fleet-host: merged dir \"relative\" must be an absolute path") {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
}
