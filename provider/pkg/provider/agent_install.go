package provider

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	"overlay-fleet/host/agent/dist"
	"overlay-fleet/provider/internal/box"
)

// AgentDir is where the provider installs the box agent: one directory per agent version,
// named by the binary's sha256, so a box runs exactly the agent of the provider's protocol.
const AgentDir = "/var/lib/overlay-fleet/agent"

// shippedAgents are the agents this provider installs (the embedded ones; tests replace it).
var shippedAgents = dist.Agents

// agentInstaller finds the box's agent once per provider process: a probe with the bootstrap
// (`uname -m`, the installed binary's sha256, the directory's owner and mode), and an install of
// the box's architecture's agent when it is missing or another one. Safe for concurrent use; a failure is retried on
// the next operation.
type agentInstaller struct {
	mu   sync.Mutex
	path string
}

// ensure returns the path of the box's agent, installing it first when needed.
func (in *agentInstaller) ensure(ctx context.Context, r box.Runner) (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.path != "" {
		return in.path, nil
	}
	agents, err := shippedAgents()
	if err != nil {
		return "", fmt.Errorf("install the box agent on %s: %w", r.Addr(), err)
	}
	probe := bootstrapArgv("probe", AgentDir)
	for _, a := range agents {
		probe = append(probe, a.ProbeArg())
	}
	out, err := r.Run(ctx, probe, nil)
	if err != nil {
		return "", fmt.Errorf("find the box agent: %w", err)
	}
	key, val := bootstrapAnswer(out)
	a, ok := agentFor(agents, val)
	if !ok || (key != "have" && key != "need") {
		return "", fmt.Errorf("find the box agent on %s: %w: %q", r.Addr(), errBadAnswer, abbreviate(out))
	}
	if key == "need" {
		if out, err = r.Run(ctx, bootstrapArgv("install", AgentDir, a.GOARCH, a.SHA256), a.Gzip); err != nil {
			return "", fmt.Errorf("install the box agent (%s): %w", a.GOARCH, err)
		}
		if key, val = bootstrapAnswer(out); key != "have" || val != a.GOARCH {
			return "", fmt.Errorf("install the box agent on %s: %w: %q", r.Addr(), errBadAnswer, abbreviate(out))
		}
	}
	// The path is ours to make (the sha256 of the agent shipped), not the box's to say.
	in.path = AgentDir + "/" + a.SHA256 + "/overlay-fleet-host"
	return in.path, nil
}

// bootstrapArgv runs the bootstrap (an sh script given as `sh -c` text: nothing of ours needs to
// be on the box before it) with its action and arguments.
func bootstrapArgv(args ...string) []string {
	return append([]string{"sh", "-c", dist.Bootstrap, "overlay-fleet-bootstrap"}, args...)
}

// bootstrapAnswer splits the bootstrap's one line `key=value`.
func bootstrapAnswer(out []byte) (key, val string) {
	key, val, _ = strings.Cut(string(bytes.TrimSpace(out)), "=")
	return key, val
}

func agentFor(agents []dist.Agent, goarch string) (dist.Agent, bool) {
	for _, a := range agents {
		if a.GOARCH == goarch {
			return a, true
		}
	}
	return dist.Agent{}, false
}
