package lock

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// fileID is what /proc/locks says about a locked file: its device and inode.
type fileID struct {
	major, minor uint64
	ino          uint64
}

// holder says who to look for when a lock stays taken: the process holding the flock on the
// file f has open, as /proc/locks names it, or a hint when it does not.
func (d *Dir) holder(f *os.File) string {
	hint := "look for another overlay-fleet-host on this box (fuser -v " + f.Name() + ")"
	fi, err := f.Stat()
	if err != nil {
		return hint
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return hint
	}
	proc := d.procDir
	if proc == "" {
		proc = "/proc"
	}
	dev := uint64(st.Dev)
	pids, err := flockHolders(filepath.Join(proc, "locks"), fileID{major: devMajor(dev), minor: devMinor(dev), ino: st.Ino})
	if err != nil || len(pids) == 0 {
		return hint
	}
	var who []string
	for _, pid := range pids {
		s := "pid " + strconv.Itoa(pid)
		if comm, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm")); err == nil {
			s += " (" + strings.TrimSpace(string(comm)) + ")"
		}
		who = append(who, s)
	}
	return "held by " + strings.Join(who, ", ")
}

// flockHolders are the pids that hold a FLOCK lock on the file id, read from a /proc/locks
// file. Its lines look like
//
//	1: FLOCK  ADVISORY  WRITE 1234 08:02:131090 0 EOF
//	1: -> FLOCK  ADVISORY  WRITE 5678 08:02:131090 0 EOF
//
// where `->` marks a waiter and the device is major:minor in hex.
func flockHolders(locksFile string, id fileID) ([]int, error) {
	f, err := os.Open(locksFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue // a waiter (`->`), a POSIX lock or a line of another form
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil {
			continue
		}
		if got, ok := parseFileID(fields[5]); ok && got == id {
			pids = append(pids, pid)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", locksFile, err)
	}
	return pids, nil
}

// parseFileID reads the `major:minor:inode` field of /proc/locks (major and minor in hex).
func parseFileID(s string) (fileID, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return fileID{}, false
	}
	major, err1 := strconv.ParseUint(parts[0], 16, 32)
	minor, err2 := strconv.ParseUint(parts[1], 16, 32)
	ino, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return fileID{}, false
	}
	return fileID{major: major, minor: minor, ino: ino}, true
}

// devMajor and devMinor split a device number as stat(2) returns it (glibc's encoding).
func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&0xfffff000 }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&0xffffff00 }
