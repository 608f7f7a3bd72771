package provider

import (
	"context"
	"fmt"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"

	"overlay-fleet/provider/internal/box"
)

// Config is the provider configuration: one box and how to reach it over SSH. A program
// declares one explicit provider per box; its process holds one SSH connection.
type Config struct {
	Host       string  `pulumi:"host"`
	Port       int     `pulumi:"port,optional"`
	User       string  `pulumi:"user,optional"`
	HostKey    string  `pulumi:"hostKey"`
	PrivateKey *string `pulumi:"privateKey,optional" provider:"secret"`
	Agent      bool    `pulumi:"agent,optional"`
	AgentPath  string  `pulumi:"agentPath,optional"`

	client *box.Client // made by Configure, dialled on first use
	agent  agentInstaller
}

var (
	_ infer.Annotated            = (*Config)(nil)
	_ infer.CustomCheck[*Config] = (*Config)(nil)
	_ infer.CustomConfigure      = (*Config)(nil)
)

// Annotate documents the configuration for the schema and the SDKs.
func (c *Config) Annotate(a infer.Annotator) {
	a.Describe(&c, "One box, reached over SSH. Declare one explicit provider per box: each "+
		"provider process holds one SSH connection to its box, made on first use (a preview "+
		"that only diffs makes none), and runs every operation as a session on it.")
	a.Describe(&c.Host, "Address or name of the box.")
	a.Describe(&c.Port, "SSH port of the box.")
	a.SetDefault(&c.Port, 22)
	a.Describe(&c.User, "User to log in as on the box.")
	a.SetDefault(&c.User, "root")
	a.Describe(&c.HostKey, "The box's public SSH host key in authorized_keys form, e.g. "+
		"`ssh-ed25519 AAAA...` (a trailing comment is allowed). The connection is refused "+
		"unless the box presents exactly this key.")
	a.Describe(&c.PrivateKey, "Private key to log in with, in PEM or OpenSSH form, unencrypted. "+
		"Give this or set `agent`, not both.")
	a.Describe(&c.Agent, "Log in with the keys of the ssh-agent at `SSH_AUTH_SOCK` instead of "+
		"`privateKey`.")
	a.Describe(&c.AgentPath, "Path of a box agent binary already on the box, to run instead of "+
		"the one this provider ships. Unset (the rule), the provider installs its own agent, built "+
		"for the box's architecture, under `/var/lib/overlay-fleet/agent/<sha256>/` on first use "+
		"(once per version) and checks its sha256 once per pulumi operation.")
}

// Check applies the defaults and reports each invalid field by name.
func (*Config) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[*Config], error) {
	// The engine sends an explicit provider's plugin version among its inputs: no field of ours.
	c, failures, err := infer.DefaultCheck[*Config](ctx, req.NewInputs.Delete("version"))
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[*Config]{Inputs: c, Failures: failures}, err
	}
	return infer.CheckResponse[*Config]{Inputs: c, Failures: c.validate()}, nil
}

// Configure makes the box client without connecting: the first operation that needs the
// box dials it.
func (c *Config) Configure(context.Context) error {
	c.applyDefaults()
	if failures := c.validate(); len(failures) > 0 {
		f := failures[0]
		return fmt.Errorf("provider config %s: %s", f.Property, f.Reason)
	}
	client, err := box.New(c.boxOptions())
	if err != nil {
		return fmt.Errorf("provider config: %w", err)
	}
	c.client = client
	return nil
}

// applyDefaults fills what Check fills, for a Configure that is given unchecked config.
func (c *Config) applyDefaults() {
	if c.Port == 0 {
		c.Port = 22
	}
	if c.User == "" {
		c.User = "root"
	}
}

// validate checks the config without touching the network.
func (c *Config) validate() []p.CheckFailure {
	var fs []p.CheckFailure
	fail := func(prop, format string, args ...any) {
		fs = append(fs, p.CheckFailure{Property: prop, Reason: fmt.Sprintf(format, args...)})
	}
	if c.Host == "" {
		fail("host", "the box's address is required")
	}
	if c.Port < 1 || c.Port > 65535 {
		fail("port", "%d is not a TCP port", c.Port)
	}
	if _, err := box.ParseHostKey(c.HostKey); err != nil {
		fail("hostKey", "%v", err)
	}
	hasKey := c.PrivateKey != nil && *c.PrivateKey != ""
	switch {
	case hasKey && c.Agent:
		fail("privateKey", "give privateKey or set agent, not both")
	case !hasKey && !c.Agent:
		fail("privateKey", "give privateKey, or set agent to log in through SSH_AUTH_SOCK")
	case hasKey:
		if _, err := box.ParsePrivateKey(*c.PrivateKey); err != nil {
			fail("privateKey", "%v", err)
		}
	}
	if c.AgentPath != "" && c.AgentPath[0] != '/' {
		fail("agentPath", "%q is not an absolute path", c.AgentPath)
	}
	return fs
}

func (c *Config) boxOptions() box.Options {
	o := box.Options{Host: c.Host, Port: c.Port, User: c.User, HostKey: c.HostKey, Agent: c.Agent}
	if c.PrivateKey != nil {
		o.PrivateKey = *c.PrivateKey
	}
	return o
}

// Box is what a resource needs to act on its box.
type Box struct {
	Runner    box.Runner
	AgentPath string
}

// boxFromConfig is how resources find their box in a running provider.
func boxFromConfig(ctx context.Context) (Box, error) {
	c := infer.GetConfig[*Config](ctx)
	if c == nil || c.client == nil {
		return Box{}, fmt.Errorf("the overlay-fleet provider is not configured")
	}
	if c.AgentPath != "" {
		return Box{Runner: c.client, AgentPath: c.AgentPath}, nil
	}
	path, err := c.agent.ensure(ctx, c.client)
	if err != nil {
		return Box{}, err
	}
	return Box{Runner: c.client, AgentPath: path}, nil
}
