package box

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"overlay-fleet/provider/internal/sshtest"
)

// guard bounds every wait in these tests, so a bug fails a test instead of hanging it.
const guard = 20 * time.Second

// echo answers "echo ..." with its stdin and "fail" like the agent does on failure.
func echo(cmd string, stdin []byte) (string, string, int) {
	switch {
	case strings.HasPrefix(cmd, "echo"):
		return cmd + "|" + string(stdin), "", 0
	case cmd == "fail":
		return "", "a warning first\nfstab-entry: /etc/fstab line 3: not an overlay line\n", 1
	}
	return "", "sh: " + cmd + ": not found\n", 127
}

func newClient(t *testing.T, s *sshtest.Server, edit func(*Options)) *Client {
	t.Helper()
	o := Options{Host: s.Host, Port: s.Port, User: "root", HostKey: s.HostKey, PrivateKey: s.ClientKey}
	if edit != nil {
		edit(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRunLazyOneConnection(t *testing.T) {
	s := sshtest.Start(t, echo)
	c := newClient(t, s, nil)
	if n := s.Connections(); n != 0 {
		t.Fatalf("New connected: %d connections", n)
	}
	ctx := t.Context()
	for i := range 3 {
		out, err := c.Run(ctx, []string{"echo", "a b", strconv.Itoa(i)}, []byte(`{"x":1}`))
		if err != nil {
			t.Fatal(err)
		}
		if want := "echo 'a b' " + strconv.Itoa(i) + `|{"x":1}`; string(out) != want {
			t.Errorf("got %q, want %q", out, want)
		}
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("%d connections for 3 runs, want 1", n)
	}
}

func TestRunRemoteError(t *testing.T) {
	s := sshtest.Start(t, echo)
	c := newClient(t, s, nil)
	_, err := c.Run(t.Context(), []string{"fail"}, nil)
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("got %v (%T), want a *RemoteError", err, err)
	}
	if re.ExitStatus != 1 || re.Stderr != "fstab-entry: /etc/fstab line 3: not an overlay line" {
		t.Errorf("got %+v", re)
	}
	msg := err.Error()
	for _, want := range []string{c.Addr(), "exit status 1", "not an overlay line"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "a warning first") {
		t.Errorf("%q carries more than the last stderr line", msg)
	}
}

func TestHostKeyPinned(t *testing.T) {
	s := sshtest.Start(t, echo)
	other, _ := sshtest.NewKey(t)
	c := newClient(t, s, func(o *Options) { o.HostKey = sshtest.AuthorizedKey(other.PublicKey()) + " other-box" })
	_, err := c.Run(t.Context(), []string{"echo"}, nil)
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("got %v, want a *HostKeyError", err)
	}
	if !strings.Contains(err.Error(), c.Addr()) || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("message %q should name %s and refuse", err, c.Addr())
	}
}

func TestAgentAuth(t *testing.T) {
	s := sshtest.Start(t, echo)
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: s.ClientSigner}); err != nil {
		t.Fatal(err)
	}
	sock := t.TempDir() + "/agent.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(kr, conn); _ = conn.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	c := newClient(t, s, func(o *Options) { o.PrivateKey = ""; o.Agent = true })
	if _, err := c.Run(t.Context(), []string{"echo"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConnectErrorNamesAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	_ = ln.Close() // nothing listens there now
	signer, _ := sshtest.NewKey(t)
	_, key := sshtest.NewKey(t)
	c, err := New(Options{Host: "127.0.0.1", Port: addr.Port, HostKey: sshtest.AuthorizedKey(signer.PublicKey()),
		PrivateKey: pemOf(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Run(t.Context(), []string{"echo"}, nil)
	if err == nil || !strings.Contains(err.Error(), "connect to "+addr.String()) {
		t.Errorf("got %v, want an error naming %s", err, addr)
	}
}

// TestConcurrentRuns runs more commands at once than the session cap: they share one
// connection, and exactly DefaultMaxSessions are open at the peak.
func TestConcurrentRuns(t *testing.T) {
	const runs = DefaultMaxSessions + 3
	var (
		mu           sync.Mutex
		active, peak int
		started      = make(chan struct{}, runs)
		release      = make(chan struct{})
	)
	s := sshtest.Start(t, func(cmd string, stdin []byte) (string, string, int) {
		mu.Lock()
		active++
		peak = max(peak, active)
		mu.Unlock()
		started <- struct{}{}
		<-release
		mu.Lock()
		active--
		mu.Unlock()
		return "ok", "", 0
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	c := newClient(t, s, nil)

	errs := make(chan error, runs)
	for range runs {
		go func() {
			_, err := c.Run(t.Context(), []string{"wait"}, nil)
			errs <- err
		}()
	}
	for range DefaultMaxSessions { // all of these are open at the same time
		select {
		case <-started:
		case <-time.After(guard):
			t.Fatal("the sessions did not run concurrently")
		}
	}
	close(release)
	for range runs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if peak != DefaultMaxSessions {
		t.Errorf("peak of %d sessions at once, want %d", peak, DefaultMaxSessions)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestRunCancelled(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := sshtest.Start(t, func(string, []byte) (string, string, int) {
		close(started)
		<-release
		return "", "", 0
	})
	t.Cleanup(func() { close(release) })
	c := newClient(t, s, nil)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	_, err := c.Run(ctx, []string{"block"}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestRedialAfterDrop(t *testing.T) {
	s := sshtest.Start(t, echo)
	c := newClient(t, s, nil)
	if _, err := c.Run(t.Context(), []string{"echo"}, nil); err != nil {
		t.Fatal(err)
	}
	s.DropConnections()
	if _, err := c.Run(t.Context(), []string{"echo"}, nil); err != nil {
		t.Fatalf("run after the box dropped the connection: %v", err)
	}
	if n := s.Connections(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestNewValidates(t *testing.T) {
	signer, _ := sshtest.NewKey(t)
	_, priv := sshtest.NewKey(t)
	hostKey, key := sshtest.AuthorizedKey(signer.PublicKey()), pemOf(t, priv)
	tests := []struct {
		name string
		o    Options
		want string // "" = valid
	}{
		{"key", Options{Host: "h", HostKey: hostKey, PrivateKey: key}, ""},
		{"agent", Options{Host: "h", HostKey: hostKey, Agent: true}, ""},
		{"no host", Options{HostKey: hostKey, Agent: true}, "no host"},
		{"no host key", Options{Host: "h", Agent: true}, "no host key"},
		{"bad host key", Options{Host: "h", HostKey: "ssh-ed25519 notbase64", Agent: true}, "authorized_keys"},
		{"two host keys", Options{Host: "h", HostKey: hostKey + "\n" + hostKey, Agent: true}, "more than one"},
		{"both auths", Options{Host: "h", HostKey: hostKey, PrivateKey: key, Agent: true}, "both"},
		{"no auth", Options{Host: "h", HostKey: hostKey}, "no authentication"},
		{"bad private key", Options{Host: "h", HostKey: hostKey, PrivateKey: "nope"}, "not a private key"},
		{"bad port", Options{Host: "h", Port: 70000, HostKey: hostKey, Agent: true}, "not a TCP port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func pemOf(t *testing.T, key ed25519.PrivateKey) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block))
}
