package docker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"overlay-fleet/host/agent/internal/down"
)

// ContainerSpec is the container of one instance as planned.
type ContainerSpec struct {
	// Name is the container's name.
	Name string
	// InstanceID is its instance, `<box>/<name>`: its InstanceLabel.
	InstanceID string
	// Hostname, Network, IP and MAC are its identity on the network.
	Hostname, Network, IP, MAC string
	// Image is the image reference to run; ImageID, when set, the image id it must be.
	Image, ImageID string
	// Merged is the instance's merged dir (an overlay mount point), bind-mounted on Target.
	Merged, Target string
	Restart        string
	Privileged     bool
	DNS            []string
	Env            map[string]string
}

// view is where to look in the container of s.
func (s ContainerSpec) view() View {
	return View{Network: s.Network, Target: s.Target, EnvKeys: sortedKeys(s.Env)}
}

// identity is a container's identity in words, for messages.
func identity(hostname, ip, mac string) string {
	return fmt.Sprintf("hostname=%s ip=%s mac=%s", orNone(hostname), orNone(ip), orNone(mac))
}

// sameIdentity says that c has the hostname, address and MAC of s on its network.
func (c Container) sameIdentity(s ContainerSpec) bool {
	return c.Hostname == s.Hostname && c.Network == s.Network && c.IP == s.IP && c.MAC == s.MAC
}

// difference names the first setting of c that is not as s plans (imageID: the id s.Image has
// now), or "" when c is as planned but for its restart policy and whether it runs.
func (c Container) difference(s ContainerSpec, imageID string) string {
	switch {
	case !c.sameIdentity(s):
		return fmt.Sprintf("it has %s on network %s, the plan %s on %s", identity(c.Hostname, c.IP, c.MAC), orNone(c.Network), identity(s.Hostname, s.IP, s.MAC), s.Network)
	case c.ImageID != imageID:
		return fmt.Sprintf("it runs image %s, %s is %s", c.ImageID, s.Image, imageID)
	case c.Merged != s.Merged:
		return fmt.Sprintf("it has %s on %s, the plan %s", orNone(c.Merged), s.Target, s.Merged)
	case c.Privileged != s.Privileged:
		return fmt.Sprintf("privileged is %v, the plan %v", c.Privileged, s.Privileged)
	case !slices.Equal(c.DNS, s.DNS):
		return fmt.Sprintf("its DNS servers are [%s], the plan [%s]", strings.Join(c.DNS, " "), strings.Join(s.DNS, " "))
	}
	for _, k := range sortedKeys(s.Env) {
		if v, ok := c.env[k]; !ok || v != s.Env[k] {
			return fmt.Sprintf("its environment variable %s is not as planned", k)
		}
	}
	for _, k := range sortedKeys(c.Env) {
		if _, ok := s.Env[k]; !ok {
			return fmt.Sprintf("it has environment variable %s, the plan does not", k)
		}
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	return keys
}

// ReadContainer reports the container of that name, looking where v says (Present false when
// there is none). Its Env is what it has beyond its image's environment.
func (e *Engine) ReadContainer(ctx context.Context, name string, v View) (Container, error) {
	out, err := e.query(ctx, "container", "inspect", name)
	if IsNotFound(err) {
		return Container{Name: name, DNS: []string{}, Env: map[string]string{}}, nil
	}
	if err != nil {
		return Container{}, err
	}
	c, err := parseContainer(out, name, v)
	if err != nil || !c.Present {
		if err == nil {
			c.DNS, c.Env = []string{}, map[string]string{}
		}
		return c, err
	}
	imageEnv := map[string]string{}
	if c.ImageID != "" {
		img, err := e.inspectImage(ctx, c.ImageID)
		switch {
		case err == nil:
			imageEnv = img.Env
		case !IsNotFound(err): // an image removed by force: all of the environment is the container's
			return Container{}, err
		}
	}
	c.Env = ownEnv(c.env, imageEnv)
	for _, k := range v.EnvKeys {
		if val, ok := c.env[k]; ok {
			c.Env[k] = val
		}
	}
	return c, nil
}

// inspectImage reports the image ref names.
func (e *Engine) inspectImage(ctx context.Context, ref string) (image, error) {
	out, err := e.query(ctx, "image", "inspect", ref)
	if err != nil {
		return image{}, err
	}
	return parseImage(out, ref)
}

// CreateContainer makes the container of an instance as planned and reads it back: made with
// `docker run` on its network with exactly its hostname, IP and MAC, its merged dir bind-mounted
// (it must be an overlay mount point: never an empty dir). The engine's account must then show
// that identity, or the container is removed again and the error names both. A container of
// the instance that is as planned is kept (started if it is stopped, its restart policy set);
// one that differs is replaced. A container of that name that is not the instance's is refused
// (nothing is changed), and so is an image that is not on the box.
//
// A container taken away to be made again (here, or by the delete of a replacement) leaves its
// instance down until it runs (t, admit); a create that fails then marks the instance's down
// record failed, so the run replaces no other container of the box.
func (e *Engine) CreateContainer(ctx context.Context, s ContainerSpec, t TakeDown) (Container, error) {
	var c Container
	err := e.inTurn(ctx, t, s.InstanceID, func(waited time.Duration) (down.Verdict, string, error) {
		var err error
		c, err = e.createLocked(ctx, s, t, waited)
		if n, ok := err.(notNow); ok {
			return n.verdict, n.why, nil
		}
		return down.Go, "", err
	})
	if serr := e.settle(s.InstanceID, t.Run, err); serr != nil && err == nil {
		err = serr
	}
	return c, err
}

// notNow is createLocked's "not yet": the verdict of admitLocked.
type notNow struct {
	verdict down.Verdict
	why     string
}

func (n notNow) Error() string { return n.why }

// createLocked is one try of CreateContainer, under the box's docker lock; when it must take the
// instance's container away and may not yet (its turn: admitLocked), it changes nothing and
// fails with notNow.
func (e *Engine) createLocked(ctx context.Context, s ContainerSpec, t TakeDown, waited time.Duration) (Container, error) {
	l, err := e.lock(ctx, "container create "+s.Name)
	if err != nil {
		return Container{}, err
	}
	defer l.Unlock()
	view := s.view()
	c, err := e.ReadContainer(ctx, s.Name, view)
	if err != nil {
		return Container{}, err
	}
	if c.Present && c.InstanceID != s.InstanceID {
		return Container{}, e.notOurs(c, s.InstanceID, "remove or rename it; nothing was changed")
	}
	img, err := e.inspectImage(ctx, s.Image)
	if IsNotFound(err) {
		return Container{}, fmt.Errorf("image %s is not on this box: load it first (docker load); no container was changed", s.Image)
	}
	if err != nil {
		return Container{}, err
	}
	if s.ImageID != "" && img.ID != s.ImageID {
		return Container{}, fmt.Errorf("image %s on this box is %s, not %s as planned; no container was changed", s.Image, img.ID, s.ImageID)
	}
	if c.Present && c.difference(s, img.ID) == "" {
		return e.keep(ctx, c, s)
	}
	if err := e.checkMerged(s); err != nil {
		return Container{}, err
	}
	if c.Present && t.Max > 0 {
		// Taken away to be made again: only in its turn (decided and recorded under this lock).
		if v, why, err := e.admitLocked(ctx, t, s.InstanceID, s.Merged, s.Name, waited); err != nil || v != down.Go {
			if err != nil {
				return Container{}, err
			}
			return Container{}, notNow{v, why}
		}
	}
	if c.Present {
		// Ours, otherwise than planned: made again. Its IP and MAC cannot exist twice.
		if _, err := e.change(ctx, "rm", "--force", s.Name); err != nil && !IsNotFound(err) {
			return Container{}, fmt.Errorf("cannot remove container %s of %s to make it as planned (%s): %w", s.Name, s.InstanceID, c.difference(s, img.ID), err)
		}
	}
	if _, err := e.change(ctx, runArgs(s)...); err != nil {
		runErr := fmt.Errorf("docker run of container %s of %s failed: %w", s.Name, s.InstanceID, err)
		return Container{}, e.removeMade(ctx, s, runErr)
	}
	c, err = e.ReadContainer(ctx, s.Name, view)
	if err != nil {
		return Container{}, fmt.Errorf("container %s of %s was made, but: %w", s.Name, s.InstanceID, err)
	}
	if !c.Present {
		return Container{}, fmt.Errorf("container %s of %s is not there after docker run", s.Name, s.InstanceID)
	}
	return e.verify(ctx, c, s, img.ID, 0)
}

// keep brings a container that is as planned to its restart policy and starts it if stopped.
func (e *Engine) keep(ctx context.Context, c Container, s ContainerSpec) (Container, error) {
	if c.Restart != s.Restart {
		if _, err := e.change(ctx, "update", "--restart", s.Restart, s.Name); err != nil {
			return Container{}, fmt.Errorf("cannot set the restart policy of container %s to %s: %w", s.Name, s.Restart, err)
		}
	}
	if !c.Running {
		if err := e.checkMerged(s); err != nil {
			return Container{}, err
		}
		if _, err := e.change(ctx, "start", s.Name); err != nil {
			return Container{}, fmt.Errorf("cannot start container %s of %s: %w", s.Name, s.InstanceID, err)
		}
	}
	if c.Running && c.Restart == s.Restart {
		return c, nil
	}
	n, err := e.ReadContainer(ctx, s.Name, s.view())
	if err != nil {
		return Container{}, err
	}
	if !n.Present {
		return Container{}, fmt.Errorf("container %s of %s is gone after docker start", s.Name, s.InstanceID)
	}
	// (a restart count the container had before is history: docker update keeps it, a start resets it)
	restarts := c.restarts
	if !c.Running {
		restarts = 0
	}
	return e.verify(ctx, n, s, c.ImageID, restarts)
}

// verify checks what the engine reports about a container it made or started: that it runs and
// was not restarted since (restartsBefore: its count before; an engine shows no address or MAC
// on the network for a container that exited), its identity
// (else the container is removed again), its image.
func (e *Engine) verify(ctx context.Context, c Container, s ContainerSpec, imageID string, restartsBefore int) (Container, error) {
	if !c.Running || c.restarts > restartsBefore {
		// Exited, or restarted by its restart policy since: removed, so nothing untracked stays
		// (run the image by hand to see why).
		why := fmt.Errorf("container %s of %s does not run after its start (status %s, exit code %d, restarted %d times%s)",
			s.Name, s.InstanceID, c.Status, c.ExitCode, c.restarts, prefixed(": ", c.Error))
		if _, err := e.change(ctx, "rm", "--force", s.Name); err != nil && !IsNotFound(err) {
			return Container{}, fmt.Errorf("%w; removing it failed too: %w", why, err)
		}
		return Container{}, fmt.Errorf("%w (container removed)", why)
	}
	if !c.sameIdentity(s) || c.ImageID != imageID {
		why := fmt.Errorf("container %s of %s does not have its planned identity: planned %s on %s (image %s), the engine reports %s on %s (image %s)",
			s.Name, s.InstanceID, identity(s.Hostname, s.IP, s.MAC), s.Network, imageID, identity(c.Hostname, c.IP, c.MAC), orNone(c.Network), c.ImageID)
		if _, err := e.change(ctx, "rm", "--force", s.Name); err != nil && !IsNotFound(err) {
			return Container{}, fmt.Errorf("%w; removing it failed too: %w", why, err)
		}
		return Container{}, fmt.Errorf("%w (container removed)", why)
	}
	if c.Restart != s.Restart {
		return Container{}, fmt.Errorf("container %s of %s has restart policy %s, the plan %s", s.Name, s.InstanceID, c.Restart, s.Restart)
	}
	return c, nil
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// removeMade removes what a failed docker run left (a created container of the instance) and
// returns cause, with the removal's own failure if any.
func (e *Engine) removeMade(ctx context.Context, s ContainerSpec, cause error) error {
	c, err := e.ReadContainer(ctx, s.Name, s.view())
	if err != nil {
		return fmt.Errorf("%w; and then: %w", cause, err)
	}
	if !c.Present || c.InstanceID != s.InstanceID {
		return cause
	}
	if _, err := e.change(ctx, "rm", "--force", s.Name); err != nil && !IsNotFound(err) {
		return fmt.Errorf("%w; removing what it made failed too: %w", cause, err)
	}
	return fmt.Errorf("%w (what it made was removed)", cause)
}

// runArgs is the docker run of s: detached, on its network with its identity, labelled with
// its instance and MAC, its merged dir bind-mounted (a bind mount fails when the source is
// missing; a volume would make an empty one).
func runArgs(s ContainerSpec) []string {
	args := []string{"run", "--detach",
		"--name", s.Name,
		"--hostname", s.Hostname,
		"--label", InstanceLabel + "=" + s.InstanceID,
		"--label", MACLabel + "=" + s.MAC,
		"--network", s.Network,
		"--ip", s.IP,
		"--mac-address", s.MAC,
		"--restart", s.Restart,
		"--mount", "type=bind,source=" + s.Merged + ",target=" + s.Target,
	}
	if s.Privileged {
		args = append(args, "--privileged")
	}
	for _, d := range s.DNS {
		args = append(args, "--dns", d)
	}
	for _, k := range sortedKeys(s.Env) {
		args = append(args, "--env", k+"="+s.Env[k])
	}
	return append(args, s.Image)
}

// checkMerged refuses to start a container on a merged dir that has no overlay mounted.
func (e *Engine) checkMerged(s ContainerSpec) error {
	ok, what, err := e.overlayMountedAt(s.Merged)
	if err != nil || ok {
		return err
	}
	return fmt.Errorf("the overlay of %s is not mounted at %s (%s is): refusing to start its container on it; no container was changed", s.InstanceID, s.Merged, what)
}

// notOurs is the error about a container of that name that is not the instance's.
func (e *Engine) notOurs(c Container, instanceID, what string) error {
	label := "no " + InstanceLabel + " label"
	if c.InstanceID != "" {
		label = fmt.Sprintf("it belongs to %s", c.InstanceID)
	}
	return fmt.Errorf("a container named %s exists that overlay-fleet did not create for %s (%s): %s", c.Name, instanceID, label, what)
}

// DeleteContainer stops and removes the instance's container; one already gone is fine. A
// container of that name that is not the instance's is refused (left alone). A delete that
// takes it away to make it again (t.Replacing) first waits for its turn to be down (admit:
// merged is the instance's merged dir); one for good ends its instance's down record.
func (e *Engine) DeleteContainer(ctx context.Context, name, instanceID, merged string, t TakeDown) (Container, error) {
	var c Container
	err := e.inTurn(ctx, t, instanceID, func(waited time.Duration) (down.Verdict, string, error) {
		l, err := e.lock(ctx, "container delete "+name)
		if err != nil {
			return down.Go, "", err
		}
		defer l.Unlock()
		if t.Replacing && t.Max > 0 {
			// In its turn: decided, recorded and taken down under this one hold of the lock.
			if v, why, err := e.admitLocked(ctx, t, instanceID, merged, name, waited); err != nil || v != down.Go {
				return v, why, err
			}
		}
		c, err = e.deleteLocked(ctx, name, instanceID)
		return down.Go, "", err
	})
	if err == nil && !t.Replacing && e.Down != nil {
		err = e.Down.Remove(instanceID)
	}
	return c, err
}

// deleteLocked is the delete, under the box's docker lock.
func (e *Engine) deleteLocked(ctx context.Context, name, instanceID string) (Container, error) {
	c, err := e.ReadContainer(ctx, name, View{})
	if err != nil || !c.Present {
		return c, err
	}
	if c.InstanceID != instanceID {
		return Container{}, e.notOurs(c, instanceID, "left alone")
	}
	if c.Running {
		// Gracefully first (10 s, then the engine kills it); a stop that fails is made up for
		// by the forced removal.
		_, _ = e.change(ctx, "stop", "--time", "10", name)
	}
	if _, err := e.change(ctx, "rm", "--force", name); err != nil && !IsNotFound(err) {
		return Container{}, fmt.Errorf("cannot remove container %s of %s: %w", name, instanceID, err)
	}
	c, err = e.ReadContainer(ctx, name, View{})
	if err != nil {
		return Container{}, err
	}
	if c.Present {
		return Container{}, fmt.Errorf("container %s of %s is still there after docker rm", name, instanceID)
	}
	return c, nil
}
