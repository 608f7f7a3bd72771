package dist

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"testing/fstest"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestAgentsIn(t *testing.T) {
	amd64 := []byte("\x7fELF amd64 agent")
	sum := sha256.Sum256(amd64)
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []string // GOARCH:SHA256 of each agent
		wantErr string
	}{
		{"only the README: not built", fstest.MapFS{"bin/README.md": {}}, nil, ErrNotBuilt.Error()},
		{"one architecture", fstest.MapFS{"bin/overlay-fleet-host-amd64.gz": {Data: gz(amd64)}},
			[]string{"amd64:" + hex.EncodeToString(sum[:])}, ""},
		{"a file that is not gzip", fstest.MapFS{"bin/overlay-fleet-host-arm64.gz": {Data: amd64}}, nil, "overlay-fleet-host-arm64.gz"},
		{"an architecture not in Arches is not shipped", fstest.MapFS{"bin/overlay-fleet-host-mips.gz": {Data: gz(amd64)}}, nil, ErrNotBuilt.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents, err := agentsIn(tt.files, "bin")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range agents {
				got = append(got, a.GOARCH+":"+a.SHA256)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("agents %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProbeArg(t *testing.T) {
	a := Agent{Arch: Arch{"arm", []string{"armv7l", "armv6l"}}, SHA256: "ab"}
	if got := a.ProbeArg(); got != "arm:ab:armv7l,armv6l" {
		t.Errorf("ProbeArg %q", got)
	}
}

// Each uname -m name maps to one architecture: the bootstrap takes the first that holds it.
func TestMachinesUnique(t *testing.T) {
	seen := map[string]string{}
	for _, a := range Arches {
		for _, m := range a.Machines {
			if other, ok := seen[m]; ok {
				t.Errorf("machine %q is both %s and %s", m, other, a.GOARCH)
			}
			seen[m] = a.GOARCH
		}
	}
}
