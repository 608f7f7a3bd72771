// Package down keeps the box's "down" records: an instance whose container a replacement took
// away is down until its container runs again. maxDownPerBox bounds how many instances of a box
// are down at once, whatever order the deployment runs the replacements in; a replacement that
// failed keeps its instance down, so the rest of that operation replaces no other container.
//
// A Pulumi replacement of a container is two calls of the agent (delete, then create), so the
// bound cannot be a lock held by one process, as the sh library's slots are: it is a record per
// instance, a file in the box's lock directory, written before the delete takes the container
// away and removed once the create has it running again. A record whose instance is gone for
// good (its overlay no longer mounted) counts no more.
package down

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Record says one instance is down.
type Record struct {
	// Instance is the instance (`<box>/<name>`), Merged its merged dir.
	Instance string `json:"instance"`
	Merged   string `json:"merged"`
	// Container is its container's name: a record whose container runs is over.
	Container string `json:"container,omitempty"`
	// Since is when its container was taken away, Run the operation that did it (the provider
	// process: one `pulumi up`).
	Since time.Time `json:"since"`
	Run   string    `json:"run"`
	// Failed is why making its container again failed, in operation FailedRun; "" while the
	// replacement is under way.
	Failed    string `json:"failed,omitempty"`
	FailedRun string `json:"failedRun,omitempty"`
}

// Store is the directory of the records (in the box's root-only lock directory).
type Store struct {
	Dir string
	// Owner is the uid the directory must belong to (0 on a box).
	Owner int
}

// fileName is the record file of instance (`<box>/<name>`: the slash becomes `@`).
func fileName(instance string) string { return strings.ReplaceAll(instance, "/", "@") + ".json" }

// ensure makes the directory (0700) and refuses one that is a symlink, not its owner's, or
// writable by others.
func (s Store) ensure() error {
	if err := os.Mkdir(s.Dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cannot create the directory of the down records: %w", err)
	}
	fi, err := os.Lstat(s.Dir)
	if err != nil {
		return fmt.Errorf("cannot look at the directory of the down records: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || int(st.Uid) != s.Owner || st.Mode&0o022 != 0 {
		return fmt.Errorf("the directory of the down records %q must be a directory of uid %d that others cannot write (it is %v, uid %d); remove it", s.Dir, s.Owner, fi.Mode(), st.Uid)
	}
	return nil
}

// List returns the records, by instance.
func (s Store) List() ([]Record, error) {
	if err := s.ensure(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list the down records: %w", err)
	}
	var out []Record
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("cannot read the down record %s: %w", e.Name(), err)
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil || fileName(r.Instance) != e.Name() {
			return nil, fmt.Errorf("the down record %s is garbled (remove it if no replacement runs on this box)", filepath.Join(s.Dir, e.Name()))
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}

// Get returns the record of instance, if there is one.
func (s Store) Get(instance string) (Record, bool, error) {
	rs, err := s.List()
	for _, r := range rs {
		if r.Instance == instance {
			return r, true, err
		}
	}
	return Record{}, false, err
}

// Put writes r (atomically: a temp file renamed over the record).
func (s Store) Put(r Record) error {
	if err := s.ensure(); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := filepath.Join(s.Dir, fileName(r.Instance))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("cannot write the down record of %s: %w", r.Instance, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write the down record of %s: %w", r.Instance, err)
	}
	return nil
}

// Remove removes the record of instance; none is fine.
func (s Store) Remove(instance string) error {
	if err := os.Remove(filepath.Join(s.Dir, fileName(instance))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot remove the down record of %s: %w", instance, err)
	}
	return nil
}

// Verdict is whether an instance may be taken down now.
type Verdict int

const (
	// Go: take it down (and record it).
	Go Verdict = iota
	// Wait: as many instances as allowed are down; ask again later.
	Wait
	// Refuse: do not take it down (a replacement failed).
	Refuse
)

// FailedWait is how long a replacement waits on an instance whose replacement failed in an
// earlier operation: the operation under way may make it run again meanwhile (its create runs
// beside this delete); after that, the replacement is refused naming it.
const FailedWait = 2 * time.Minute

// Decide says whether self may be taken down by operation run, with at most max instances of the
// box down, given the records of the instances down (those gone for good already left out) and
// how long self has waited so far; the string says why not.
func Decide(down []Record, self, run string, max int, waited time.Duration) (Verdict, string) {
	var others []string
	for _, r := range down {
		if r.Instance == self {
			continue
		}
		switch {
		case r.Failed != "" && r.FailedRun == run:
			return Refuse, fmt.Sprintf("the replacement of %s failed in this run (%s): no other container of the box is replaced", r.Instance, r.Failed)
		case r.Failed != "" && waited >= FailedWait:
			return Refuse, fmt.Sprintf("%s is down since %s, its replacement failed (%s): make it run again first", r.Instance, r.Since.UTC().Format(time.RFC3339), r.Failed)
		}
		others = append(others, r.Instance)
	}
	if len(others) >= max {
		return Wait, fmt.Sprintf("maxDownPerBox %d: down already: %s", max, strings.Join(others, ", "))
	}
	return Go, ""
}
