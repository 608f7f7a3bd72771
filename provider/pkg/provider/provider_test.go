package provider

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/blang/semver"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/integration"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"overlay-fleet/provider/internal/sshtest"
)

func TestConfigValidate(t *testing.T) {
	s := sshtest.Start(t, nil)
	key := s.ClientKey
	valid := func() Config {
		return Config{Host: "box1.lan", Port: 22, User: "root", HostKey: s.HostKey, PrivateKey: &key}
	}
	empty, bad := "", "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n-----END OPENSSH PRIVATE KEY-----\n"
	tests := []struct {
		name string
		edit func(*Config)
		want []string // failing properties
	}{
		{"valid key", func(*Config) {}, nil},
		{"valid agent", func(c *Config) { c.PrivateKey = nil; c.Agent = true }, nil},
		{"no host", func(c *Config) { c.Host = "" }, []string{"host"}},
		{"port out of range", func(c *Config) { c.Port = 0 }, []string{"port"}},
		{"no host key", func(c *Config) { c.HostKey = "" }, []string{"hostKey"}},
		{"host key garbage", func(c *Config) { c.HostKey = "ssh-ed25519 AAAA!!" }, []string{"hostKey"}},
		{"both key and agent", func(c *Config) { c.Agent = true }, []string{"privateKey"}},
		{"neither key nor agent", func(c *Config) { c.PrivateKey = nil }, []string{"privateKey"}},
		{"empty key, no agent", func(c *Config) { c.PrivateKey = &empty }, []string{"privateKey"}},
		{"key unparsable", func(c *Config) { c.PrivateKey = &bad }, []string{"privateKey"}},
		{"an agent of one's own", func(c *Config) { c.AgentPath = "/opt/of/overlay-fleet-host" }, nil},
		{"relative agentPath", func(c *Config) { c.AgentPath = "bin/agent" }, []string{"agentPath"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			var got []string
			for _, f := range c.validate() {
				got = append(got, f.Property)
				if strings.Contains(f.Reason, "nope") {
					t.Errorf("reason %q shows the key", f.Reason)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("failures on %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeAgent plays the box agent's fstab-entry protocol over the test SSH server.
type fakeAgent struct {
	mu      sync.Mutex
	lines   map[string]map[string]any // id -> answer
	argvs   []string
	stdins  []string
	failMsg string
}

func (a *fakeAgent) handle(cmd string, stdin []byte) (string, string, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.argvs = append(a.argvs, cmd)
	a.stdins = append(a.stdins, string(stdin))
	if a.failMsg != "" {
		return "", "starting\n" + a.failMsg + "\n", 1
	}
	op, ok := strings.CutPrefix(cmd, sshAgentPath+" fstab-entry ")
	var req map[string]any
	if !ok || json.Unmarshal(stdin, &req) != nil {
		return "", "bad call\n", 2
	}
	id := req["id"].(string)
	switch op {
	case "create", "update":
		ans := map[string]any{"present": true, "line": "overlay " + req["merged"].(string) + " overlay " + req["options"].(string) + " 0 0"}
		for _, k := range []string{"fstab", "id", "merged", "options"} {
			ans[k] = req[k]
		}
		a.lines[id] = ans
	case "delete":
		delete(a.lines, id)
	}
	ans, ok := a.lines[id]
	if !ok {
		ans = map[string]any{"fstab": req["fstab"], "id": id, "present": false}
	}
	out, _ := json.Marshal(ans)
	return string(out), "", 0
}

const entryURN = resource.URN("urn:pulumi:dev::overlay-fleet::overlay-fleet:index:FstabEntry::box1-ttnode1-fstab")

// TestProviderOverSSH drives the provider as the engine does, against an in-process SSH
// server that plays the agent: config check, configure, preview, create, import, delete.
func TestProviderOverSSH(t *testing.T) {
	agent := &fakeAgent{lines: map[string]map[string]any{}}
	s, ssh, cfg := configuredOverSSH(t, agent.handle)
	if got := cfg.Get("user").AsString(); got != "root" {
		t.Errorf("user defaulted to %q", got)
	}
	if !cfg.Get("privateKey").Secret() {
		t.Error("privateKey is not a secret after check")
	}

	inputs := property.NewMap(map[string]property.Value{
		"instanceId": property.New("box1/ttnode1"),
		"merged":     property.New("/mnt/usbdisk/ttnode1/mnts"),
		"options":    property.New(opts1),
	})
	checked, err := s.Check(p.CheckRequest{Urn: entryURN, Inputs: inputs})
	if err != nil || len(checked.Failures) > 0 {
		t.Fatalf("check: %v %v", err, checked.Failures)
	}
	if got := checked.Inputs.Get("fstab").AsString(); got != DefaultFstab {
		t.Errorf("fstab defaulted to %q", got)
	}

	preview, err := s.Create(p.CreateRequest{Urn: entryURN, Properties: checked.Inputs, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !preview.Properties.Get("line").IsComputed() {
		t.Errorf("line is %v in the preview, want unknown", preview.Properties.Get("line"))
	}
	if n := ssh.Connections(); n != 0 {
		t.Fatalf("configure and preview made %d SSH connections, want 0", n)
	}

	created, err := s.Create(p.CreateRequest{Urn: entryURN, Properties: checked.Inputs})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != "box1/ttnode1" || !strings.HasPrefix(created.Properties.Get("line").AsString(), "overlay /mnt/usbdisk/ttnode1/mnts ") {
		t.Errorf("created %q %v", created.ID, created.Properties)
	}

	// Import: only the ID and the provider's config.
	imported, err := s.Read(p.ReadRequest{ID: "box1/ttnode1", Urn: entryURN})
	if err != nil {
		t.Fatal(err)
	}
	if imported.ID != "box1/ttnode1" || imported.Inputs.Get("options").AsString() != opts1 ||
		imported.Inputs.Get("fstab").AsString() != DefaultFstab {
		t.Errorf("import read %q inputs %v", imported.ID, imported.Inputs)
	}

	if err := s.Delete(p.DeleteRequest{ID: created.ID, Urn: entryURN, Properties: created.Properties}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Read(p.ReadRequest{ID: created.ID, Urn: entryURN, Properties: created.Properties, Inputs: checked.Inputs})
	if err != nil || gone.ID != "" {
		t.Errorf("read after delete: %q %v", gone.ID, err)
	}
	if n := ssh.Connections(); n != 1 {
		t.Errorf("%d SSH connections, want 1", n)
	}
	want := []string{"create", "read", "delete", "read"}
	for i, cmd := range agent.argvs {
		if i >= len(want) || cmd != sshAgentPath+" fstab-entry "+want[i] {
			t.Errorf("agent call %d: %q, want %v", i, cmd, want)
		}
	}

	// A failure on the box names the box and carries the agent's reason.
	agent.failMsg = "fstab-entry: /etc/fstab: cannot take the lock"
	_, err = s.Create(p.CreateRequest{Urn: entryURN, Properties: checked.Inputs})
	addr := net.JoinHostPort(ssh.Host, strconv.Itoa(ssh.Port))
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "cannot take the lock") ||
		strings.Contains(err.Error(), "starting") {
		t.Errorf("got %v, want an error naming %s with the agent's last stderr line", err, addr)
	}
}

func TestCheckConfigNamesTheField(t *testing.T) {
	s, err := integration.NewServer(t.Context(), Name, semver.MustParse("0.1.0"), integration.WithProvider(New()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.CheckConfig(p.CheckRequest{
		Urn: "urn:pulumi:dev::overlay-fleet::pulumi:providers:overlay-fleet::box1",
		Inputs: property.NewMap(map[string]property.Value{
			"host":    property.New("box1.lan"),
			"hostKey": property.New("ssh-ed25519 garbage"),
			"agent":   property.New(true),
			"version": property.New("0.1.0"), // what the engine adds for an explicit provider
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Failures) != 1 || resp.Failures[0].Property != "hostKey" {
		t.Errorf("failures %+v, want one on hostKey", resp.Failures)
	}
}

func TestSchema(t *testing.T) {
	s, err := integration.NewServer(t.Context(), Name, semver.MustParse("0.1.0"), integration.WithProvider(New()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.GetSchema(p.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Name   string `json:"name"`
		Config struct {
			Variables map[string]struct {
				Secret      bool   `json:"secret"`
				Description string `json:"description"`
			} `json:"variables"`
		} `json:"config"`
		Provider struct {
			RequiredInputs []string `json:"requiredInputs"`
		} `json:"provider"`
		Resources map[string]struct {
			RequiredInputs []string `json:"requiredInputs"`
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(resp.Schema), &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Name != "overlay-fleet" {
		t.Errorf("name %q", schema.Name)
	}
	r, ok := schema.Resources["overlay-fleet:index:FstabEntry"]
	if !ok {
		t.Fatalf("no overlay-fleet:index:FstabEntry in %v", schema.Resources)
	}
	slices.Sort(r.RequiredInputs)
	if want := []string{"instanceId", "merged", "options"}; !slices.Equal(r.RequiredInputs, want) {
		t.Errorf("required inputs %v, want %v", r.RequiredInputs, want)
	}
	if !schema.Config.Variables["privateKey"].Secret {
		t.Error("privateKey is not secret in the schema")
	}
	for name, v := range schema.Config.Variables {
		if v.Description == "" {
			t.Errorf("config %s has no description", name)
		}
	}
	slices.Sort(schema.Provider.RequiredInputs)
	if want := []string{"host", "hostKey"}; !slices.Equal(schema.Provider.RequiredInputs, want) {
		t.Errorf("required config %v, want %v", schema.Provider.RequiredInputs, want)
	}
}

// TestUnknownInputsInPreview: inputs that are still unknown during a preview (outputs of
// other resources) pass the check and preview as unknown.
func TestUnknownInputsInPreview(t *testing.T) {
	s, err := integration.NewServer(t.Context(), Name, semver.MustParse("0.1.0"), integration.WithProvider(New()))
	if err != nil {
		t.Fatal(err)
	}
	inputs := property.NewMap(map[string]property.Value{
		"instanceId": property.New("box1/ttnode1"),
		"merged":     property.New(property.Computed),
		"options":    property.New(property.Computed),
	})
	checked, err := s.Check(p.CheckRequest{Urn: entryURN, Inputs: inputs})
	if err != nil || len(checked.Failures) > 0 {
		t.Fatalf("check: %v %v", err, checked.Failures)
	}
	created, err := s.Create(p.CreateRequest{Urn: entryURN, Properties: checked.Inputs, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"merged", "options", "line"} {
		if !created.Properties.Get(k).IsComputed() {
			t.Errorf("%s is %v in the preview, want unknown", k, created.Properties.Get(k))
		}
	}
}

// configuredOverSSH is a provider served as the engine serves it, its config checked (with
// its defaults) and configured for an in-process SSH server whose commands handle answers,
// after the bootstrap's probe (withBootstrap); it returns the server, the SSH server and the
// checked config.
func configuredOverSSH(t *testing.T, handle sshtest.Handler) (integration.Server, *sshtest.Server, property.Map) {
	t.Helper()
	ssh := sshtest.Start(t, withBootstrap(t, handle))
	s, err := integration.NewServer(t.Context(), Name, semver.MustParse("0.1.0"), integration.WithProvider(New()))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.CheckConfig(p.CheckRequest{
		Urn: "urn:pulumi:dev::overlay-fleet::pulumi:providers:overlay-fleet::box1",
		Inputs: property.NewMap(map[string]property.Value{
			"host": property.New(ssh.Host), "port": property.New(float64(ssh.Port)),
			"hostKey": property.New(ssh.HostKey), "privateKey": property.New(ssh.ClientKey),
		}),
	})
	if err != nil || len(cfg.Failures) > 0 {
		t.Fatalf("check config: %v %v", err, cfg.Failures)
	}
	if err := s.Configure(p.ConfigureRequest{Args: cfg.Inputs}); err != nil {
		t.Fatal(err)
	}
	return s, ssh, cfg.Inputs
}
