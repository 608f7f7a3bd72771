package provider

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"overlay-fleet/host/agent/dist"
	"overlay-fleet/provider/internal/box"
)

// fakeShipped replaces the embedded agents with small fakes for amd64 and arm64 for the test.
func fakeShipped(t *testing.T) []dist.Agent {
	t.Helper()
	var agents []dist.Agent
	for _, a := range dist.Arches[:2] {
		bin := []byte("agent for " + a.GOARCH)
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(bin)
		w.Close()
		sum := sha256.Sum256(bin)
		agents = append(agents, dist.Agent{Arch: a, Gzip: gz.Bytes(), SHA256: hex.EncodeToString(sum[:])})
	}
	old := shippedAgents
	shippedAgents = func() ([]dist.Agent, error) { return agents, nil }
	t.Cleanup(func() { shippedAgents = old })
	return agents
}

// bootRunner plays the bootstrap: probe answers probeOut (or fails with probeErr), install
// answers the path of the sha256 it is given.
type bootRunner struct {
	probeOut string
	probeErr error
	calls    [][]string
	stdins   [][]byte
}

func (r *bootRunner) Run(_ context.Context, argv []string, stdin []byte) ([]byte, error) {
	r.calls = append(r.calls, argv)
	r.stdins = append(r.stdins, stdin)
	switch {
	case len(argv) > 5 && argv[4] == "probe":
		return []byte(r.probeOut), r.probeErr
	case len(argv) == 8 && argv[4] == "install":
		return []byte("have=" + argv[6] + "\n"), nil
	}
	return nil, fmt.Errorf("unexpected call %q", argv)
}

func (*bootRunner) Addr() string { return testAddr }

func TestAgentInstaller(t *testing.T) {
	tests := []struct {
		name      string
		probeOut  string
		probeErr  error
		wantArch  string   // the agent whose path is wanted; "" when an error is wanted
		wantErr   string   // in the error
		wantCalls []string // the bootstrap actions run
	}{
		{"installed and unchanged", "have=amd64\n", nil, "amd64", "", []string{"probe"}},
		{"missing: installs the box's architecture's", "need=arm64\n", nil, "arm64", "", []string{"probe", "install"}},
		{"a box of an architecture not shipped", "", &box.RemoteError{Addr: testAddr, ExitStatus: 1,
			Stderr: "overlay-fleet bootstrap: no box agent for this box's architecture 'mips' (uname -m)"}, "", "'mips'", []string{"probe"}},
		{"the bootstrap asks for an architecture not shipped", "need=sparc\n", nil, "", `"need=sparc"`, []string{"probe"}},
		{"an answer that is not the bootstrap's", "agent=/tmp/x\n", nil, "", `"agent=/tmp/x"`, []string{"probe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agents := fakeShipped(t)
			r := &bootRunner{probeOut: tt.probeOut, probeErr: tt.probeErr}
			var in agentInstaller
			path, err := in.ensure(t.Context(), r)
			var actions []string
			for _, c := range r.calls {
				if !slices.Equal(c[:4], []string{"sh", "-c", dist.Bootstrap, "overlay-fleet-bootstrap"}) || c[5] != AgentDir {
					t.Fatalf("call %q is not the bootstrap on %s", c, AgentDir)
				}
				actions = append(actions, c[4])
			}
			if !slices.Equal(actions, tt.wantCalls) {
				t.Errorf("bootstrap actions %v, want %v", actions, tt.wantCalls)
			}
			if want := []string{agents[0].ProbeArg(), agents[1].ProbeArg()}; !slices.Equal(r.calls[0][6:], want) {
				t.Errorf("probe args %q, want %q", r.calls[0][6:], want)
			}
			if tt.wantArch == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, _ := agentFor(agents, tt.wantArch)
			if want := AgentDir + "/" + a.SHA256 + "/overlay-fleet-host"; path != want {
				t.Errorf("path %q, want %q", path, want)
			}
			if len(r.calls) == 2 {
				if got := r.calls[1][6:]; !slices.Equal(got, []string{"arm64", a.SHA256}) || !bytes.Equal(r.stdins[1], a.Gzip) {
					t.Errorf("install args %q with %d bytes, want arm64 and its gzip", got, len(r.stdins[1]))
				}
			}
			// Once found, the agent is not looked for again in this provider process.
			n := len(r.calls)
			if again, err := in.ensure(t.Context(), r); err != nil || again != path || len(r.calls) != n {
				t.Errorf("second ensure: %q %v after %d more calls", again, err, len(r.calls)-n)
			}
		})
	}
}

func TestAgentInstallerNotBuilt(t *testing.T) {
	old := shippedAgents
	shippedAgents = func() ([]dist.Agent, error) { return nil, dist.ErrNotBuilt }
	t.Cleanup(func() { shippedAgents = old })
	r := &bootRunner{}
	var in agentInstaller
	if _, err := in.ensure(t.Context(), r); !errors.Is(err, dist.ErrNotBuilt) || len(r.calls) != 0 {
		t.Errorf("err %v after %d calls, want ErrNotBuilt before any", err, len(r.calls))
	}
}

// sshAgentPath is where the provider runs the agent withBootstrap says is installed: the amd64
// one of fakeShipped.
var sshAgentPath string

// withBootstrap answers the bootstrap's probe (the amd64 agent is installed) in front of an SSH
// test handler that plays the agent.
func withBootstrap(t *testing.T, h func(cmd string, stdin []byte) (string, string, int)) func(string, []byte) (string, string, int) {
	agents := fakeShipped(t)
	sshAgentPath = AgentDir + "/" + agents[0].SHA256 + "/overlay-fleet-host"
	return func(cmd string, stdin []byte) (string, string, int) {
		if strings.HasPrefix(cmd, "sh -c ") && strings.Contains(cmd, " overlay-fleet-bootstrap probe ") {
			return "have=amd64\n", "", 0
		}
		return h(cmd, stdin)
	}
}
