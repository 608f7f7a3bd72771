// Package docker drives the box's own Docker Engine through the box's own docker CLI, and owns
// the readings of its `inspect` JSON: the macvlan network of a box and the container of each
// instance, each with exactly its planned hostname, IP and MAC.
//
// The CLI of the box, not an API client of ours: engines differ (API 1.41 on Docker 20.10, 1.56
// on Docker 29), a MAC given on a network connect is ignored below API 1.54, and the per-endpoint
// MAC needs API 1.44 while an old engine wants the container-wide one; the engine's own CLI
// (`docker run --network N --ip A --mac-address M`) speaks to it in the form it understands. So
// a newer CLI of ours could refuse `--mac-address` against an old engine, the box's cannot.
//
// Every call has a timeout: a hanging engine (`docker ps` that never answers) fails the call,
// with the call named, instead of holding the box's docker lock for ever.
package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Kind says what a call does to the engine, which picks its timeout.
type Kind int

const (
	// Query reads (inspect, ls, ps).
	Query Kind = iota
	// Change changes the engine (run, start, stop, rm, update, network create/rm).
	Change
)

// Default timeouts of one docker call.
const (
	DefaultQueryTimeout  = 30 * time.Second
	DefaultChangeTimeout = 3 * time.Minute
)

// Runner runs one docker CLI call and returns its stdout; a failure is an *Error.
type Runner interface {
	Run(ctx context.Context, kind Kind, args ...string) ([]byte, error)
}

// CLI is the box's docker CLI.
type CLI struct {
	// Program is the docker CLI; "" finds `docker` on PATH (or in /usr/bin, /usr/local/bin).
	Program string
	// Env is the environment of the calls; nil means the agent's own.
	Env []string
	// QueryTimeout and ChangeTimeout bound one call of each Kind; 0 means the default.
	QueryTimeout, ChangeTimeout time.Duration
}

var _ Runner = (*CLI)(nil)

// maxOutput bounds what a call may write on stdout (inspect of one object is a few KiB).
const maxOutput = 16 << 20

// Error is a docker call that failed.
type Error struct {
	// Args are the CLI's arguments (without the program).
	Args []string
	// ExitStatus is the exit status; -1 when the CLI did not exit by itself.
	ExitStatus int
	// Stderr is what the CLI wrote on stderr, trimmed, on one line.
	Stderr string
	// Timeout is set when the call was killed after this long without an answer.
	Timeout time.Duration
	// Err is the error of starting or waiting for the CLI.
	Err error
}

func (e *Error) Error() string {
	call := "docker " + callName(e.Args)
	switch {
	case e.Timeout > 0:
		return fmt.Sprintf("%s: no answer from the docker engine within %s (killed; is dockerd hanging?)", call, e.Timeout)
	case e.ExitStatus < 0:
		return fmt.Sprintf("%s: %v", call, e.Err)
	case e.Stderr == "":
		return fmt.Sprintf("%s: exit status %d (nothing on stderr)", call, e.ExitStatus)
	default:
		return fmt.Sprintf("%s: %s", call, e.Stderr)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// callName shortens the arguments for messages: the subcommands and the object, not every flag.
func callName(args []string) string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		words = append(words, a)
		if len(words) == 3 {
			break
		}
	}
	return strings.Join(words, " ")
}

// IsNotFound says that a docker call failed because the object it names does not exist
// ("No such container", "No such network", "network x not found", "No such image").
func IsNotFound(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Timeout > 0 || e.ExitStatus <= 0 {
		return false
	}
	s := strings.ToLower(e.Stderr)
	return strings.Contains(s, "no such ") || strings.Contains(s, "not found")
}

// IsTimeout says that a docker call was killed after its timeout.
func IsTimeout(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Timeout > 0
}

// program finds the docker CLI.
func (c *CLI) program() (string, error) {
	if c.Program != "" {
		return c.Program, nil
	}
	if p, err := exec.LookPath("docker"); err == nil {
		return p, nil
	}
	// A non-login SSH session may have a short PATH.
	for _, dir := range []string{"/usr/bin", "/usr/local/bin", "/bin", "/snap/bin"} {
		p := filepath.Join(dir, "docker")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("docker is not installed on this box (no docker CLI on PATH): containers need Docker Engine")
}

// Run runs `docker <args>` with the timeout of its kind. The CLI runs in its own process group,
// killed as a whole when the timeout passes or ctx ends.
func (c *CLI) Run(ctx context.Context, kind Kind, args ...string) ([]byte, error) {
	prog, err := c.program()
	if err != nil {
		return nil, err
	}
	timeout := c.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	if kind == Change {
		timeout = c.ChangeTimeout
		if timeout <= 0 {
			timeout = DefaultChangeTimeout
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(callCtx, prog, args...)
	cmd.Env = c.Env
	cmd.Stdin = nil
	var stdout limitedBuffer
	var stderr limitedBuffer
	stdout.max, stderr.max = maxOutput, 64<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a CLI plugin or a wrapper script's children too.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Children that keep stdout open must not hold Wait after the kill.
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	if runErr == nil {
		if stdout.over {
			return nil, &Error{Args: args, ExitStatus: 0, Err: fmt.Errorf("more than %d bytes on stdout", maxOutput),
				Stderr: fmt.Sprintf("more than %d bytes on stdout", maxOutput)}
		}
		return stdout.Bytes(), nil
	}
	e := &Error{Args: args, ExitStatus: -1, Stderr: oneLine(stderr.String()), Err: runErr}
	if callCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		e.Timeout = timeout
		return nil, e
	}
	if ctx.Err() != nil {
		e.Err = fmt.Errorf("cancelled: %w", ctx.Err())
		return nil, e
	}
	var exit *exec.ExitError
	if errors.As(runErr, &exit) && exit.Exited() {
		e.ExitStatus = exit.ExitCode()
	}
	return nil, e
}

// limitedBuffer keeps at most max bytes and notes when more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// oneLine joins the non-empty lines of s with "; ".
func oneLine(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}
