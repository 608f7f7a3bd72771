package ovlmount

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// procDir is where users looks for processes.
const procDir = "/proc"

// maxUsers bounds the processes a busy error names.
const maxUsers = 10

// users names the processes (`pid 123 (sleep)`) whose working or root directory or an open file
// is on the filesystem with device major:minor, from the proc directory proc: what fuser -m
// says. Processes that vanish or cannot be looked at are skipped.
func users(proc string, major, minor uint32) []string {
	dev := mkdev(major, minor)
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	var out []string
	for _, pid := range pids {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		if !usesDev(dir, dev) {
			continue
		}
		if len(out) == maxUsers {
			out = append(out, "...")
			break
		}
		name := "pid " + strconv.Itoa(pid)
		if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
			name += " (" + strings.TrimSpace(string(comm)) + ")"
		}
		out = append(out, name)
	}
	return out
}

// usesDev says whether the process at dir (/proc/<pid>) has its cwd, root or an open file on
// device dev.
func usesDev(dir string, dev uint64) bool {
	links := []string{filepath.Join(dir, "cwd"), filepath.Join(dir, "root")}
	if fds, err := os.ReadDir(filepath.Join(dir, "fd")); err == nil {
		for _, fd := range fds {
			links = append(links, filepath.Join(dir, "fd", fd.Name()))
		}
	}
	for _, l := range links {
		var st syscall.Stat_t
		if syscall.Stat(l, &st) == nil && uint64(st.Dev) == dev {
			return true
		}
	}
	return false
}

// mkdev is the device number of major:minor as stat(2) reports it (glibc's encoding).
func mkdev(major, minor uint32) uint64 {
	ma, mi := uint64(major), uint64(minor)
	return mi&0xff | (ma&0xfff)<<8 | (mi&^0xff)<<12 | (ma&^0xfff)<<32
}

// inUseBy is the users of a mount for an error: `; in use by: pid 1 (a), pid 2 (b)`, or "".
func inUseBy(users []string) string {
	if len(users) == 0 {
		return ""
	}
	return fmt.Sprintf("; in use by: %s", strings.Join(users, ", "))
}
