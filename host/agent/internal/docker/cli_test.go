package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeCLI writes a `docker` script into a temp dir and returns its path. The script answers by
// its first argument:
//
//	ok      prints its arguments
//	missing exits 1 with docker's "No such container" on stderr
//	fail    exits 125 with two lines on stderr
//	hang    never answers (sleeps, also in a child that keeps stdout open)
func fakeCLI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "docker")
	script := `#!/bin/sh
case $1 in
ok) shift; echo "args: $*" ;;
missing) echo "Error: No such container: $3" >&2; exit 1 ;;
fail) echo "docker: Error response from daemon: Conflict." >&2; echo "See 'docker run --help'." >&2; exit 125 ;;
hang) sleep 600 & sleep 600 ;;
*) echo "unknown $1" >&2; exit 2 ;;
esac
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLIRun(t *testing.T) {
	prog := fakeCLI(t)
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantErr  string
		notFound bool
		status   int
	}{
		{name: "answer", args: []string{"ok", "a b", "c"}, wantOut: "args: a b c\n"},
		{name: "no such container", args: []string{"missing", "inspect", "ttnode1"}, wantErr: "docker missing inspect ttnode1: Error: No such container: ttnode1", notFound: true, status: 1},
		{name: "failure with two lines", args: []string{"fail", "--detach", "run"}, wantErr: "docker fail run: docker: Error response from daemon: Conflict.; See 'docker run --help'.", status: 125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := (&CLI{Program: prog}).Run(t.Context(), Query, tt.args...)
			if tt.wantErr == "" {
				if err != nil || string(out) != tt.wantOut {
					t.Errorf("got %q, %v; want %q", out, err, tt.wantOut)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			var de *Error
			if !errors.As(err, &de) || de.ExitStatus != tt.status {
				t.Errorf("error %#v, want exit status %d", err, tt.status)
			}
			if IsNotFound(err) != tt.notFound || IsTimeout(err) {
				t.Errorf("IsNotFound %v, want %v; IsTimeout %v", IsNotFound(err), tt.notFound, IsTimeout(err))
			}
		})
	}
}

// TestCLITimeout: a docker call that never answers fails after its kind's timeout, naming the
// call, and takes its children with it.
func TestCLITimeout(t *testing.T) {
	prog := fakeCLI(t)
	for _, kind := range []Kind{Query, Change} {
		cli := &CLI{Program: prog, QueryTimeout: 50 * time.Millisecond, ChangeTimeout: 80 * time.Millisecond}
		start := time.Now()
		_, err := cli.Run(t.Context(), kind, "hang", "ps", "-a")
		took := time.Since(start)
		if !IsTimeout(err) || IsNotFound(err) {
			t.Fatalf("kind %d: error %v, want a timeout", kind, err)
		}
		want := map[Kind]string{Query: "50ms", Change: "80ms"}[kind]
		if !strings.Contains(err.Error(), "docker hang ps: no answer from the docker engine within "+want) {
			t.Errorf("error %q", err)
		}
		// The group is killed: Wait does not stay for the child holding stdout (WaitDelay is 2 s).
		if took > 1500*time.Millisecond {
			t.Errorf("kind %d: the call took %s after a %s timeout", kind, took, want)
		}
	}
}

func TestCLICancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := (&CLI{Program: fakeCLI(t)}).Run(ctx, Query, "hang")
	if err == nil || IsTimeout(err) || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("error %v, want cancelled", err)
	}
}

func TestCLIMissingProgram(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	c := &CLI{}
	if p, err := c.program(); err == nil {
		if _, statErr := os.Stat(p); statErr == nil {
			t.Skipf("a docker CLI is installed at %s", p)
		}
	}
	_, err := c.Run(t.Context(), Query, "ps")
	if err == nil || !strings.Contains(err.Error(), "docker is not installed on this box") {
		t.Errorf("error %v", err)
	}
}

// TestEngineTimeoutReleasesLock: a hanging engine fails the operation after the call's timeout,
// and the box's docker lock is free again for the next one.
func TestEngineTimeoutReleasesLock(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "docker")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := testEngine(t, &CLI{Program: prog, QueryTimeout: 50 * time.Millisecond, ChangeTimeout: 50 * time.Millisecond})
	e.LockTimeout = 100 * time.Millisecond
	for i := range 2 { // the second would wait for the lock, and fail, were it still held
		_, err := e.DeleteContainer(t.Context(), "ttnode1", "box1/ttnode1", "", TakeDown{})
		if !IsTimeout(err) || !strings.Contains(err.Error(), "docker container inspect ttnode1: no answer") {
			t.Fatalf("call %d: error %v, want the inspect's timeout", i, err)
		}
	}
	if _, err := e.ReadNetwork(t.Context(), "macnet"); !IsTimeout(err) {
		t.Errorf("read: %v", err)
	}
}
