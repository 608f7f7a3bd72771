package main

import (
	"path/filepath"

	"overlay-fleet/host/agent/internal/docker"
	"overlay-fleet/host/agent/internal/down"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// dockerBox is what the network and container subcommands act with: the box's docker CLI and
// its mount table in main, fakes in tests.
type dockerBox struct {
	// cli runs the box's docker CLI (each call with its timeout).
	cli docker.Runner
	// mountTable reads the mount table (a container's merged dir must have its overlay mounted).
	mountTable func() (mountinfo.Table, error)
}

// boxDocker is the dockerBox of the real box.
func boxDocker() dockerBox {
	return dockerBox{cli: &docker.CLI{}, mountTable: mountinfo.Read}
}

// engine is the box's docker engine with the box's locks.
func (e *env) engine() *docker.Engine {
	return &docker.Engine{Docker: e.docker.cli, Locks: e.locks, MountTable: e.docker.mountTable,
		Down: &down.Store{Dir: filepath.Join(e.locks.Path, "down"), Owner: e.locks.Owner}}
}
