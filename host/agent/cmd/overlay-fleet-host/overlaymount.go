package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"overlay-fleet/host/agent/internal/docker"
	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/overlay"
	"overlay-fleet/host/agent/internal/ovlmount"
	"overlay-fleet/host/agent/protocol"
)

// overlayMountOp is one decided overlay-mount action.
type overlayMountOp struct {
	action string
	spec   ovlmount.Spec
	purge  bool
}

// overlayMount runs `overlay-mount <action>`.
func overlayMount(ctx context.Context, e *env, args []string) error {
	op, err := decideOverlayMount(args, e.stdin)
	if err != nil {
		return err
	}
	b := ovlmount.Box{Sys: e.mounts, Locks: e.locks, Docker: ovlmount.Docker{CLI: e.docker.cli}}
	var st ovlmount.State
	switch op.action {
	case "read":
		st, err = ovlmount.Read(b, op.spec)
	case "create", "update":
		st, err = ovlmount.Converge(ctx, b, op.spec)
	case "delete":
		st, err = ovlmount.Remove(ctx, b, op.spec, op.purge)
	}
	if err != nil {
		return err
	}
	return writeJSON(e.stdout, protocol.OverlayMountAnswer{
		Merged: op.spec.Merged, Mounted: st.Mounted, Lower: st.Lower, Upper: st.Upper, Work: st.Work, Options: st.Options,
	})
}

// decideOverlayMount reads and checks the invocation and the request; its errors are usage
// errors.
func decideOverlayMount(args []string, stdin io.Reader) (overlayMountOp, error) {
	if len(args) != 1 {
		return overlayMountOp{}, usagef("overlay-mount takes one action, read, create, update or delete; got %q", args)
	}
	op := overlayMountOp{action: args[0]}
	switch op.action {
	case "read", "create", "update", "delete":
	default:
		return overlayMountOp{}, usagef("overlay-mount action must be read, create, update or delete, got %q", op.action)
	}
	var r protocol.OverlayMountRequest
	if err := readJSON(stdin, &r); err != nil {
		return overlayMountOp{}, usagef("overlay-mount %s: %w", op.action, err)
	}
	converge := op.action == "create" || op.action == "update"
	if r.Purge && op.action != "delete" {
		return overlayMountOp{}, usagef("overlay-mount %s: purge is a setting of delete", op.action)
	}
	if r.Container != "" {
		if !converge {
			return overlayMountOp{}, usagef("overlay-mount %s: container is a setting of create and update", op.action)
		}
		if err := docker.ValidateName("container", r.Container); err != nil {
			return overlayMountOp{}, usageError{err}
		}
	}
	required := map[string]bool{"merged": true, "lower": converge, "upper": converge || r.Purge, "work": converge || r.Purge}
	for _, f := range []struct{ label, value string }{{"merged", r.Merged}, {"lower", r.Lower}, {"upper", r.Upper}, {"work", r.Work}} {
		if f.value == "" && !required[f.label] {
			continue
		}
		if err := layout.ValidatePath(f.label+" dir", f.value); err != nil {
			return overlayMountOp{}, usageError{err}
		}
	}
	s := ovlmount.Spec{Merged: r.Merged, Lower: r.Lower, Upper: r.Upper, Work: r.Work, Container: r.Container}
	options := r.Options
	if options == "" && converge {
		options = overlay.PinnedOptions
	}
	if options != "" && op.action != "delete" {
		o, err := overlay.ParseOptions(fmt.Sprintf("options %q", options), options)
		if err != nil {
			return overlayMountOp{}, usageError{err}
		}
		s.Options, s.HasOptions = o, true
	}
	if err := ovlmount.CheckLayout(s); err != nil {
		return overlayMountOp{}, usageError{err}
	}
	if converge {
		// The mount data as mount(2) will get it: pinned keys kept, length within a page.
		if _, err := overlay.MountData(s.Merged, overlay.Layers{Lower: []string{s.Lower}, Upper: s.Upper, Work: s.Work}, strings.Join(s.Options.Overlay, ",")); err != nil {
			return overlayMountOp{}, usageError{err}
		}
	}
	if r.Purge {
		if err := ovlmount.CheckPurge(s.Merged, s.Upper, s.Work); err != nil {
			return overlayMountOp{}, usageError{err}
		}
	}
	op.spec, op.purge = s, r.Purge
	return op, nil
}
