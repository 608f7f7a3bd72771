package ovlmount

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"overlay-fleet/host/agent/internal/mountinfo"
)

// table parses mountinfo text (one mount per line, leading blanks trimmed).
func table(t *testing.T, text string) mountinfo.Table {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	tab, err := mountinfo.Parse(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// held names holders as `<ns or "own">:<mount point>`, for comparisons.
func held(hs []Holder) []string {
	var out []string
	for _, h := range hs {
		ns := h.NS
		if ns == "" {
			ns = "own"
		}
		out = append(out, ns+":"+h.Mount.MountPoint)
	}
	return out
}

// The box: the root, the disk (8:17) on /d, instance n1's overlay (0:50) on /d/n1/mnts.
const (
	ownRoot = `1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw
		20 1 8:17 / /d rw shared:2 - ext4 /dev/sdb1 rw`
	ownOverlay       = `50 20 0:50 / /d/n1/mnts rw shared:7 - overlay overlay rw,lowerdir=/d/cache,upperdir=/d/n1/upper,workdir=/d/n1/work`
	ownPrivateLayout = `1 0 8:1 / / rw - ext4 /dev/sda1 rw
		20 1 8:17 / /d rw - ext4 /dev/sdb1 rw
		50 20 0:50 / /d/n1/mnts rw - overlay overlay rw,lowerdir=/d/cache,upperdir=/d/n1/upper,workdir=/d/n1/work`
)

func TestOverlayHolders(t *testing.T) {
	tests := []struct {
		name string
		own  string
		// nss are the other namespaces' mountinfo texts, by id.
		nss  map[string]string
		want []string
	}{
		{name: "no other namespace", own: ownRoot + "\n" + ownOverlay},
		{
			name: "a systemd service's slave copy on the same mount point: unmounted with it",
			own:  ownRoot + "\n" + ownOverlay,
			nss: map[string]string{"mnt:[2]": `100 99 8:1 / / rw master:1 - ext4 /dev/sda1 rw
				101 100 8:17 / /d rw master:2 - ext4 /dev/sdb1 rw
				102 101 0:50 / /d/n1/mnts rw master:7 - overlay overlay rw,lowerdir=/d/cache,upperdir=/d/n1/upper,workdir=/d/n1/work`},
		},
		{
			name: "a peer copy (unshare --propagation unchanged), and a slave of a slave",
			own:  ownRoot + "\n" + ownOverlay,
			nss: map[string]string{
				"mnt:[2]": `102 101 0:50 / /d/n1/mnts rw shared:7 - overlay overlay rw`,
				"mnt:[3]": `202 201 0:50 / /d/n1/mnts rw shared:30 master:7 - overlay overlay rw`,
				"mnt:[4]": `302 301 0:50 / /d/n1/mnts rw master:30 - overlay overlay rw`,
			},
		},
		{
			name: "a private copy (unshare -m): the unmount does not reach it",
			own:  ownRoot + "\n" + ownOverlay,
			nss:  map[string]string{"mnt:[2]": `102 101 0:50 / /d/n1/mnts rw - overlay overlay rw,lowerdir=/d/cache`},
			want: []string{"mnt:[2]:/d/n1/mnts"},
		},
		{
			name: "a container's volume: a bind of it on another mount point, slave or not",
			own:  ownRoot + "\n" + ownOverlay,
			nss: map[string]string{
				"mnt:[2]": `400 399 0:90 / / rw - overlay overlay rw,lowerdir=/var/lib/docker/l/A
					401 400 0:50 / /mnts rw master:7 - overlay overlay rw,lowerdir=/d/cache`,
				"mnt:[3]": `500 499 0:91 / / rw - overlay overlay rw
					501 500 0:50 /sub /data rw - overlay overlay rw`,
			},
			want: []string{"mnt:[2]:/mnts", "mnt:[3]:/data"},
		},
		{
			name: "a slave copy with another root (a bind of a dir inside it) is no copy of it",
			own:  ownRoot + "\n" + ownOverlay,
			nss:  map[string]string{"mnt:[2]": `102 101 0:50 /sub /d/n1/mnts rw master:7 - overlay overlay rw`},
			want: []string{"mnt:[2]:/d/n1/mnts"},
		},
		{
			name: "a slave of another peer group",
			own:  ownRoot + "\n" + ownOverlay,
			nss:  map[string]string{"mnt:[2]": `102 101 0:50 / /d/n1/mnts rw master:8 - overlay overlay rw`},
			want: []string{"mnt:[2]:/d/n1/mnts"},
		},
		{
			name: "ours is private: every copy holds it",
			own:  ownPrivateLayout,
			nss:  map[string]string{"mnt:[2]": `102 101 0:50 / /d/n1/mnts rw master:7 - overlay overlay rw`},
			want: []string{"mnt:[2]:/d/n1/mnts"},
		},
		{
			name: "a bind of it elsewhere in the agent's own namespace; one stacked on the merged dir is unmounted in turn",
			own: ownRoot + "\n" + ownOverlay + `
				60 20 0:50 / /d/elsewhere rw shared:7 - overlay overlay rw
				61 50 0:50 / /d/n1/mnts rw shared:7 - overlay overlay rw`,
			want: []string{"own:/d/elsewhere"},
		},
		{
			name: "other overlays and filesystems, here and there",
			own:  ownRoot + "\n" + ownOverlay + "\n" + `70 20 0:51 / /d/n2/mnts rw shared:9 - overlay overlay rw,upperdir=/d/n1/upper`,
			nss: map[string]string{"mnt:[2]": `100 99 8:1 / / rw - ext4 /dev/sda1 rw
				101 100 8:17 / /d rw - ext4 /dev/sdb1 rw
				102 101 0:52 / /d/n1/mnts rw - overlay overlay rw,lowerdir=/d/cache,upperdir=/d/n1/upper,workdir=/d/n1/work`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			own := table(t, tt.own)
			top, ok := own.Top("/d/n1/mnts")
			if !ok {
				t.Fatal("no overlay on /d/n1/mnts")
			}
			var nss []Namespace
			for _, id := range []string{"mnt:[2]", "mnt:[3]", "mnt:[4]"} {
				if text, ok := tt.nss[id]; ok {
					nss = append(nss, Namespace{ID: id, PID: 100, Comm: "sleep", Table: table(t, text)})
				}
			}
			if got := held(overlayHolders(own, "/d/n1/mnts", top, nss)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("overlayHolders() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSuperblockHolders(t *testing.T) {
	const layers = "rw,lowerdir=/d/lower,upperdir=/d/n1/upper,workdir=/d/n1/work"
	own := table(t, ownRoot+"\n"+`60 20 0:50 / /d/elsewhere rw - overlay overlay `+layers)
	nss := []Namespace{
		{ID: "mnt:[2]", PID: 7, Comm: "sh", Table: table(t, `102 101 0:50 / /d/n1/mnts rw master:7 - overlay overlay `+layers+`
			103 101 0:51 / /d/n2/mnts rw - overlay overlay rw,lowerdir=/d/lower,upperdir=/d/n2/upper,workdir=/d/n2/work`)},
		// Its device number again, but another overlay: the number was free and given anew.
		{ID: "mnt:[3]", PID: 9, Comm: "bench", Table: table(t, `202 201 8:17 / /d rw - ext4 /dev/sdb1 rw
			203 201 0:50 / /tmp/x/mnts rw - overlay overlay rw,lowerdir=/tmp/x/lower,upperdir=/tmp/x/upper,workdir=/tmp/x/work`)},
	}
	gone := mountinfo.Mount{Major: 0, Minor: 50, FSType: "overlay", SuperOptions: layers}
	if got, want := held(superblockHolders(own, gone, nss)), []string{"own:/d/elsewhere", "mnt:[2]:/d/n1/mnts"}; !reflect.DeepEqual(got, want) {
		t.Errorf("superblockHolders(0:50) = %q, want %q", got, want)
	}
	gone.Minor = 99
	if got := superblockHolders(own, gone, nss); len(got) != 0 {
		t.Errorf("superblockHolders(0:99) = %q, want none", held(got))
	}
}

func TestDirHolders(t *testing.T) {
	tests := []struct {
		name, own, other, dir string
		want                  []string
	}{
		{
			name:  "the disk in every namespace is no bind of the upper",
			own:   ownRoot,
			other: `101 100 8:17 / /d rw master:2 - ext4 /dev/sdb1 rw`,
			dir:   "/d/n1/upper",
		},
		{
			name:  "a bind of the upper, and of a dir inside it, in another namespace",
			own:   ownRoot,
			other: "101 100 8:17 /n1/upper /data rw - ext4 /dev/sdb1 rw\n102 100 8:17 /n1/upper/cache /cache rw - ext4 /dev/sdb1 rw",
			dir:   "/d/n1/upper",
			want:  []string{"mnt:[2]:/data", "mnt:[2]:/cache"},
		},
		{
			name:  "a bind of the instance dir (around the upper) or a sibling is not one of it",
			own:   ownRoot,
			other: "101 100 8:17 /n1 /inst rw - ext4 /dev/sdb1 rw\n102 100 8:17 /n1/upper2 /u2 rw - ext4 /dev/sdb1 rw",
			dir:   "/d/n1/upper",
		},
		{
			name:  "the same path on another filesystem (another box's disk)",
			own:   ownRoot,
			other: `101 100 8:33 /n1/upper /data rw - ext4 /dev/sdc1 rw`,
			dir:   "/d/n1/upper",
		},
		{
			name:  "the disk mounted from a subdir: paths within the filesystem",
			own:   "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n20 1 8:17 /vol /d rw - ext4 /dev/sdb1 rw\n21 1 8:17 /vol/n1/upper/x /mnt/x rw - ext4 /dev/sdb1 rw",
			other: "101 100 8:17 /vol/n1/upper /data rw - ext4 /dev/sdb1 rw\n102 100 8:17 /n1/upper /wrong rw - ext4 /dev/sdb1 rw",
			dir:   "/d/n1/upper",
			want:  []string{"own:/mnt/x", "mnt:[2]:/data"},
		},
		{
			name:  "on the root filesystem",
			own:   "1 0 8:1 / / rw - ext4 /dev/sda1 rw",
			other: "101 100 8:1 /srv/n1/work /w rw - ext4 /dev/sda1 rw\n102 100 8:1 / / rw - ext4 /dev/sda1 rw",
			dir:   "/srv/n1/work",
			want:  []string{"mnt:[2]:/w"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nss := []Namespace{{ID: "mnt:[2]", PID: 5, Comm: "c", Table: table(t, tt.other)}}
			if got := held(dirHolders(table(t, tt.own), tt.dir, nss)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("dirHolders(%s) = %q, want %q", tt.dir, got, tt.want)
			}
		})
	}
}

func TestHolderString(t *testing.T) {
	hs := []Holder{
		{NS: "mnt:[4026532210]", PID: 123, Comm: "sleep", Mount: mountinfo.Mount{MountPoint: "/mnts"}},
		{Mount: mountinfo.Mount{MountPoint: "/d/x"}},
	}
	want := `pid 123 (sleep) in mount namespace mnt:[4026532210] has it mounted on "/mnts"; a mount of it on "/d/x" in the agent's own mount namespace`
	if got := heldBy(hs); got != want {
		t.Errorf("heldBy() = %q\nwant %q", got, want)
	}
	many := make([]Holder, 12)
	if got := heldBy(many); !strings.HasSuffix(got, "; ... (12 in all)") || strings.Count(got, "; ") != 10 {
		t.Errorf("heldBy(12) = %q", got)
	}
}

func TestNamespaces(t *testing.T) {
	proc := t.TempDir()
	info := map[string]string{
		"ns-self": "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
		"ns-a":    "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:50 / /mnts rw - overlay overlay rw\n",
		"ns-b":    "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
	}
	// pid: its namespace ("" for a process that ended: no ns link; "gone" for one that ended
	// while it was looked at: an empty mountinfo).
	procs := map[string]string{"1": "ns-self", "7": "ns-a", "30": "ns-a", "12": "", "15": "gone", "16": "ns-b", "self": "ns-self"}
	for pid, ns := range procs {
		dir := filepath.Join(proc, pid)
		must(t, os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "comm"), []byte("p"+pid+"\n"), 0o644))
		switch ns {
		case "":
			continue
		case "gone":
			must(t, os.Symlink("mnt:[ns-b]", filepath.Join(dir, "ns", "mnt")))
			must(t, os.WriteFile(filepath.Join(dir, "mountinfo"), nil, 0o644))
			continue
		}
		must(t, os.Symlink("mnt:["+ns+"]", filepath.Join(dir, "ns", "mnt")))
		must(t, os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(info[ns]), 0o644))
	}
	got, err := namespaces(proc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ns := range got {
		names = append(names, ns.ID+" "+ns.Comm+" "+strconv.Itoa(len(ns.Table)))
	}
	if want := []string{"mnt:[ns-a] p7 2", "mnt:[ns-b] p16 1"}; !reflect.DeepEqual(names, want) {
		t.Errorf("namespaces() = %q, want %q", names, want)
	}

	must(t, os.WriteFile(filepath.Join(proc, "16", "mountinfo"), []byte("garbage\n"), 0o644))
	if _, err := namespaces(proc); err == nil || !strings.Contains(err.Error(), "mnt:[ns-b] (pid 16)") {
		t.Errorf("a mount table that cannot be read: %v, want an error naming the namespace", err)
	}
	must(t, os.Remove(filepath.Join(proc, "self", "ns", "mnt")))
	if _, err := namespaces(proc); err == nil || !strings.Contains(err.Error(), "own mount namespace") {
		t.Errorf("no own namespace: %v", err)
	}
}
