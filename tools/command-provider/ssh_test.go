package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// ---- host keys (no sshd needed) ----------------------------------------------------------------

func newEd25519(t *testing.T) (ssh.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp, priv
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func TestParseHostKey(t *testing.T) {
	k, _ := newEd25519(t)
	line := authorizedLine(k)
	for _, s := range []string{line, line + " root@box", "  " + line + "\n", "198.18.1.2 " + line, "[h]:2222 " + line} {
		got, err := parseHostKey(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if string(got.Marshal()) != string(k.Marshal()) {
			t.Fatalf("%q: parsed a different key", s)
		}
	}
	for _, s := range []string{"", "ssh-ed25519", "ssh-ed25519 AAAA!!", "SHA256:abcdef"} {
		if _, err := parseHostKey(s); err == nil {
			t.Fatalf("%q: want an error", s)
		}
	}
}

func TestHostKeyCallbackRefusesMismatch(t *testing.T) {
	pinned, _ := newEd25519(t)
	other, _ := newEd25519(t)
	cb := hostKeyCallback(pinned)
	if err := cb("h:22", nil, pinned); err != nil {
		t.Fatalf("pinned key refused: %v", err)
	}
	err := cb("h:22", nil, other)
	var hk *hostKeyError
	if !errors.As(err, &hk) || !strings.Contains(err.Error(), "host key mismatch for h:22") ||
		!strings.Contains(err.Error(), ssh.FingerprintSHA256(other)) {
		t.Fatalf("want a mismatch error, got %v", err)
	}
	if !permanent(fmt.Errorf("ssh: handshake failed: %w", err)) {
		t.Fatal("a host key mismatch must not be retried")
	}
	// A TCP connect timeout matches context.DeadlineExceeded but must be retried.
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	if _, err := (&net.Dialer{Timeout: time.Nanosecond}).Dial("tcp", "192.0.2.1:22"); err != nil {
		timeout = err.(*net.OpError)
	}
	if permanent(timeout) {
		t.Fatalf("a dial timeout (%v) must be retried", timeout)
	}
	if hostKeyCallback(nil)("h:22", nil, other) != nil {
		t.Fatal("without a pinned key any key is accepted (as upstream)")
	}
	if got := hostKeyAlgorithms(pinned); len(got) != 1 || got[0] != ssh.KeyAlgoED25519 {
		t.Fatalf("algorithms %v", got)
	}
}

func TestCommandErrorMessage(t *testing.T) {
	spec := runSpec{Op: "create", Conn: &connection{User: "root", Host: "b", Port: 22}}
	err := commandError(&ssh.ExitError{Waitmsg: ssh.Waitmsg{}}, spec, "", "overlay-fleet: no such lower\n", "overlay-fleet: no such lower\n")
	if err.Error() != "command exited 0: overlay-fleet: no such lower\n  ran create on root@b:22" {
		t.Fatalf("got %q", err.Error())
	}
	var tail strings.Builder
	for i := range 30 {
		fmt.Fprintf(&tail, "line %d\n", i)
	}
	err = commandError(errors.New("boom"), spec, tail.String(), "", tail.String())
	if !strings.HasPrefix(err.Error(), "command failed: boom: line 29\n  ran create on root@b:22; last 20 lines of output:\n  | line 10") {
		t.Fatalf("got %q", err.Error())
	}
}

// ---- a throwaway sshd --------------------------------------------------------------------------

type testSSHD struct {
	dir      string
	port     int
	user     string
	key      string        // client private key (OpenSSH PEM)
	hostKey  ssh.PublicKey // ed25519
	hostKeyE ssh.PublicKey // ecdsa, also served
	cmd      *exec.Cmd
}

func writePrivate(t *testing.T, path string, priv any) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ensurePrivsepDir makes /run/sshd (sshd refuses to start without it); it is removed again
// at the end only if we made it and no other sshd runs.
func ensurePrivsepDir(t *testing.T) {
	const d = "/run/sshd"
	if _, err := os.Stat(d); err == nil {
		return
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Skipf("sshd needs %s: %v", d, err)
	}
	t.Cleanup(func() {
		procs, _ := filepath.Glob("/proc/[0-9]*/comm")
		for _, p := range procs {
			if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "sshd" {
				return
			}
		}
		os.Remove(d)
	})
}

func startSSHD(t *testing.T, extraConfig string) *testSSHD {
	t.Helper()
	if testing.Short() {
		t.Skip("sshd tests skipped with -short")
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
		if _, err := os.Stat(sshd); err != nil {
			t.Skip("no sshd on this machine")
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid == "0" {
		ensurePrivsepDir(t)
	}
	s := &testSSHD{dir: t.TempDir(), user: u.Username}
	hostPub, hostPriv := newEd25519(t)
	s.hostKey = hostPub
	writePrivate(t, filepath.Join(s.dir, "host_ed25519"), hostPriv)
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writePrivate(t, filepath.Join(s.dir, "host_ecdsa"), ek)
	if s.hostKeyE, err = ssh.NewPublicKey(&ek.PublicKey); err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv := newEd25519(t)
	block, _ := ssh.MarshalPrivateKey(clientPriv, "")
	s.key = string(pem.EncodeToMemory(block))
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd -D -e exits when the port is taken: retry with another one.
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %[2]s/host_ecdsa
HostKey %[2]s/host_ed25519
AuthorizedKeysFile %[2]s/authorized_keys
PidFile %[2]s/sshd.pid
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AcceptEnv PULUMI_COMMAND_* OF_TEST_*
LogLevel ERROR
%s
`, s.port, s.dir, extraConfig)
		cfgPath := filepath.Join(s.dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		s.cmd = exec.Command(sshd, "-D", "-e", "-f", cfgPath)
		var stderr strings.Builder
		s.cmd.Stderr = &stderr
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { s.cmd.Wait(); close(exited) }()
		up := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			select {
			case <-exited:
			default:
				if c, err := net.Dial("tcp", joinHostPort("127.0.0.1", s.port)); err == nil {
					c.Close()
					up = true
				}
			}
			if up {
				break
			}
			select {
			case <-exited:
				deadline = time.Time{}
			case <-time.After(50 * time.Millisecond):
			}
		}
		if up {
			t.Cleanup(func() { s.cmd.Process.Kill(); <-exited })
			return s
		}
		s.cmd.Process.Kill()
		<-exited
		if attempt == 3 {
			t.Fatalf("sshd did not start: %s", stderr.String())
		}
	}
}

func (s *testSSHD) conn() *connection {
	k := s.key
	hk := authorizedLine(s.hostKey)
	return &connection{
		Host: "127.0.0.1", Port: s.port, User: s.user, PrivateKey: &k, HostKey: &hk,
		DialErrorLimit: defaultDialErrorLimit, PerDialTimeout: defaultPerDialTimeout,
	}
}

type recReporter struct {
	mu            sync.Mutex
	status, warns []string
}

func (r *recReporter) Status(m string) { r.mu.Lock(); r.status = append(r.status, m); r.mu.Unlock() }
func (r *recReporter) Warn(m string)   { r.mu.Lock(); r.warns = append(r.warns, m); r.mu.Unlock() }

func str(s string) *string { return &s }

func TestSSHRun(t *testing.T) {
	s := startSSHD(t, "")
	ctx := context.Background()
	rep := &recReporter{}
	out, errOut, err := runRemote(ctx, runSpec{
		Op: "create", Conn: s.conn(), Logging: logStdoutAndStderr,
		Command:     `echo "out $OF_TEST_A"; echo err >&2; cat; printf 'prev=%s\n' "$PULUMI_COMMAND_STDOUT"; [ -t 0 ] && echo tty || echo notty`,
		Environment: map[string]string{"OF_TEST_A": "a b", "REFUSED_B": "x"},
		Stdin:       str("from stdin\n"),
		PrevStdout:  "old",
	}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if out != "out a b\nfrom stdin\nprev=old\nnotty" || errOut != "err" {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
	if len(rep.warns) != 1 || !strings.Contains(rep.warns[0], "REFUSED_B") || strings.Contains(rep.warns[0], "OF_TEST_A") {
		t.Fatalf("want one warning about REFUSED_B, got %v", rep.warns)
	}
	if len(rep.status) == 0 {
		t.Fatal("want output lines as status messages")
	}

	// logging none: nothing streamed, outputs still captured; one trailing newline trimmed.
	rep = &recReporter{}
	out, _, err = runRemote(ctx, runSpec{Op: "create", Conn: s.conn(), Logging: logNone, Command: `printf 'a\n\n'`}, rep)
	if err != nil || out != "a\n" || len(rep.status) != 0 {
		t.Fatalf("got %q %v %v", out, err, rep.status)
	}
}

func TestSSHFailure(t *testing.T) {
	s := startSSHD(t, "")
	_, _, err := runRemote(context.Background(), runSpec{
		Op: "update", Conn: s.conn(), Logging: logNone,
		Command: `echo working; echo "overlay-fleet: /srv/x is not a mount point" >&2; exit 3`,
	}, nil)
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "command exited 3: overlay-fleet: /srv/x is not a mount point\n") ||
		!strings.Contains(msg, "ran update on ") || !strings.Contains(msg, "| working") {
		t.Fatalf("unexpected message %q", msg)
	}
}

func TestSSHHostKeys(t *testing.T) {
	s := startSSHD(t, "")
	// The server also has an ECDSA key: pinning either works (the pinned type is negotiated).
	for _, k := range []ssh.PublicKey{s.hostKey, s.hostKeyE} {
		c := s.conn()
		c.HostKey = str(authorizedLine(k) + " comment")
		if out, _, err := runRemote(context.Background(), runSpec{Conn: c, Command: "echo ok"}, nil); err != nil || out != "ok" {
			t.Fatalf("%s: %q %v", k.Type(), out, err)
		}
	}
	// A wrong key is refused at once (not retried).
	wrong, _ := newEd25519(t)
	c := s.conn()
	c.HostKey = str(authorizedLine(wrong))
	rep := &recReporter{}
	start := time.Now()
	_, _, err := runRemote(context.Background(), runSpec{Conn: c, Command: "touch /tmp/should-not-run"}, rep)
	if err == nil || !strings.Contains(err.Error(), "host key mismatch") || len(rep.status) != 0 ||
		time.Since(start) > 3*time.Second {
		t.Fatalf("want an immediate mismatch error, got %v (status %v)", err, rep.status)
	}
	// A wrong client key is not retried either.
	_, other := newEd25519(t)
	block, _ := ssh.MarshalPrivateKey(other, "")
	c = s.conn()
	c.PrivateKey = str(string(pem.EncodeToMemory(block)))
	if _, _, err := runRemote(context.Background(), runSpec{Conn: c, Command: "true"}, rep); err == nil ||
		!strings.Contains(err.Error(), "unable to authenticate") || len(rep.status) != 0 {
		t.Fatalf("want an auth error without retries, got %v (status %v)", err, rep.status)
	}
}

func TestSSHDialRetries(t *testing.T) {
	// Connection refused: retried dialErrorLimit times, then the error.
	c := &connection{Host: "127.0.0.1", Port: freePort(t), User: "x", Password: str("x"),
		DialErrorLimit: 3, PerDialTimeout: 2}
	rep := &recReporter{}
	_, _, err := runRemote(context.Background(), runSpec{Conn: c, Command: "true"}, rep)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "3 attempts") ||
		len(rep.status) != 2 {
		t.Fatalf("got %v, status %v", err, rep.status)
	}

	// A handshake that never completes is bounded by perDialTimeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, never answer
		}
	}()
	c = &connection{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, User: "x", Password: str("x"),
		DialErrorLimit: 1, PerDialTimeout: 1}
	start := time.Now()
	_, _, err = runRemote(context.Background(), runSpec{Conn: c, Command: "true"}, nil)
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
}

// Many commands at once against an sshd that drops unauthenticated connections beyond
// MaxStartups: all must succeed thanks to the retries.
func TestSSHManyConcurrentCommands(t *testing.T) {
	s := startSSHD(t, "MaxStartups 1")
	const n = 16
	var wg sync.WaitGroup
	var failed, retries atomic.Int32
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.conn()
			c.DialErrorLimit = 40
			rep := &recReporter{}
			<-start
			out, _, err := runRemote(context.Background(), runSpec{Conn: c, Command: fmt.Sprintf("sleep 0.2; echo %d", i)}, rep)
			if err != nil || out != fmt.Sprint(i) {
				t.Errorf("command %d: %q %v", i, out, err)
				failed.Add(1)
			}
			retries.Add(int32(len(rep.status)))
		}()
	}
	close(start)
	wg.Wait()
	t.Logf("%d commands, %d retried dials", n, retries.Load())
	if failed.Load() == 0 && retries.Load() == 0 {
		t.Log("note: no dial was refused (MaxStartups not reached)")
	}
}

func TestSSHProxy(t *testing.T) {
	s := startSSHD(t, "AllowTcpForwarding yes")
	c := s.conn()
	c.Proxy = s.conn()
	out, _, err := runRemote(context.Background(), runSpec{Conn: c, Command: "echo via proxy"}, nil)
	if err != nil || out != "via proxy" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestSSHCancel(t *testing.T) {
	s := startSSHD(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := runRemote(ctx, runSpec{Op: "create", Conn: s.conn(), Command: "sleep 30"}, nil)
	if err == nil || time.Since(start) > 5*time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
}
