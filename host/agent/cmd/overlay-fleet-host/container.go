package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"overlay-fleet/host/agent/internal/docker"
	"overlay-fleet/host/agent/internal/fstab"
	"overlay-fleet/host/agent/protocol"
)

// containerOp is one decided container action.
type containerOp struct {
	action   string
	spec     docker.ContainerSpec
	takeDown docker.TakeDown
}

// containerCmd runs `container <action>`.
func containerCmd(ctx context.Context, e *env, args []string) error {
	op, err := decideContainer(args, e.stdin)
	if err != nil {
		return err
	}
	eng := e.engine()
	s := op.spec
	var c docker.Container
	switch op.action {
	case "read":
		c, err = eng.ReadContainer(ctx, s.Name, docker.View{Network: s.Network, Target: s.Target, EnvKeys: slices.Sorted(maps.Keys(s.Env))})
	case "create", "update":
		c, err = eng.CreateContainer(ctx, s, op.takeDown)
	case "delete":
		c, err = eng.DeleteContainer(ctx, s.Name, s.InstanceID, s.Merged, op.takeDown)
	}
	if err != nil {
		return err
	}
	st := protocol.ContainerAnswer{
		Name: s.Name, ID: c.ID, Present: c.Present, Running: c.Running, Status: c.Status, InstanceID: c.InstanceID,
		Hostname: c.Hostname, Network: c.Network, IP: c.IP, MAC: c.MAC, Image: c.Image, ImageID: c.ImageID,
		Merged: c.Merged, Target: c.Target, Restart: c.Restart, Privileged: c.Privileged, DNS: c.DNS, Env: c.Env,
	}
	if st.DNS == nil {
		st.DNS = []string{}
	}
	if st.Env == nil {
		st.Env = map[string]string{}
	}
	return writeJSON(e.stdout, st)
}

// decideContainer reads and checks the invocation and the request; its errors are usage errors.
func decideContainer(args []string, stdin io.Reader) (containerOp, error) {
	if len(args) != 1 {
		return containerOp{}, usagef("container takes one action, read, create, update or delete; got %q", args)
	}
	op := containerOp{action: args[0]}
	switch op.action {
	case "read", "create", "update", "delete":
	default:
		return containerOp{}, usagef("container action must be read, create, update or delete, got %q", op.action)
	}
	var r protocol.ContainerRequest
	if err := readJSON(stdin, &r); err != nil {
		return containerOp{}, usagef("container %s: %w", op.action, err)
	}
	op.spec = docker.ContainerSpec{
		Name: r.Name, InstanceID: r.InstanceID, Hostname: r.Hostname, Network: r.Network, IP: r.IP, MAC: r.MAC,
		Image: r.Image, ImageID: r.ImageID, Merged: r.Merged, Target: r.Target, Restart: r.Restart,
		Privileged: r.Privileged, DNS: r.DNS, Env: r.Env,
	}
	if err := checkContainer(op.action, &op.spec); err != nil {
		return containerOp{}, usageError{err}
	}
	op.takeDown = docker.TakeDown{Max: r.MaxDown, Run: r.Run, Replacing: r.Replacing}
	if err := checkTakeDown(op.action, op.spec, op.takeDown); err != nil {
		return containerOp{}, usageError{err}
	}
	return op, nil
}

// checkContainer checks the fields the action uses and fills in the defaults.
func checkContainer(action string, s *docker.ContainerSpec) error {
	if err := docker.ValidateName("container name", s.Name); err != nil {
		return err
	}
	if action == "read" {
		if s.Network != "" {
			if err := docker.ValidateName("network name", s.Network); err != nil {
				return err
			}
		}
		if s.Target != "" {
			if err := checkBindPath("mount target", s.Target); err != nil {
				return err
			}
		}
		for k := range s.Env {
			if err := docker.ValidateEnv(k, ""); err != nil {
				return err
			}
		}
		return nil
	}
	if err := fstab.ValidateID(s.InstanceID); err != nil {
		return err
	}
	if action == "delete" {
		return nil
	}
	if s.Target == "" {
		s.Target = docker.DefaultTarget
	}
	if s.Restart == "" {
		s.Restart = "always"
	}
	checks := []func() error{
		func() error { return docker.ValidateHostname(s.Hostname) },
		func() error { return docker.ValidateName("network name", s.Network) },
		func() error { return docker.ValidateIPv4("ip", s.IP) },
		func() error { return docker.ValidateMAC(s.MAC) },
		func() error { return docker.ValidateImage(s.Image) },
		func() error {
			if s.ImageID == "" {
				return nil
			}
			return docker.ValidateImageID(s.ImageID)
		},
		func() error { return checkBindPath("merged dir", s.Merged) },
		func() error { return checkBindPath("mount target", s.Target) },
		func() error { return docker.ValidateRestart(s.Restart) },
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	for _, d := range s.DNS {
		if err := docker.ValidateIPv4("DNS server", d); err != nil {
			return err
		}
	}
	for k, v := range s.Env {
		if err := docker.ValidateEnv(k, v); err != nil {
			return err
		}
	}
	return nil
}

// checkTakeDown checks what bounds a replacement: a delete that replaces needs the merged dir
// (its down record counts while the instance's overlay is mounted) and the run.
func checkTakeDown(action string, s docker.ContainerSpec, t docker.TakeDown) error {
	switch {
	case t.Max < 0:
		return fmt.Errorf("maxDown must be 0 (not bounded) or more, got %d", t.Max)
	case t.Replacing && action != "delete":
		return fmt.Errorf("replacing is for a delete, not a %s", action)
	case t.Max > 0 && strings.TrimSpace(t.Run) == "":
		return fmt.Errorf("maxDown %d needs the run (the operation) it is counted in", t.Max)
	case t.Replacing && t.Max > 0:
		return checkBindPath("merged dir", s.Merged)
	}
	return nil
}

// checkBindPath checks a path of the bind mount: --mount reads its value as CSV, so no commas
// or quotes; absolute and clean.
func checkBindPath(label, path string) error {
	if err := fstab.ValidatePath(label, path); err != nil {
		return err
	}
	if strings.ContainsAny(path, `"'`) {
		return fmt.Errorf("%s %q contains a quote (docker --mount reads its value as CSV)", label, path)
	}
	if path == "/" {
		return fmt.Errorf("%s must not be /", label)
	}
	return nil
}
