// Package dist is the box agent as the provider ships it: the agent built for each box
// architecture (bin/, made by `go run ./dist/cmd/build-dist` from the agent module, which the
// toolchain runs before it builds the provider) and the bootstrap that installs it on a box.
// The provider embeds this package, so a provider always installs the agent of its own
// protocol.
package dist

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Bootstrap is the box-side sh that probes for and installs the agent (bootstrap.sh).
//
//go:embed bootstrap.sh
var Bootstrap string

//go:embed bin
var bin embed.FS

// Arch is one box architecture the agent is built for.
type Arch struct {
	// GOARCH builds it (GOOS is linux; GOARM=6 for arm, which armv7 runs too).
	GOARCH string
	// Machines are the `uname -m` names of the boxes that run it.
	Machines []string
}

// Arches are the architectures every provider ships an agent for.
var Arches = []Arch{
	{"amd64", []string{"x86_64"}},
	{"arm64", []string{"aarch64", "arm64"}},
	{"arm", []string{"armv7l", "armv6l", "armv7", "armv6"}},
	{"386", []string{"i686", "i586", "i386"}},
	{"riscv64", []string{"riscv64"}},
}

// FileName is the name of the gzipped agent for goarch in bin/.
func FileName(goarch string) string { return "overlay-fleet-host-" + goarch + ".gz" }

// Agent is the agent for one architecture as shipped.
type Agent struct {
	Arch
	// Gzip is the binary, gzipped (what goes over the wire).
	Gzip []byte
	// SHA256 is the hex sha256 of the binary itself (what the bootstrap checks on the box).
	SHA256 string
}

// ErrNotBuilt says the provider was built without the agents (bin/ holds only its README).
var ErrNotBuilt = errors.New("this provider was built without the box agent (tools/toolchain.sh builds both)")

// Agents returns the shipped agent of every architecture, or ErrNotBuilt when there is none.
func Agents() ([]Agent, error) { return agentsIn(bin, "bin") }

func agentsIn(fsys fs.FS, dir string) ([]Agent, error) {
	var agents []Agent
	for _, a := range Arches {
		gz, err := fs.ReadFile(fsys, dir+"/"+FileName(a.GOARCH))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the %s agent: %w", a.GOARCH, err)
		}
		sum, err := gunzipSHA256(gz)
		if err != nil {
			return nil, fmt.Errorf("the %s agent shipped in %s: %w", a.GOARCH, FileName(a.GOARCH), err)
		}
		agents = append(agents, Agent{Arch: a, Gzip: gz, SHA256: sum})
	}
	if len(agents) == 0 {
		return nil, ErrNotBuilt
	}
	return agents, nil
}

func gunzipSHA256(gz []byte) (string, error) {
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), r.Close()
}

// ProbeArg is the bootstrap's `probe` argument for a: GOARCH:SHA256:MACHINE,...
func (a Agent) ProbeArg() string {
	return a.GOARCH + ":" + a.SHA256 + ":" + strings.Join(a.Machines, ",")
}
