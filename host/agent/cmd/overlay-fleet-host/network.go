package main

import (
	"context"
	"io"

	"overlay-fleet/host/agent/internal/docker"
	"overlay-fleet/host/agent/protocol"
)

// networkOp is one decided network action.
type networkOp struct {
	action string
	req    protocol.NetworkRequest
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
	return writeJSON(e.stdout, protocol.NetworkAnswer{
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
