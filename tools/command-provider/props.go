package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Property names of command:remote:Command, as in @pulumi/command 1.2.1 (remote/command.js).
const (
	keyConnection             = "connection"
	keyCreate                 = "create"
	keyUpdate                 = "update"
	keyDelete                 = "delete"
	keyTriggers               = "triggers"
	keyEnvironment            = "environment"
	keyAddPreviousOutputInEnv = "addPreviousOutputInEnv"
	keyStdin                  = "stdin"
	keyLogging                = "logging"
	keyStdout                 = "stdout"
	keyStderr                 = "stderr"
)

// Defaults of the connection object, as upstream (the SDK fills them in too).
const (
	defaultPort           = 22
	defaultUser           = "root"
	defaultDialErrorLimit = 10
	defaultPerDialTimeout = 15 // seconds
)

// Logging values (enum remote.Logging).
const (
	logStdout          = "stdout"
	logStderr          = "stderr"
	logStdoutAndStderr = "stdoutAndStderr"
	logNone            = "none"
)

// connection is the parsed `connection` (or `connection.proxy`) object.
type connection struct {
	Host               string
	Port               int
	User               string
	Password           *string
	PrivateKey         *string
	PrivateKeyPassword *string
	AgentSocketPath    *string
	HostKey            *string
	DialErrorLimit     int // -1: unlimited
	PerDialTimeout     int // seconds, 0: no limit
	Proxy              *connection
}

func (c *connection) addr() string {
	return joinHostPort(c.Host, c.Port)
}

// commandArgs is the parsed set of inputs (or the inputs part of the state).
type commandArgs struct {
	Connection             *connection
	Create, Update, Delete *string
	Environment            map[string]string
	AddPreviousOutputInEnv bool
	Stdin                  *string
	Logging                string
	// Stdout and Stderr are only set when parsing a state (outputs).
	Stdout, Stderr string
}

// unwrap strips secret and (known) output-value wrappers.
func unwrap(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput() && v.OutputValue().Known:
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}

// present reports whether key is set to something other than null.
func present(m resource.PropertyMap, key string) bool {
	v, ok := m[resource.PropertyKey(key)]
	return ok && !unwrap(v).IsNull()
}

type fieldError struct {
	Property string
	Reason   string
}

func (e *fieldError) Error() string { return fmt.Sprintf("%s: %s", e.Property, e.Reason) }

func optString(m resource.PropertyMap, key, path string) (*string, error) {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return nil, nil
	}
	v = unwrap(v)
	switch {
	case v.IsNull():
		return nil, nil
	case v.IsString():
		s := v.StringValue()
		return &s, nil
	case v.ContainsUnknowns():
		return nil, &fieldError{path + key, "value is not known yet"}
	default:
		return nil, &fieldError{path + key, fmt.Sprintf("expected a string, got %s", v.TypeString())}
	}
}

func optInt(m resource.PropertyMap, key, path string, def int) (int, error) {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return def, nil
	}
	v = unwrap(v)
	switch {
	case v.IsNull():
		return def, nil
	case v.IsNumber():
		f := v.NumberValue()
		if f != math.Trunc(f) || math.Abs(f) > 1e9 {
			return 0, &fieldError{path + key, fmt.Sprintf("expected an integer, got %v", f)}
		}
		return int(f), nil
	case v.IsString(): // tolerate "22"
		var n int
		if _, err := fmt.Sscanf(v.StringValue(), "%d", &n); err != nil {
			return 0, &fieldError{path + key, fmt.Sprintf("expected an integer, got %q", v.StringValue())}
		}
		return n, nil
	case v.ContainsUnknowns():
		return 0, &fieldError{path + key, "value is not known yet"}
	default:
		return 0, &fieldError{path + key, fmt.Sprintf("expected a number, got %s", v.TypeString())}
	}
}

func parseConnection(v resource.PropertyValue, path string, allowProxy bool) (*connection, error) {
	v = unwrap(v)
	if v.IsNull() {
		return nil, &fieldError{strings.TrimSuffix(path, "."), "missing required property"}
	}
	if !v.IsObject() {
		if v.ContainsUnknowns() {
			return nil, &fieldError{strings.TrimSuffix(path, "."), "value is not known yet"}
		}
		return nil, &fieldError{strings.TrimSuffix(path, "."), fmt.Sprintf("expected an object, got %s", v.TypeString())}
	}
	m := v.ObjectValue()
	c := &connection{}
	host, err := optString(m, "host", path)
	if err != nil {
		return nil, err
	}
	if host == nil || *host == "" {
		return nil, &fieldError{path + "host", "missing required property"}
	}
	c.Host = *host
	if c.Port, err = optInt(m, "port", path, defaultPort); err != nil {
		return nil, err
	}
	if c.Port <= 0 || c.Port > 65535 {
		return nil, &fieldError{path + "port", fmt.Sprintf("%d is not a TCP port", c.Port)}
	}
	user, err := optString(m, "user", path)
	if err != nil {
		return nil, err
	}
	c.User = defaultUser
	if user != nil && *user != "" {
		c.User = *user
	}
	for _, f := range []struct {
		key string
		dst **string
	}{
		{"password", &c.Password}, {"privateKey", &c.PrivateKey}, {"privateKeyPassword", &c.PrivateKeyPassword},
		{"agentSocketPath", &c.AgentSocketPath}, {"hostKey", &c.HostKey},
	} {
		if *f.dst, err = optString(m, f.key, path); err != nil {
			return nil, err
		}
	}
	if c.DialErrorLimit, err = optInt(m, "dialErrorLimit", path, defaultDialErrorLimit); err != nil {
		return nil, err
	}
	if c.DialErrorLimit < -1 {
		return nil, &fieldError{path + "dialErrorLimit", fmt.Sprintf("%d: use a count, or -1 for unlimited", c.DialErrorLimit)}
	}
	if c.PerDialTimeout, err = optInt(m, "perDialTimeout", path, defaultPerDialTimeout); err != nil {
		return nil, err
	}
	if c.PerDialTimeout < 0 {
		return nil, &fieldError{path + "perDialTimeout", fmt.Sprintf("%d: use seconds, or 0 for no limit", c.PerDialTimeout)}
	}
	if c.HostKey != nil {
		if _, err := parseHostKey(*c.HostKey); err != nil {
			return nil, &fieldError{path + "hostKey", err.Error()}
		}
	}
	if pv, ok := m["proxy"]; ok && !unwrap(pv).IsNull() {
		if !allowProxy {
			return nil, &fieldError{path + "proxy", "a proxy cannot have a proxy"}
		}
		if c.Proxy, err = parseConnection(pv, path+"proxy.", false); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseArgs reads the inputs of a command (or a state: then stdout/stderr are read too).
func parseArgs(m resource.PropertyMap) (*commandArgs, error) {
	a := &commandArgs{AddPreviousOutputInEnv: true, Logging: logStdoutAndStderr}
	var err error
	if a.Connection, err = parseConnection(m[keyConnection], keyConnection+".", true); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		key string
		dst **string
	}{{keyCreate, &a.Create}, {keyUpdate, &a.Update}, {keyDelete, &a.Delete}, {keyStdin, &a.Stdin}} {
		if *f.dst, err = optString(m, f.key, ""); err != nil {
			return nil, err
		}
	}
	if v := unwrap(m[keyEnvironment]); !v.IsNull() {
		if !v.IsObject() {
			return nil, &fieldError{keyEnvironment, fmt.Sprintf("expected a map of strings, got %s", v.TypeString())}
		}
		a.Environment = map[string]string{}
		for k, ev := range v.ObjectValue() {
			s, err := optString(resource.PropertyMap{k: ev}, string(k), keyEnvironment+".")
			if err != nil {
				return nil, err
			}
			if s != nil {
				a.Environment[string(k)] = *s
			}
		}
	}
	if v := unwrap(m[keyAddPreviousOutputInEnv]); !v.IsNull() {
		if !v.IsBool() {
			return nil, &fieldError{keyAddPreviousOutputInEnv, fmt.Sprintf("expected a boolean, got %s", v.TypeString())}
		}
		a.AddPreviousOutputInEnv = v.BoolValue()
	}
	logging, err := optString(m, keyLogging, "")
	if err != nil {
		return nil, err
	}
	if logging != nil {
		switch *logging {
		case logStdout, logStderr, logStdoutAndStderr, logNone:
			a.Logging = *logging
		default:
			return nil, &fieldError{keyLogging, fmt.Sprintf("%q is not one of stdout, stderr, stdoutAndStderr, none", *logging)}
		}
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{keyStdout, &a.Stdout}, {keyStderr, &a.Stderr}} {
		if v := unwrap(m[resource.PropertyKey(f.key)]); v.IsString() {
			*f.dst = v.StringValue()
		}
	}
	return a, nil
}

// checkInputs validates the known parts of the inputs; unknown values (preview) pass.
func checkInputs(m resource.PropertyMap) []*fieldError {
	var failures []*fieldError
	add := func(err error) {
		if fe, ok := err.(*fieldError); ok {
			if !strings.HasSuffix(fe.Reason, "not known yet") {
				failures = append(failures, fe)
			}
		} else if err != nil {
			failures = append(failures, &fieldError{"", err.Error()})
		}
	}
	cv := m[keyConnection]
	if !unwrap(cv).ContainsUnknowns() {
		_, err := parseConnection(cv, keyConnection+".", true)
		add(err)
	} else if obj := unwrap(cv); obj.IsObject() {
		// Partly known: check what we can.
		if hk, err := optString(obj.ObjectValue(), "hostKey", "connection."); err == nil && hk != nil {
			if _, err := parseHostKey(*hk); err != nil {
				add(&fieldError{"connection.hostKey", err.Error()})
			}
		}
	}
	rest := resource.PropertyMap{}
	for k, v := range m {
		if k != keyConnection && !unwrap(v).ContainsUnknowns() {
			rest[k] = v
		}
	}
	rest[keyConnection] = resource.NewObjectProperty(resource.PropertyMap{"host": resource.NewStringProperty("x")})
	_, err := parseArgs(rest)
	add(err)
	return failures
}
