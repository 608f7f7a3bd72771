package ovlmount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"overlay-fleet/host/agent/internal/mountinfo"
)

// namespaces are the mount namespaces of the processes under proc (a /proc) other than the
// caller's own, each once (by the inode /proc/<pid>/ns/mnt names), with the mount table of its
// lowest pid. A process that ends while it is looked at is skipped (the next one of its
// namespace is read instead). A namespace that no process is in (kept by a bind mount of its
// nsfs file) cannot be read this way.
func namespaces(proc string) ([]Namespace, error) {
	self, err := os.Readlink(filepath.Join(proc, "self", "ns", "mnt"))
	if err != nil {
		return nil, fmt.Errorf("cannot tell the agent's own mount namespace: %w", err)
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("cannot list the processes of the box: %w", err)
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	seen := map[string]bool{self: true}
	var out []Namespace
	for _, pid := range pids {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		id, err := os.Readlink(filepath.Join(dir, "ns", "mnt"))
		if err != nil || seen[id] {
			continue // ended, a zombie, or a namespace already read
		}
		t, err := mountinfo.ReadFile(filepath.Join(dir, "mountinfo"))
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) || (err == nil && len(t) == 0):
			continue // it ended meanwhile (a live namespace has at least its root)
		case err != nil:
			return nil, fmt.Errorf("cannot read the mounts of mount namespace %s (pid %d): %w", id, pid, err)
		}
		seen[id] = true
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, Namespace{ID: id, PID: pid, Comm: strings.TrimSpace(string(comm)), Table: t})
	}
	return out, nil
}
