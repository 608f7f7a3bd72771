package ovlmount

import (
	"context"
	"fmt"
	"time"

	"overlay-fleet/host/agent/internal/docker"
	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/lock"
)

// Containers is the box's docker engine as a remount uses it. A running container holds its
// instance's merged dir in its own mount namespace (its bind of it: an unmount on the box neither
// reaches it nor is refused as busy), and would never see the new overlay: a remount stops it
// before the unmount and starts it again after the mount.
type Containers interface {
	// Inspect reports the container of that name (Present false when there is none).
	Inspect(ctx context.Context, name string) (Container, error)
	// Stop stops the container (gracefully, as `docker stop` does); Start starts it.
	Stop(ctx context.Context, name string) error
	Start(ctx context.Context, name string) error
}

// Container is what a remount needs to know of a container.
type Container struct {
	Name string
	// Present says that the engine has a container of that name; the rest is empty when not.
	Present bool
	// Running says that it runs; Status is the engine's word (running, exited, ...).
	Running bool
	Status  string
	// InstanceID is its overlay-fleet.instance label ("" when it has none: not made by
	// overlay-fleet).
	InstanceID string
	// Merged is the source of its bind mount (the one on /mnts, else its only one), as the
	// engine has it; "" when it has none.
	Merged string
}

// Docker is Containers through the box's docker CLI (each call with its timeout).
type Docker struct {
	CLI docker.Runner
}

var _ Containers = Docker{}

// Inspect reads `docker container inspect`.
func (d Docker) Inspect(ctx context.Context, name string) (Container, error) {
	c, err := (&docker.Engine{Docker: d.CLI}).ReadContainer(ctx, name, docker.View{})
	if err != nil {
		return Container{}, err
	}
	return Container{Name: name, Present: c.Present, Running: c.Running, Status: c.Status, InstanceID: c.InstanceID, Merged: c.Merged}, nil
}

// Stop runs `docker stop`: the container's own stop signal and timeout, then the engine kills it.
func (d Docker) Stop(ctx context.Context, name string) error {
	_, err := d.CLI.Run(ctx, docker.Change, "stop", name)
	return err
}

// Start runs `docker start`.
func (d Docker) Start(ctx context.Context, name string) error {
	_, err := d.CLI.Run(ctx, docker.Change, "start", name)
	return err
}

// containerFacts are what a remount knows of the instance's container.
type containerFacts struct {
	Container
	// bindsMerged says that its bind mount's source is the instance's merged dir.
	bindsMerged bool
}

// decideContainer says which container a remount of the overlay on s.Merged (because of
// reason) stops and starts again: none when the spec names none (c nil), when there is none of
// that name, or when it does not run (it stays as it is). A container that is not the instance's
// (no overlay-fleet.instance label, or not bound to the merged dir) is never touched: the
// remount is refused, naming it.
func decideContainer(s Spec, c *containerFacts, reason string) (string, error) {
	switch {
	case c == nil || !c.Present:
		return "", nil
	case c.InstanceID == "":
		return "", fmt.Errorf("overlay at %q must be remounted (%s), but container %q is not overlay-fleet's (it has no %s label): refusing to stop it; nothing was changed", s.Merged, reason, c.Name, docker.InstanceLabel)
	case !c.bindsMerged:
		bind := "no bind mount"
		if c.Merged != "" {
			bind = fmt.Sprintf("its bind mount is of %q", c.Merged)
		}
		return "", fmt.Errorf("overlay at %q must be remounted (%s), but container %q (of %s) is not this instance's: %s, not of the merged dir; refusing to stop it; nothing was changed", s.Merged, reason, c.Name, c.InstanceID, bind)
	case !c.Running:
		return "", nil
	}
	return c.Name, nil
}

// dockerLock takes the box's docker lock (docker.LockName) for what, after the box lock: no other
// agent creates, starts or removes a container while a remount has the instance's stopped.
// Nothing takes the box lock while holding the docker lock.
func (b Box) dockerLock(ctx context.Context, what string) (*lock.Lock, error) {
	if b.Locks == nil {
		return nil, fmt.Errorf("%s: no lock directory", what)
	}
	timeout := b.LockTimeout
	if timeout == 0 {
		timeout = docker.DefaultLockTimeout
	}
	l, err := b.Locks.Lock(ctx, docker.LockName, timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return l, nil
}

// gatherContainer looks at the instance's container for a remount (because of reason).
func (b Box) gatherContainer(ctx context.Context, s Spec, reason string) (*containerFacts, error) {
	if b.Docker == nil {
		return nil, fmt.Errorf("overlay at %q must be remounted (%s), but there is no docker engine to stop its container %q with; nothing was changed", s.Merged, reason, s.Container)
	}
	c, err := b.Docker.Inspect(ctx, s.Container)
	if err != nil {
		return nil, fmt.Errorf("overlay at %q must be remounted (%s), but whether its container %q runs cannot be told: %w; nothing was changed", s.Merged, reason, s.Container, err)
	}
	c.Name = s.Container
	return &containerFacts{Container: c, bindsMerged: c.Merged != "" && (c.Merged == s.Merged || layout.SamePath(c.Merged, s.Merged))}, nil
}

// stopForRemount stops the container p.stop before the unmount and waits (StopSettle) for the
// overlay's mounts in its mount namespace to go. Whatever still holds the overlay where its unmount
// does not reach refuses the remount as before, the container started again.
func (b Box) stopForRemount(ctx context.Context, s Spec, p plan) error {
	if err := b.Docker.Stop(ctx, p.stop); err != nil {
		return fmt.Errorf("overlay at %q must be remounted (%s), but its container %q cannot be stopped: %w; the overlay was not changed%s", s.Merged, p.reason, p.stop, err, b.startAgain(ctx, p.stop))
	}
	settle := b.StopSettle
	if settle == 0 {
		settle = DefaultStopSettle
	}
	canon := layout.Canon(s.Merged)
	for end := time.Now().Add(settle); ; {
		t, err := b.Sys.MountTable()
		if err != nil {
			return fmt.Errorf("%w%s", err, b.startAgain(ctx, p.stop))
		}
		nss, err := b.namespaces(s.Merged)
		if err != nil {
			return fmt.Errorf("%w%s", err, b.startAgain(ctx, p.stop))
		}
		h := overlayHolders(t, canon, p.replaced, nss)
		if len(h) == 0 {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("overlay at %q must be remounted (%s) but, with its container %q stopped, it is still mounted where its unmount does not reach: %s; stop the processes using it there and retry%s", s.Merged, p.reason, p.stop, heldBy(h), b.startAgain(ctx, p.stop))
		}
		time.Sleep(stopPoll)
	}
}

// stopPoll is how often stopForRemount looks again.
const stopPoll = 50 * time.Millisecond

// startAgain starts the container name ("" for none) that a remount stopped, the old overlay
// still mounted, and says how that went, for the end of an error. A cancelled operation starts
// it all the same (the docker call has its timeout).
func (b Box) startAgain(ctx context.Context, name string) string {
	if name == "" {
		return ""
	}
	if err := b.Docker.Start(context.WithoutCancel(ctx), name); err != nil {
		return fmt.Sprintf("; container %q could not be started again: %v", name, err)
	}
	return fmt.Sprintf("; container %q started again", name)
}

// leftStopped is the end of an error after which the container name ("" for none), stopped for
// the remount, is left stopped: the old overlay is unmounted, and a container started now would
// run on the bare merged dir.
func leftStopped(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf("; container %q left stopped", name)
}
