package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"overlay-fleet/host/agent/internal/fstab"
	"overlay-fleet/host/agent/protocol"
)

// fstabEntryOp is one decided fstab-entry action.
type fstabEntryOp struct {
	action string
	req    protocol.FstabEntryRequest
}

// maxRequest bounds the JSON read from stdin.
const maxRequest = 1 << 20

// fstabEntry runs `fstab-entry <action>`.
func fstabEntry(ctx context.Context, e *env, args []string) error {
	op, err := decideFstabEntry(args, e.stdin)
	if err != nil {
		return err
	}
	state, err := op.do(ctx, e)
	if err != nil {
		return err
	}
	return writeJSON(e.stdout, state)
}

// decideFstabEntry reads and checks the invocation and the request; its errors are usage errors.
func decideFstabEntry(args []string, stdin io.Reader) (fstabEntryOp, error) {
	if len(args) != 1 {
		return fstabEntryOp{}, usagef("fstab-entry takes one action, read, create, update or delete; got %q", args)
	}
	op := fstabEntryOp{action: args[0]}
	switch op.action {
	case "read", "create", "update", "delete":
	default:
		return fstabEntryOp{}, usagef("fstab-entry action must be read, create, update or delete, got %q", op.action)
	}
	if err := readJSON(stdin, &op.req); err != nil {
		return fstabEntryOp{}, usagef("fstab-entry %s: %w", op.action, err)
	}
	r := op.req
	if err := fstab.ValidatePath("fstab", r.FSTab); err != nil {
		return fstabEntryOp{}, usageError{err}
	}
	if err := fstab.ValidateID(r.ID); err != nil {
		return fstabEntryOp{}, usageError{err}
	}
	if op.action == "create" || op.action == "update" {
		if _, err := fstab.FormatLine(r.ID, r.Merged, r.Options); err != nil {
			return fstabEntryOp{}, usageError{err}
		}
	}
	return op, nil
}

// do carries out a decided action. create and update both make the line what the request says
// (a repeated call changes nothing); delete of a missing line succeeds.
func (op fstabEntryOp) do(ctx context.Context, e *env) (protocol.FstabEntryAnswer, error) {
	r := op.req
	var t *fstab.Table
	switch op.action {
	case "read":
		var err error
		if t, err = fstab.Load(r.FSTab); err != nil {
			return protocol.FstabEntryAnswer{}, err
		}
	default:
		ed := &fstab.Editor{Locks: e.locks, Verify: e.verify}
		var res fstab.Result
		var err error
		if op.action == "delete" {
			res, err = ed.Remove(ctx, r.FSTab, r.ID)
		} else {
			res, err = ed.Set(ctx, r.FSTab, r.ID, r.Merged, r.Options)
		}
		if err != nil {
			return protocol.FstabEntryAnswer{}, err
		}
		t = res.Table
	}
	state := protocol.FstabEntryAnswer{FSTab: r.FSTab, ID: r.ID}
	if m, ok := t.Lookup(r.ID); ok {
		state.Present, state.Merged, state.Options, state.Line = true, m.Merged, m.Options, m.Line
	}
	return state, nil
}

// readJSON decodes exactly one JSON object without unknown fields.
func readJSON(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxRequest+1))
	if err != nil {
		return fmt.Errorf("cannot read the request on stdin: %w", err)
	}
	if len(data) > maxRequest {
		return fmt.Errorf("the request on stdin is longer than %d bytes", maxRequest)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("no JSON request on stdin")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON request on stdin: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("bad JSON request on stdin: more than one JSON value")
	}
	return nil
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("cannot encode the answer: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("cannot write the answer: %w", err)
	}
	return nil
}
