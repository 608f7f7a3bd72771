package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/overlay"
	"overlay-fleet/host/agent/internal/ovlmount"
)

// overlayMountRequest is the request of `overlay-mount <action>` on stdin. create and update
// need every field but purge; read needs merged alone (the others, when given, are what the
// mount is compared with); delete needs merged, and upper and work to purge.
type overlayMountRequest struct {
	// Merged is the mount point; it identifies the instance's mount.
	Merged string `json:"merged"`
	// Lower is the lower dir; Upper and Work are the instance's own dirs.
	Lower string `json:"lower"`
	Upper string `json:"upper"`
	Work  string `json:"work"`
	// Options are the mount options: the pinned ones and any extra (overlay options such as
	// xino=, uuid=, volatile; flags such as ro, noatime, nodev); "" means the pinned ones.
	Options string `json:"options"`
	// Purge (delete only) removes the upper and work dirs after the unmount.
	Purge bool `json:"purge"`
}

// overlayMountState is the answer of every overlay-mount action on stdout: what is mounted on
// the merged dir after the action, read from /proc/self/mountinfo.
type overlayMountState struct {
	Merged string `json:"merged"`
	// Mounted says that an overlay is mounted on Merged; the fields below are empty when not.
	Mounted bool `json:"mounted"`
	// Lower, Upper and Work are its layers: as the request wrote them where they are the same
	// directories, as the kernel shows them where they differ or the request has none.
	Lower string `json:"lower"`
	Upper string `json:"upper"`
	Work  string `json:"work"`
	// Options are the request's options when the kernel has them in effect; else the options
	// it has in effect, in the same words (the pinned keys first).
	Options string `json:"options"`
}

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
	b := ovlmount.Box{Sys: e.mounts, Locks: e.locks}
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
	return writeJSON(e.stdout, overlayMountState{
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
	var r overlayMountRequest
	if err := readJSON(stdin, &r); err != nil {
		return overlayMountOp{}, usagef("overlay-mount %s: %w", op.action, err)
	}
	converge := op.action == "create" || op.action == "update"
	if r.Purge && op.action != "delete" {
		return overlayMountOp{}, usagef("overlay-mount %s: purge is a setting of delete", op.action)
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
	s := ovlmount.Spec{Merged: r.Merged, Lower: r.Lower, Upper: r.Upper, Work: r.Work}
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
