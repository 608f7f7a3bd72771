// Package box is the provider's one SSH connection to a box: dialled on first use, the host
// key pinned, every command a session on that connection.
package box

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Runner runs commands on one box. Resources depend on this interface only, so they are
// tested with a fake.
type Runner interface {
	// Run runs argv on the box, feeding it stdin, and returns what it wrote on stdout.
	// A non-zero exit is a *RemoteError.
	Run(ctx context.Context, argv []string, stdin []byte) ([]byte, error)
	// Addr names the box (host:port) in messages.
	Addr() string
}

// DefaultMaxSessions caps the sessions open at once on the connection. OpenSSH's sshd allows
// 10 per connection (MaxSessions); staying below leaves room for a human's session
// multiplexed on the same connection and never meets "administratively prohibited".
const DefaultMaxSessions = 8

// Options say how to reach one box. Exactly one of PrivateKey and Agent is used.
type Options struct {
	Host string
	Port int
	User string
	// HostKey is the box's public host key in authorized_keys form ("ssh-ed25519 AAAA...").
	// The connection is refused unless the box presents exactly this key.
	HostKey string
	// PrivateKey is a private key in PEM or OpenSSH form, without passphrase.
	PrivateKey string
	// Agent authenticates with the keys of the ssh-agent at AgentSocket.
	Agent bool
	// AgentSocket defaults to $SSH_AUTH_SOCK, read when the connection is made.
	AgentSocket string
	// MaxSessions defaults to DefaultMaxSessions.
	MaxSessions int
	// ConnectTimeout bounds the TCP connect and the SSH handshake; default 30 s.
	ConnectTimeout time.Duration
}

// Client is a lazily dialled SSH connection to one box. It is safe for concurrent use.
type Client struct {
	opts    Options
	addr    string
	hostKey ssh.PublicKey
	signer  ssh.Signer // nil when authenticating through the agent
	sem     chan struct{}

	mu   sync.Mutex
	conn *ssh.Client
}

var _ Runner = (*Client)(nil)

// New checks opts and returns a client. It does not touch the network: the connection is
// made by the first Run.
func New(opts Options) (*Client, error) {
	if opts.Host == "" {
		return nil, errors.New("no host given")
	}
	if opts.Port == 0 {
		opts.Port = 22
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, fmt.Errorf("port %d is not a TCP port", opts.Port)
	}
	if opts.User == "" {
		opts.User = "root"
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	hostKey, err := ParseHostKey(opts.HostKey)
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:    opts,
		addr:    net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)),
		hostKey: hostKey,
		sem:     make(chan struct{}, opts.MaxSessions),
	}
	switch {
	case opts.Agent && opts.PrivateKey != "":
		return nil, errors.New("both a private key and the agent given: use one")
	case opts.Agent:
	case opts.PrivateKey != "":
		if c.signer, err = ParsePrivateKey(opts.PrivateKey); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("no authentication given: a private key or the agent")
	}
	return c, nil
}

// ParseHostKey parses one public key in authorized_keys form ("ssh-ed25519 AAAA... comment").
func ParseHostKey(s string) (ssh.PublicKey, error) {
	if s == "" {
		return nil, errors.New("no host key given")
	}
	key, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("not a public key in authorized_keys form (\"ssh-ed25519 AAAA...\"): %w", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one key given: pin exactly one")
	}
	return key, nil
}

// ParsePrivateKey parses an unencrypted private key in PEM or OpenSSH form.
func ParsePrivateKey(s string) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey([]byte(s))
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("the private key is encrypted with a passphrase: give an unencrypted key or use the agent")
	}
	if err != nil {
		return nil, fmt.Errorf("not a private key in PEM or OpenSSH form: %w", err)
	}
	return signer, nil
}

// Addr is host:port of the box.
func (c *Client) Addr() string { return c.addr }

// Run runs argv (shell-quoted, see Quote) in a new session on the box's connection, dialling
// it first if needed. At most MaxSessions run at once; the rest wait their turn or ctx.
func (c *Client) Run(ctx context.Context, argv []string, stdin []byte) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("box: empty command")
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting to run %s: %w", c.addr, commandName(argv), ctx.Err())
	}

	sess, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()

	var stdout, stderr bytes.Buffer
	sess.Stdin = bytes.NewReader(stdin)
	sess.Stdout = &stdout
	sess.Stderr = &stderr
	stop := context.AfterFunc(ctx, func() {
		_ = sess.Signal(ssh.SIGKILL)
		_ = sess.Close()
	})
	err = sess.Run(Quote(argv))
	stop()

	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.addr, commandName(argv), ctx.Err())
	}
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return stdout.Bytes(), nil
	case errors.As(err, &exit):
		return stdout.Bytes(), &RemoteError{
			Addr: c.addr, Argv: argv, ExitStatus: exit.ExitStatus(), Signal: exit.Signal(),
			Stderr: lastLine(stderr.Bytes()),
		}
	case errors.As(err, &missing):
		return stdout.Bytes(), &RemoteError{
			Addr: c.addr, Argv: argv, ExitStatus: -1, Stderr: lastLine(stderr.Bytes()),
		}
	default:
		return nil, fmt.Errorf("%s: run %s: %w", c.addr, commandName(argv), err)
	}
}

// Close closes the connection, if one was made. A later Run dials again.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// session opens a session on the connection. A connection that died since its last use
// (the box rebooted, a NAT forgot it) is dialled again, once.
func (c *Client) session(ctx context.Context) (*ssh.Session, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.connect(ctx)
		if err != nil {
			return nil, err
		}
		sess, err := conn.NewSession()
		if err == nil {
			return sess, nil
		}
		if attempt > 0 || !c.forget(conn) {
			return nil, fmt.Errorf("%s: open SSH session: %w", c.addr, err)
		}
	}
}

// forget drops conn if it is the current connection and is dead; it reports whether a new
// connection is worth trying.
func (c *Client) forget(conn *ssh.Client) bool {
	// A live connection answers a global request; a dead one fails at once.
	if _, _, err := conn.SendRequest("keepalive@openssh.com", true, nil); err == nil {
		return false
	}
	_ = conn.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		c.conn = nil
	}
	return true
}

// connect returns the connection, dialling it if there is none (or the last one died).
func (c *Client) connect(ctx context.Context) (*ssh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn, nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	go func() {
		_ = conn.Wait()
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		c.mu.Unlock()
	}()
	return conn, nil
}

func (c *Client) dial(ctx context.Context) (*ssh.Client, error) {
	auth, done, err := c.auth()
	if err != nil {
		return nil, err
	}
	defer done()

	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.addr, err)
	}
	// The handshake takes no context: bound it by the deadline and abort it on cancel.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, c.addr, &ssh.ClientConfig{
		User:              c.opts.User,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   c.checkHostKey,
		HostKeyAlgorithms: hostKeyAlgorithms(c.hostKey),
	})
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("ssh to %s@%s: %w", c.opts.User, c.addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// auth returns the authentication method and a function that releases what it holds.
func (c *Client) auth() (ssh.AuthMethod, func(), error) {
	if c.signer != nil {
		return ssh.PublicKeys(c.signer), func() {}, nil
	}
	sock := c.opts.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock == "" {
		return nil, nil, fmt.Errorf("ssh to %s: agent authentication asked for, but SSH_AUTH_SOCK is not set", c.addr)
	}
	ac, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh to %s: reach the ssh-agent at %s: %w", c.addr, sock, err)
	}
	// The agent is only asked during the handshake; the connection is closed after it.
	return ssh.PublicKeysCallback(agent.NewClient(ac).Signers), func() { _ = ac.Close() }, nil
}

func (c *Client) checkHostKey(_ string, _ net.Addr, key ssh.PublicKey) error {
	if bytes.Equal(key.Marshal(), c.hostKey.Marshal()) {
		return nil
	}
	return &HostKeyError{Addr: c.addr, Want: c.hostKey, Got: key}
}

// hostKeyAlgorithms asks the box for the pinned key's type only, so a box that also has keys
// of other types presents the pinned one.
func hostKeyAlgorithms(key ssh.PublicKey) []string {
	if key.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{key.Type()}
}

// HostKeyError is returned when the box presents a host key other than the pinned one.
type HostKeyError struct {
	Addr      string
	Want, Got ssh.PublicKey
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("host key of %s is %s %s, but hostKey pins %s %s: refusing to connect",
		e.Addr, e.Got.Type(), ssh.FingerprintSHA256(e.Got), e.Want.Type(), ssh.FingerprintSHA256(e.Want))
}
