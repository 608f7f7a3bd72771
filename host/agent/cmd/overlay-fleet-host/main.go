// Command overlay-fleet-host is the box agent of overlay-fleet: the provider runs it on a box,
// one subcommand per operation, a JSON object on stdin and one on stdout (their types: package
// overlay-fleet/host/agent/protocol, shared with the provider).
//
//	overlay-fleet-host fstab-entry read|create|update|delete
//	overlay-fleet-host overlay-mount read|create|update|delete
//	overlay-fleet-host network read|create|delete
//	overlay-fleet-host container read|create|update|delete
//
// On failure it exits 1 with one line `overlay-fleet-host: <what went wrong>` on stderr; a bad
// invocation or request, refused before anything is touched, exits 2.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"overlay-fleet/host/agent/internal/fstab"
	"overlay-fleet/host/agent/internal/lock"
	"overlay-fleet/host/agent/internal/ovlmount"
)

const prog = "overlay-fleet-host"

const usage = `usage: overlay-fleet-host <command> <action>  (a JSON request on stdin, the answer on stdout)

commands:
  fstab-entry read|create|update|delete   the managed fstab line of one instance
  overlay-mount read|create|update|delete the overlay mount of one instance (and its dirs)
  network read|create|delete              the box's docker macvlan network
  container read|create|update|delete     the docker container of one instance
`

// env is what the subcommands act with: the real box in main, temp dirs in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// locks is the directory of the box's locks.
	locks *lock.Dir
	// verify checks a new fstab; nil checks nothing.
	verify fstab.Verifier
	// mounts is the kernel the overlay mounts are made with.
	mounts ovlmount.System
	// docker is the box's docker CLI and mount table (network, container).
	docker dockerBox
}

// usageError is a bad invocation or request: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	e := &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		locks:  lock.Root(lock.DefaultDir),
		verify: fstab.FindmntOnPath(),
		mounts: ovlmount.Linux{},
		docker: boxDocker(),
	}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run runs one invocation and returns the exit status.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stdout, usage)
		return 0
	}
	err := dispatch(ctx, e, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", prog, oneLine(err.Error()))
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// dispatch picks the subcommand.
func dispatch(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("no command given (%s --help lists them)", prog)
	}
	switch args[0] {
	case "fstab-entry":
		return fstabEntry(ctx, e, args[1:])
	case "overlay-mount":
		return overlayMount(ctx, e, args[1:])
	case "network":
		return networkCmd(ctx, e, args[1:])
	case "container":
		return containerCmd(ctx, e, args[1:])
	default:
		return usagef("unknown command %q (%s --help lists them)", args[0], prog)
	}
}

// oneLine makes an error message fit one line of stderr.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(strings.TrimSpace(s))
}
