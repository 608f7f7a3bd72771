package ovlmount

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"overlay-fleet/host/agent/internal/layout"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// Namespace is a mount namespace of the box other than the agent's, as a process in it sees it.
// An overlay unmounted in the agent's namespace lives on in another that has it mounted (a
// container's bind of the merged dir, a private copy made by `unshare -m`), unless the unmount
// reaches that copy by mount propagation; and an unmount there is not even refused as busy.
type Namespace struct {
	// ID is how /proc/<pid>/ns/mnt names it: `mnt:[4026532210]`.
	ID string
	// PID is a process in it (the lowest pid), Comm that process's name.
	PID  int
	Comm string
	// Table is the process's /proc/<pid>/mountinfo (mount points relative to its root).
	Table mountinfo.Table
}

// Holder is a mount that keeps an instance's overlay, or one of its dirs, in use: a mount of it
// in another mount namespace, or elsewhere in the agent's.
type Holder struct {
	// NS is the namespace ("" for the agent's own), PID and Comm a process in it.
	NS   string
	PID  int
	Comm string
	// Mount is the mount, as that process's mountinfo shows it.
	Mount mountinfo.Mount
}

// String names the holder for an error: `pid 123 (sleep) in mount namespace mnt:[4026532210]
// has it mounted on "/mnts"`.
func (h Holder) String() string {
	if h.NS == "" {
		return fmt.Sprintf("a mount of it on %q in the agent's own mount namespace", h.Mount.MountPoint)
	}
	return fmt.Sprintf("pid %d (%s) in mount namespace %s has it mounted on %q", h.PID, h.Comm, h.NS, h.Mount.MountPoint)
}

// maxHolders bounds the holders an error names.
const maxHolders = 10

// heldBy is holders for an error, joined by "; ".
func heldBy(holders []Holder) string {
	var s []string
	for i, h := range holders {
		if i == maxHolders {
			s = append(s, fmt.Sprintf("... (%d in all)", len(holders)))
			break
		}
		s = append(s, h.String())
	}
	return strings.Join(s, "; ")
}

// overlayHolders are the mounts of the superblock of top, the overlay on canonMerged in own (the
// agent's mount table), that an unmount of canonMerged leaves mounted: in own, those elsewhere
// (a bind of it; those stacked on canonMerged itself are unmounted one by one); in the other
// namespaces nss, all but the copies that the unmount reaches by mount propagation. Those are
// the copies of top on the same mount point with the same root that are in top's peer group
// (`shared:N`) or receive from it (`master:N`, through chains of slaves too): the kernel unmounts
// them with top, or refuses the unmount as busy. Every other mount of it (a private copy, a bind
// on another mount point such as a container's volume) keeps the overlay alive.
func overlayHolders(own mountinfo.Table, canonMerged string, top mountinfo.Mount, nss []Namespace) []Holder {
	var out []Holder
	for _, m := range own {
		if sameDev(m, top.Major, top.Minor) && m.MountPoint != canonMerged {
			out = append(out, Holder{Mount: m})
		}
	}
	reach := map[int]bool{}
	if n, ok := peerGroup(top, "shared"); ok {
		reach[n] = true
	}
	for grew := len(reach) > 0; grew; { // slaves of slaves: their own peer groups receive too
		grew = false
		for _, ns := range nss {
			for _, m := range ns.Table {
				master, isSlave := peerGroup(m, "master")
				shared, isShared := peerGroup(m, "shared")
				if sameDev(m, top.Major, top.Minor) && isSlave && isShared && reach[master] && !reach[shared] {
					reach[shared], grew = true, true
				}
			}
		}
	}
	for _, ns := range nss {
		for _, m := range ns.Table {
			if !sameDev(m, top.Major, top.Minor) {
				continue
			}
			master, isSlave := peerGroup(m, "master")
			shared, isShared := peerGroup(m, "shared")
			propagated := (isSlave && reach[master]) || (isShared && reach[shared])
			if propagated && m.MountPoint == top.MountPoint && m.Root == top.Root {
				continue
			}
			out = append(out, Holder{NS: ns.ID, PID: ns.PID, Comm: ns.Comm, Mount: m})
		}
	}
	return out
}

// superblockHolders are all mounts of gone's filesystem in own and in nss: after an overlay's
// unmount, what keeps it alive. A filesystem is its device number and what the kernel shows of
// its superblock (type and superblock options: an overlay's layers): an overlay's anonymous device
// number is free again once it is gone, and the next overlay mounted anywhere may get it.
func superblockHolders(own mountinfo.Table, gone mountinfo.Mount, nss []Namespace) []Holder {
	same := func(m mountinfo.Mount) bool {
		return sameDev(m, gone.Major, gone.Minor) && m.FSType == gone.FSType && m.SuperOptions == gone.SuperOptions
	}
	var out []Holder
	for _, m := range own {
		if same(m) {
			out = append(out, Holder{Mount: m})
		}
	}
	for _, ns := range nss {
		for _, m := range ns.Table {
			if same(m) {
				out = append(out, Holder{NS: ns.ID, PID: ns.PID, Comm: ns.Comm, Mount: m})
			}
		}
	}
	return out
}

// dirHolders are the binds of canonDir (an upper or work dir, its symlinks resolved), or of a
// dir inside it, in own and in nss: the mounts of its filesystem whose root is canonDir or below
// it. Its filesystem and its path there are those of the mount own has it on. The copies of that
// mount itself (a disk mounted in every namespace) have a root above canonDir and do not count.
func dirHolders(own mountinfo.Table, canonDir string, nss []Namespace) []Holder {
	on, ok := mountOf(own, canonDir)
	if !ok {
		return nil
	}
	rel, err := filepath.Rel(on.MountPoint, canonDir)
	if err != nil {
		return nil
	}
	fsPath := filepath.Join(on.Root, rel)
	holds := func(m mountinfo.Mount) bool {
		return sameDev(m, on.Major, on.Minor) && layout.Within(m.Root, fsPath)
	}
	var out []Holder
	for _, m := range own {
		if m.ID != on.ID && holds(m) {
			out = append(out, Holder{Mount: m})
		}
	}
	for _, ns := range nss {
		for _, m := range ns.Table {
			if holds(m) {
				out = append(out, Holder{NS: ns.ID, PID: ns.PID, Comm: ns.Comm, Mount: m})
			}
		}
	}
	return out
}

// mountOf is the mount of t that path (absolute, its symlinks resolved) is on: the top-most on
// the deepest mount point at or above it.
func mountOf(t mountinfo.Table, path string) (mountinfo.Mount, bool) {
	best := ""
	for _, m := range t {
		if layout.Within(path, m.MountPoint) && len(m.MountPoint) > len(best) {
			best = m.MountPoint
		}
	}
	if best == "" {
		return mountinfo.Mount{}, false
	}
	return t.Top(best)
}

func sameDev(m mountinfo.Mount, major, minor uint32) bool {
	return m.Major == major && m.Minor == minor
}

// peerGroup is the number of the optional field `<tag>:N` of m (tag shared or master).
func peerGroup(m mountinfo.Mount, tag string) (int, bool) {
	for _, f := range m.OptionalFields {
		if v, ok := strings.CutPrefix(f, tag+":"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}
