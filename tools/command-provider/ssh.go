package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// parseHostKey reads a public host key as in ssh-keyscan output or a known_hosts or
// authorized_keys line ("ssh-ed25519 AAAA...", optionally with a leading host or a comment).
func parseHostKey(s string) (ssh.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New(`empty host key (expected "ssh-ed25519 AAAA...")`)
	}
	if key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err == nil {
		return key, nil
	}
	if _, _, key, _, _, err := ssh.ParseKnownHosts([]byte(s)); err == nil {
		return key, nil
	}
	return nil, fmt.Errorf(`cannot parse %q as an SSH public key (expected "ssh-ed25519 AAAA...", as in ssh-keyscan output)`,
		truncate(s, 60))
}

// hostKeyError is a host key mismatch: never retried.
type hostKeyError struct {
	addr          string
	got, expected ssh.PublicKey
}

func (e *hostKeyError) Error() string {
	return fmt.Sprintf("host key mismatch for %s: the server presented %s %s, connection.hostKey is %s %s",
		e.addr, e.got.Type(), ssh.FingerprintSHA256(e.got), e.expected.Type(), ssh.FingerprintSHA256(e.expected))
}

// hostKeyAlgorithms returns the algorithms to negotiate so that a server with several host
// keys presents the one of the pinned type.
func hostKeyAlgorithms(key ssh.PublicKey) []string {
	switch key.Type() {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	default:
		return []string{key.Type()}
	}
}

func hostKeyCallback(pinned ssh.PublicKey) ssh.HostKeyCallback {
	if pinned == nil {
		return ssh.InsecureIgnoreHostKey() // as upstream when hostKey is not set
	}
	want := pinned.Marshal()
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if bytes.Equal(key.Marshal(), want) {
			return nil
		}
		return &hostKeyError{addr: hostname, got: key, expected: pinned}
	}
}

// clientConfig builds the SSH client configuration. The returned closer releases the agent
// connection, if one was opened; call it once the handshake is over.
func clientConfig(c *connection) (*ssh.ClientConfig, func(), error) {
	cfg := &ssh.ClientConfig{User: c.User, Timeout: time.Duration(c.PerDialTimeout) * time.Second}
	closer := func() {}
	if c.HostKey != nil {
		key, err := parseHostKey(*c.HostKey)
		if err != nil {
			return nil, closer, fmt.Errorf("hostKey: %w", err)
		}
		cfg.HostKeyCallback = hostKeyCallback(key)
		cfg.HostKeyAlgorithms = hostKeyAlgorithms(key)
	} else {
		cfg.HostKeyCallback = hostKeyCallback(nil)
	}
	if c.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, closer, errors.New("privateKey is encrypted: set privateKeyPassword")
		} else if err != nil {
			return nil, closer, fmt.Errorf("privateKey: %w", err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil {
		pw := *c.Password
		cfg.Auth = append(cfg.Auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	// The agent: the given socket, else $SSH_AUTH_SOCK when neither a key nor a password is set.
	sock := ""
	if c.AgentSocketPath != nil && *c.AgentSocketPath != "" {
		sock = *c.AgentSocketPath
	} else if c.PrivateKey == nil && c.Password == nil {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, closer, fmt.Errorf("ssh agent at %s: %w", sock, err)
		}
		closer = func() { conn.Close() }
		cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	if len(cfg.Auth) == 0 {
		return nil, closer, errors.New("no way to authenticate: set connection.privateKey, password or agentSocketPath (or SSH_AUTH_SOCK)")
	}
	return cfg, closer, nil
}

// handshake runs the SSH handshake over conn, bounded by timeout (0: none) and ctx.
func handshake(ctx context.Context, conn net.Conn, addr string, cfg *ssh.ClientConfig, timeout time.Duration) (*ssh.Client, error) {
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() { conn.Close() })
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	timedOut := timer != nil && !timer.Stop()
	cancelled := !stop()
	if err == nil && (timedOut || cancelled) {
		c.Close() // the handshake finished, but the connection was closed under it
		err = net.ErrClosed
	}
	if err != nil {
		conn.Close()
		switch {
		case cancelled:
			return nil, ctx.Err()
		case timedOut:
			return nil, fmt.Errorf("ssh: handshake timed out after %v (connection.perDialTimeout)", timeout)
		}
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// dialDirect opens a TCP connection and runs the SSH handshake, both bounded by
// perDialTimeout.
func dialDirect(ctx context.Context, c *connection, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	timeout := time.Duration(c.PerDialTimeout) * time.Second
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr())
	if err != nil {
		return nil, err
	}
	return handshake(ctx, conn, c.addr(), cfg, timeout)
}

// permanent reports errors that retrying cannot fix. (Not context errors: a TCP connect
// timeout also matches context.DeadlineExceeded and must be retried; withRetry checks ctx.)
func permanent(err error) bool {
	var hk *hostKeyError
	return errors.As(err, &hk) || strings.Contains(err.Error(), "unable to authenticate")
}

// retryBackoff is the pause before attempt n+1 (n >= 1): exponential from 250ms, capped at
// 4s, with jitter so that many commands refused at once (sshd MaxStartups) spread out.
var retryBackoff = func(n int) time.Duration {
	d := 250 * time.Millisecond << min(n-1, 4)
	return d/2 + rand.N(d/2+1)
}

// withRetry calls f up to limit times (-1: until ctx ends) while it fails with a
// retryable error. status reports each failed attempt.
func withRetry[T any](ctx context.Context, what string, limit int, status func(string), f func() (T, error)) (T, error) {
	var zero T
	if limit == 0 {
		limit = 1
	}
	for n := 1; ; n++ {
		v, err := f()
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return zero, fmt.Errorf("%w (after %d attempts: %w)", ctx.Err(), n, err)
		}
		if permanent(err) {
			return zero, err
		}
		if limit > 0 && n >= limit {
			if n == 1 {
				return zero, err
			}
			return zero, fmt.Errorf("%w (%d attempts, connection.dialErrorLimit=%d)", err, n, limit)
		}
		lim := "unlimited"
		if limit > 0 {
			lim = strconv.Itoa(limit)
		}
		if status != nil {
			status(fmt.Sprintf("%s: attempt %d/%s failed (%v): retrying", what, n, lim, err))
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("%w (cancelled after %d attempts)", err, n)
		case <-time.After(retryBackoff(n)):
		}
	}
}

// sshClient is an SSH client, plus the proxy client it goes through, if any.
type sshClient struct {
	*ssh.Client
	proxy *ssh.Client
}

func (c *sshClient) Close() error {
	err := c.Client.Close()
	if c.proxy != nil {
		c.proxy.Close()
	}
	return err
}

// dial connects to c (through c.Proxy when set), retrying failed dials and handshakes up to
// c.DialErrorLimit times: sshd drops unauthenticated connections beyond MaxStartups, so many
// commands starting at once on one box must retry.
func dial(ctx context.Context, c *connection, status func(string)) (*sshClient, error) {
	cfg, closeAgent, err := clientConfig(c)
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	target := fmt.Sprintf("%s@%s", c.User, c.addr())
	if c.Proxy == nil {
		cl, err := withRetry(ctx, "ssh "+target, c.DialErrorLimit, status, func() (*ssh.Client, error) {
			return dialDirect(ctx, c, cfg)
		})
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %w", target, err)
		}
		return &sshClient{Client: cl}, nil
	}

	pcfg, closeProxyAgent, err := clientConfig(c.Proxy)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	defer closeProxyAgent()
	ptarget := fmt.Sprintf("%s@%s", c.Proxy.User, c.Proxy.addr())
	proxy, err := withRetry(ctx, "ssh proxy "+ptarget, c.Proxy.DialErrorLimit, status, func() (*ssh.Client, error) {
		return dialDirect(ctx, c.Proxy, pcfg)
	})
	if err != nil {
		return nil, fmt.Errorf("ssh proxy %s: %w", ptarget, err)
	}
	cl, err := withRetry(ctx, "ssh "+target+" via "+ptarget, c.DialErrorLimit, status, func() (*ssh.Client, error) {
		conn, err := proxy.Dial("tcp", c.addr())
		if err != nil {
			return nil, err
		}
		return handshake(ctx, conn, c.addr(), cfg, time.Duration(c.PerDialTimeout)*time.Second)
	})
	if err != nil {
		proxy.Close()
		return nil, fmt.Errorf("ssh %s via %s: %w", target, ptarget, err)
	}
	return &sshClient{Client: cl, proxy: proxy}, nil
}

// truncate shortens s to about n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

var _ io.Closer = (*sshClient)(nil)
