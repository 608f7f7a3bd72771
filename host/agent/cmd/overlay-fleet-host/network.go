package main

import (
	"context"
	"io"

	"overlay-fleet/host/agent/internal/docker"
)

// networkRequest is the request of `network <action>` on stdin. read uses only Name; delete
// Name and Box; create every field.
type networkRequest struct {
	// Name is the docker network's name.
	Name string `json:"name"`
	// Parent is the macvlan parent interface, e.g. eth0.
	Parent string `json:"parent"`
	// Subnet is its IPv4 subnet in CIDR form, Gateway the LAN's gateway in it.
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	// Box is the box it belongs to (label overlay-fleet.box=<box>).
	Box string `json:"box"`
}

// networkState is the answer of every network action on stdout: the network of that name as
// `docker network inspect` reports it after the action.
type networkState struct {
	Name string `json:"name"`
	// ID is the network's full id.
	ID string `json:"id"`
	// Present says that the engine has a network of that name; the fields below are empty
	// when not.
	Present bool   `json:"present"`
	Driver  string `json:"driver"`
	Parent  string `json:"parent"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	// Box is its overlay-fleet.box label ("" for a network overlay-fleet did not make).
	Box string `json:"box"`
}

// networkOp is one decided network action.
type networkOp struct {
	action string
	req    networkRequest
}

// networkCmd runs `network <action>`.
func networkCmd(ctx context.Context, e *env, args []string) error {
	op, err := decideNetwork(args, e.stdin)
	if err != nil {
		return err
	}
	eng := e.engine()
	r := op.req
	var n docker.Network
	switch op.action {
	case "read":
		n, err = eng.ReadNetwork(ctx, r.Name)
	case "create":
		n, err = eng.CreateNetwork(ctx, docker.NetworkSpec{Name: r.Name, Parent: r.Parent, Subnet: r.Subnet, Gateway: r.Gateway, Box: r.Box})
	case "delete":
		n, err = eng.DeleteNetwork(ctx, r.Name, r.Box)
	}
	if err != nil {
		return err
	}
	return writeJSON(e.stdout, networkState{
		Name: r.Name, ID: n.ID, Present: n.Present, Driver: n.Driver, Parent: n.Parent, Subnet: n.Subnet, Gateway: n.Gateway, Box: n.Box,
	})
}

// decideNetwork reads and checks the invocation and the request; its errors are usage errors.
func decideNetwork(args []string, stdin io.Reader) (networkOp, error) {
	if len(args) != 1 {
		return networkOp{}, usagef("network takes one action, read, create or delete; got %q", args)
	}
	op := networkOp{action: args[0]}
	switch op.action {
	case "read", "create", "delete":
	default:
		return networkOp{}, usagef("network action must be read, create or delete, got %q", op.action)
	}
	if err := readJSON(stdin, &op.req); err != nil {
		return networkOp{}, usagef("network %s: %w", op.action, err)
	}
	r := op.req
	if err := docker.ValidateName("network name", r.Name); err != nil {
		return networkOp{}, usageError{err}
	}
	if op.action == "read" {
		return op, nil
	}
	if err := docker.ValidateBox(r.Box); err != nil {
		return networkOp{}, usageError{err}
	}
	if op.action == "create" {
		if err := docker.ValidateParent(r.Parent); err != nil {
			return networkOp{}, usageError{err}
		}
		if err := docker.ValidateSubnet(r.Subnet, r.Gateway); err != nil {
			return networkOp{}, usageError{err}
		}
	}
	return op, nil
}
