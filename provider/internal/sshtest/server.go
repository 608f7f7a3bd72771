// Package sshtest serves SSH on 127.0.0.1 inside a test process: exec requests go to a Go
// handler instead of a shell. It exists for tests only.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Handler runs one exec request: cmd is the command line as the client sent it.
type Handler func(cmd string, stdin []byte) (stdout, stderr string, status int)

// Server is an SSH server on 127.0.0.1 that accepts one client key.
type Server struct {
	Host string
	Port int
	// HostKey is the server's public host key in authorized_keys form.
	HostKey string
	// ClientKey is the accepted client private key, PEM (OpenSSH form).
	ClientKey string
	// ClientSigner is the accepted client key, for an agent's keyring.
	ClientSigner ed25519.PrivateKey

	handler Handler
	ln      net.Listener
	conns   atomic.Int64

	mu   sync.Mutex
	open []net.Conn
	wg   sync.WaitGroup
}

// NewKey returns a fresh ed25519 key pair as an ssh.Signer.
func NewKey(t testing.TB) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, priv
}

// AuthorizedKey formats a public key as an authorized_keys line without newline.
func AuthorizedKey(k ssh.PublicKey) string {
	b := ssh.MarshalAuthorizedKey(k)
	return string(b[:len(b)-1])
}

// Start serves until the test ends.
func Start(t testing.TB, h Handler) *Server {
	t.Helper()
	hostSigner, _ := NewKey(t)
	clientSigner, clientPriv := NewKey(t)
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(clientSigner.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, ssh.ErrNoAuth
		},
	}
	cfg.AddHostKey(hostSigner)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		HostKey:      AuthorizedKey(hostSigner.PublicKey()),
		ClientKey:    string(pem.EncodeToMemory(block)),
		ClientSigner: clientPriv,
		handler:      h,
		ln:           ln,
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	s.Host = host
	s.Port, _ = strconv.Atoi(port)

	s.wg.Add(1)
	go s.serve(cfg)
	t.Cleanup(s.Close)
	return s
}

// Connections is the number of TCP connections accepted so far.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// DropConnections closes every open connection, as a rebooting box would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.open {
		_ = c.Close()
	}
	s.open = nil
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	_ = s.ln.Close()
	s.DropConnections()
	s.wg.Wait()
}

func (s *Server) serve(cfg *ssh.ServerConfig) {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		s.mu.Lock()
		s.open = append(s.open, nc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleConn(nc, cfg)
		}()
	}
}

func (s *Server) handleConn(nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleSession(ch, creqs)
		}()
	}
}

func (s *Server) handleSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
			continue
		}
		var exec struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &exec); err != nil {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		go ssh.DiscardRequests(reqs) // signals etc.
		stdin, _ := io.ReadAll(ch)
		stdout, stderr, status := s.handler(exec.Command, stdin)
		_, _ = io.WriteString(ch, stdout)
		_, _ = io.WriteString(ch.Stderr(), stderr)
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
		return
	}
}
