package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Environment variables with the previous run's output (addPreviousOutputInEnv), as upstream.
const (
	envPrevStdout = "PULUMI_COMMAND_STDOUT"
	envPrevStderr = "PULUMI_COMMAND_STDERR"
)

// reporter sends progress to the engine: status lines (ephemeral, shown next to the resource
// while it runs, as upstream) and warnings (kept in the output).
type reporter interface {
	Status(msg string)
	Warn(msg string)
}

type nopReporter struct{}

func (nopReporter) Status(string) {}
func (nopReporter) Warn(string)   {}

// runSpec is one command run.
type runSpec struct {
	Op          string // create, update or delete: for messages
	Command     string
	Conn        *connection
	Environment map[string]string
	Stdin       *string
	Logging     string
	// Previous output, set as PULUMI_COMMAND_STDOUT/STDERR when not empty.
	PrevStdout, PrevStderr string
}

// runRemote runs spec.Command over SSH (no PTY) and returns its stdout and stderr, each
// without one trailing newline, as upstream.
func runRemote(ctx context.Context, spec runSpec, rep reporter) (string, string, error) {
	if rep == nil {
		rep = nopReporter{}
	}
	client, err := dial(ctx, spec.Conn, rep.Status)
	if err != nil {
		return "", "", err
	}
	defer client.Close()
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()

	session, err := client.NewSession()
	if err != nil {
		return "", "", fmt.Errorf("ssh %s@%s: opening a session: %w", spec.Conn.User, spec.Conn.addr(), err)
	}
	defer session.Close()

	// environment goes through SSH "env" requests, which sshd refuses unless AcceptEnv lists
	// the variable. Upstream ignores the refusal silently; we warn.
	names := make([]string, 0, len(spec.Environment))
	for k := range spec.Environment {
		names = append(names, k)
	}
	sort.Strings(names)
	var refused []string
	for _, k := range names {
		if err := session.Setenv(k, spec.Environment[k]); err != nil {
			refused = append(refused, k)
		}
	}
	if len(refused) > 0 {
		rep.Warn(fmt.Sprintf("sshd on %s refused the environment variable(s) %s (not in its AcceptEnv): the command runs without them",
			spec.Conn.addr(), strings.Join(refused, ", ")))
	}
	if spec.PrevStdout != "" {
		_ = session.Setenv(envPrevStdout, spec.PrevStdout) // ignored when refused, as upstream
	}
	if spec.PrevStderr != "" {
		_ = session.Setenv(envPrevStderr, spec.PrevStderr)
	}
	if spec.Stdin != nil && *spec.Stdin != "" {
		session.Stdin = strings.NewReader(*spec.Stdin)
	}

	var stdout, stderr bytes.Buffer
	tail := &tailBuffer{max: 64 << 10}
	throttle := &statusThrottle{emit: rep.Status, every: 200 * time.Millisecond}
	outLines := &lineSplitter{}
	errLines := &lineSplitter{}
	if spec.Logging == logStdout || spec.Logging == logStdoutAndStderr {
		outLines.emit = throttle.offer
	}
	if spec.Logging == logStderr || spec.Logging == logStdoutAndStderr {
		errLines.emit = throttle.offer
	}
	session.Stdout = multi(&stdout, tail, outLines)
	session.Stderr = multi(&stderr, tail, errLines)

	err = session.Run(spec.Command)
	outLines.flush()
	errLines.flush()
	throttle.flush()

	outS := strings.TrimSuffix(validUTF8(stdout.String()), "\n")
	errS := strings.TrimSuffix(validUTF8(stderr.String()), "\n")
	if err != nil {
		if ctx.Err() != nil {
			return outS, errS, fmt.Errorf("%s on %s@%s interrupted: %w", spec.Op, spec.Conn.User, spec.Conn.addr(), ctx.Err())
		}
		return outS, errS, commandError(err, spec, outS, errS, tail.String())
	}
	return outS, errS, nil
}

// commandError makes the message the engine shows for a failed command: the exit status and
// the last line of stderr first, then where it ran and the tail of the output.
func commandError(err error, spec runSpec, stdout, stderr, tail string) error {
	var head string
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case errors.As(err, &exit) && exit.Signal() != "":
		head = fmt.Sprintf("command killed by signal %s", exit.Signal())
	case errors.As(err, &exit):
		head = fmt.Sprintf("command exited %d", exit.ExitStatus())
	case errors.As(err, &missing):
		head = "command ended without an exit status (connection lost?)"
	default:
		head = fmt.Sprintf("command failed: %v", err)
	}
	last := lastLine(stderr)
	if last == "" {
		last = lastLine(stdout)
	}
	msg := head
	if last != "" {
		msg += ": " + last
	}
	msg += fmt.Sprintf("\n  ran %s on %s@%s", spec.Op, spec.Conn.User, spec.Conn.addr())
	lines := strings.Split(strings.TrimRight(tail, "\n"), "\n")
	if tail == "" || (len(lines) == 1 && strings.TrimSpace(lines[0]) == last) {
		return errors.New(msg)
	}
	const maxLines = 20
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
		msg += fmt.Sprintf("; last %d lines of output:", maxLines)
	} else {
		msg += "; output:"
	}
	for _, l := range lines {
		msg += "\n  | " + truncate(l, 400)
	}
	return errors.New(msg)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return truncate(l, 400)
		}
	}
	return ""
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// multiWriter writes to every writer; the session writes stdout and stderr from separate
// goroutines, so shared writers (tail) lock themselves.
type multiWriter []interface{ Write([]byte) (int, error) }

func multi(w ...interface{ Write([]byte) (int, error) }) multiWriter { return w }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		if _, err := w.Write(p); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes of the combined output.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return validUTF8(string(t.buf))
}

// lineSplitter calls emit for each complete line (emit nil: discard).
type lineSplitter struct {
	buf  []byte
	emit func(string)
}

func (l *lineSplitter) Write(p []byte) (int, error) {
	if l.emit == nil {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 { // a very long line: show what we have
		l.emit(string(l.buf))
		l.buf = nil
	}
	return len(p), nil
}

func (l *lineSplitter) flush() {
	if l.emit != nil && len(l.buf) > 0 {
		l.emit(string(l.buf))
	}
	l.buf = nil
}

// statusThrottle sends at most one status line per `every` (a status line replaces the
// previous one in the display anyway), and the last line at the end.
type statusThrottle struct {
	mu      sync.Mutex
	emit    func(string)
	every   time.Duration
	last    time.Time
	pending string
}

func (s *statusThrottle) offer(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.last) >= s.every {
		s.last = now
		s.pending = ""
		s.emit(truncate(line, 300))
	} else {
		s.pending = line
	}
}

func (s *statusThrottle) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != "" {
		s.emit(truncate(s.pending, 300))
		s.pending = ""
	}
}
