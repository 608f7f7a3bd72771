package layout

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestValidatePath(t *testing.T) {
	tests := []struct{ path, wantErr string }{
		{"/mnt/usbdisk/ttnode1/upper", ""},
		{"", "must not be empty"},
		{"mnt/x", "must be an absolute path"},
		{"/", "must not be the root directory"},
		{"/mnt/usb disk", "whitespace or control"},
		{"/mnt/a\tb", "whitespace or control"},
		{"/mnt/a,b", "contains one of"},
		{"/mnt/a:b", "contains one of"},
		{`/mnt/a\b`, "contains one of"},
		{`/mnt/a"b`, "contains one of"},
		{"/mnt//x", "repeated or trailing slashes"},
		{"/mnt/x/", "repeated or trailing slashes"},
		{"/mnt/./x", ". or .. components"},
		{"/mnt/../x", ". or .. components"},
	}
	for _, tt := range tests {
		err := ValidatePath("upper dir", tt.path)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidatePath(%q) = %v", tt.path, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "upper dir")):
			t.Errorf("ValidatePath(%q) = %v, want an error with %q", tt.path, err, tt.wantErr)
		}
	}
}

func TestRelNormAndWithin(t *testing.T) {
	tests := []struct {
		a, b   string
		want   Rel
		within bool
	}{
		{"/a/b", "/a/b", Same, true},
		{"/a/b/", "/a//b", Same, true},
		{"/a/b/c", "/a/b", Inside, true},
		{"/a/b", "/a/b/c", Contains, false},
		{"/a/bc", "/a/b", Apart, false},
		{"/a", "/", Inside, true},
		{"/", "/a", Contains, false},
		{"l/abc", "/l", Apart, false},
	}
	for _, tt := range tests {
		if got := relNorm(tt.a, tt.b); got != tt.want {
			t.Errorf("relNorm(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Within(tt.a, tt.b); got != tt.within {
			t.Errorf("Within(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.within)
		}
	}
}

// tree makes dirs (relative to a temp dir) and symlinks (name -> target, relative to the temp
// dir) and returns the temp dir, with its own symlinks resolved.
func tree(t *testing.T, dirs []string, links map[string]string) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		if err := os.Symlink(filepath.Join(root, target), filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRelationOnDisk(t *testing.T) {
	root := tree(t, []string{"disk/n1/upper", "disk/n1/work", "disk/cache", "other/up"}, map[string]string{"alias": "disk/n1", "up2": "disk/n1/upper"})
	p := func(s string) string { return filepath.Join(root, s) }
	tests := []struct {
		a, b string
		want Rel
	}{
		{p("disk/n1/upper"), p("disk/n1/upper"), Same},
		{p("up2"), p("disk/n1/upper"), Same},                        // another name of the same dir (inode)
		{p("alias/upper/new"), p("disk/n1/upper"), Inside},          // through a symlink, not there yet
		{p("alias"), p("disk/n1/upper"), Contains},                  // the symlink resolved
		{root + "/x/../other/up/in", p("other/up"), Inside},         // `..` resolved on disk
		{root + "/alias/../n1/upper/z", p("disk/n1/upper"), Inside}, // `..` after a symlink: its target's parent
		{p("disk/n1/work"), p("disk/n1/upper"), Apart},
		{p("disk/cache"), "l/abc", Apart}, // a relative layer names nothing here
		{p("missing/deep/dir"), p("disk/n1/upper"), Apart},
	}
	if err := os.MkdirAll(p("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if got := Relation(tt.a, tt.b); got != tt.want {
			t.Errorf("Relation(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if !SamePath(p("up2"), p("disk/n1/upper")) || SamePath(p("disk/n1/work"), p("disk/n1/upper")) {
		t.Error("SamePath does not compare by inode")
	}
	if got, want := Canon(p("alias/upper/new/x")), p("disk/n1/upper/new/x"); got != want {
		t.Errorf("Canon() = %q, want %q", got, want)
	}
	if got := Canon("rel/x"); got != "rel/x" {
		t.Errorf("Canon of a relative path = %q", got)
	}
}

func TestLowerRelation(t *testing.T) {
	root := tree(t, []string{"disk/cache", "disk/cache.g2", "disk/cache.g3.partial"}, nil)
	p := func(s string) string { return filepath.Join(root, s) }
	tests := []struct {
		path, lower string
		want        Rel
		hit         string
	}{
		{p("disk/cache"), p("disk/cache"), Same, p("disk/cache")},
		{p("disk/cache/x/upper"), p("disk/cache.g2"), Inside, p("disk/cache")},          // the base of a generation
		{p("disk/cache.g2/upper"), p("disk/cache"), Inside, p("disk/cache.g2")},         // a generation of the lower
		{p("disk/cache.g3.partial"), p("disk/cache"), Same, p("disk/cache.g3.partial")}, // one being built
		{p("disk/cache.g4.work/w"), p("disk/cache.g2"), Inside, p("disk/cache.g4.work")},
		{p("disk"), p("disk/cache.g2"), Contains, p("disk/cache.g2")},
		{p("disk/cache.gx/upper"), p("disk/cache"), Apart, p("disk/cache")},
		{p("disk/cache2/upper"), p("disk/cache"), Apart, p("disk/cache")},
		{p("disk/n1/upper"), p("disk/cache"), Apart, p("disk/cache")},
	}
	for _, tt := range tests {
		rel, hit := LowerRelation(tt.path, tt.lower)
		if rel != tt.want || hit != tt.hit {
			t.Errorf("LowerRelation(%q, %q) = %v %q, want %v %q", tt.path, tt.lower, rel, hit, tt.want, tt.hit)
		}
	}
}

func TestNear(t *testing.T) {
	others := []Overlay{
		{MountPoint: "/d/view", Lower: []string{"/d/n6/upper/sub", "/d/cache"}},
		{MountPoint: "/d/n1/mnts", Lower: []string{"/d/cache"}, Upper: "/d/n1/upper", Work: "/d/n1/work"},
		{MountPoint: "/var/lib/docker/x/merged", Lower: []string{"l/ABC", "l/DEF"}, Upper: "diff", Work: "work"},
	}
	all := []Kind{Upper, Work, Lower}
	tests := []struct {
		name string
		dirs []Dir
		want string // Finding.String(), "" for none
	}{
		{"apart", []Dir{{"upper", "/d/n2/upper", all}, {"work", "/d/n2/work", all}, {"lower", "/d/cache", []Kind{Upper, Work}}}, ""},
		{"same upper", []Dir{{"upper", "/d/n1/upper", all}},
			`upper dir "/d/n1/upper" is the same as the upperdir of another overlay on "/d/n1/mnts" (upperdir "/d/n1/upper")`},
		{"work inside another's upper", []Dir{{"work", "/d/n1/upper/w", all}},
			`work dir "/d/n1/upper/w" is inside the upperdir of another overlay on "/d/n1/mnts" (upperdir "/d/n1/upper")`},
		{"upper contains another's work", []Dir{{"upper", "/d/n1", []Kind{Work}}},
			`upper dir "/d/n1" contains the workdir of another overlay on "/d/n1/mnts" (workdir "/d/n1/work")`},
		{"upper is another's lower", []Dir{{"upper", "/d/cache", all}},
			`upper dir "/d/cache" is the same as the lowerdir of another overlay on "/d/view" (lowerdir "/d/cache")`},
		{"upper is a generation of another's lower", []Dir{{"upper", "/d/cache.g2/u", all}},
			`upper dir "/d/cache.g2/u" is inside the lowerdir generation of another overlay on "/d/view" (lowerdir generation "/d/cache.g2")`},
		{"upper holds a view's lower", []Dir{{"upper", "/d/n6/upper", all}},
			`upper dir "/d/n6/upper" contains the lowerdir of another overlay on "/d/view" (lowerdir "/d/n6/upper/sub")`},
		{"lower is another's upper", []Dir{{"lower", "/d/n1/upper", []Kind{Upper, Work}}},
			`lower dir "/d/n1/upper" is the same as the upperdir of another overlay on "/d/n1/mnts" (upperdir "/d/n1/upper")`},
		{"lower compared with lowers: apart", []Dir{{"lower", "/d/cache", []Kind{Upper, Work}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := Near(tt.dirs, others)
			got := ""
			if ok {
				got = f.String()
			}
			if got != tt.want {
				t.Errorf("Near() = %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestResolverMemo compares what one resolver, shared by every question as Near shares it,
// answers with what the unmemoised functions answer, question by question, on a tree with
// symlinks (absolute, relative, chained, dangling, to a file), paths as written that the file
// system reads differently (a trailing slash after a file), `..` after a symlink, missing dirs
// and generations of a lower.
func TestResolverMemo(t *testing.T) {
	root := tree(t,
		[]string{"disk/n1/upper", "disk/n1/work", "disk/cache", "disk/cache.g2", "disk/cache.g3.partial", "other/up", "x"},
		map[string]string{"alias": "disk/n1", "up2": "disk/n1/upper", "chain": "alias", "dangling": "nowhere", "cachelink": "disk/cache.g2"})
	p := func(s string) string { return filepath.Join(root, s) }
	if err := os.Symlink("n1/upper", p("disk/rel")); err != nil { // a relative symlink
		t.Fatal(err)
	}
	writeFile(t, p("disk/file"))
	if err := os.Symlink(p("disk/file"), p("filelink")); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		p("disk/n1/upper"), p("disk/n1/work"), p("disk/n1"), p("disk"), p("up2"), p("alias"), p("alias/upper"),
		p("alias/upper/new"), p("chain/work/w"), p("disk/rel"), p("disk/rel/sub"), root + "/x/../other/up/in",
		root + "/alias/../n1/upper/z", root + "/disk//n1/upper/", p("dangling"), p("dangling/x"),
		p("disk/file"), p("disk/file") + "/", p("filelink"), p("filelink/x"), p("missing/deep/dir"), p("disk/cache"), p("disk/cache.g2"),
		p("disk/cache.g2/u"), p("cachelink/u"), p("disk/cache.g3.partial"), p("disk/cache.g4.work/w"),
		p("disk/cache.gx/upper"), p("other/up"), "/", "l/abc", "diff",
	}
	// Loops, a link to a relative path with `..`, a link to the root, a link in a link.
	for name, target := range map[string]string{"loop1": "loop2", "loop2": "loop1", "disk/n1/up": "../n1/./upper", "disk/root": "/", "disk/n1/in": "../../chain/upper"} {
		if err := os.Symlink(target, p(name)); err != nil {
			t.Fatal(err)
		}
	}
	paths = append(paths, p("loop1"), p("loop1/x"), p("disk/n1/up"), p("disk/n1/up/x"), p("disk/root"),
		p("disk/root")+root+"/alias", p("disk/n1/in"), p("disk/n1/in/../work"), p("disk/file/x"), p("chain/../x"),
		root+"/../"+filepath.Base(root)+"/up2", "/..", "/../..", "/./"+root[1:])
	r := newResolver()
	for _, a := range paths {
		// EvalSymlinks as the resolver walks it, step by step, remembering each step.
		got, gotErr := r.walkSymlinks(a)
		want, wantErr := filepath.EvalSymlinks(a)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("walkSymlinks(%q) = %q, %v; EvalSymlinks = %q, %v", a, got, gotErr, want, wantErr)
		}
		if got, want := r.canon(a), Canon(a); got != want {
			t.Errorf("memoised canon(%q) = %q, Canon = %q", a, got, want)
		}
		for _, b := range paths {
			if got, want := r.relation(a, b), Relation(a, b); got != want {
				t.Errorf("memoised relation(%q, %q) = %v, Relation = %v", a, b, got, want)
			}
			gotRel, gotHit := r.lowerRelation(a, b)
			wantRel, wantHit := LowerRelation(a, b)
			if gotRel != wantRel || gotHit != wantHit {
				t.Errorf("memoised lowerRelation(%q, %q) = %v %q, LowerRelation = %v %q", a, b, gotRel, gotHit, wantRel, wantHit)
			}
		}
	}
	// A few answers spelled out, so both sides cannot be wrong alike.
	for _, tt := range []struct {
		a, b string
		want Rel
	}{
		{p("up2"), p("disk/n1/upper"), Same},
		{p("disk/rel/sub"), p("disk/n1/upper"), Inside},
		{p("chain/work/w"), p("disk/n1/work"), Inside},
		{p("disk/n1"), p("alias/upper"), Contains},
		{p("cachelink/u"), p("disk/cache.g2"), Inside},
		{p("dangling/x"), p("nowhere"), Apart},
		{p("filelink/x"), p("disk/file"), Apart},
	} {
		if got := r.relation(tt.a, tt.b); got != tt.want {
			t.Errorf("relation(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestNearResolvesEachPathOnce counts the file system calls of a Near with many overlays: one
// stat per distinct path and one EvalSymlinks per distinct directory, not one per pair, and the
// same finding as with nothing remembered.
func TestNearResolvesEachPathOnce(t *testing.T) {
	root := tree(t, []string{"disk/cache", "disk/n1/upper"}, map[string]string{"alias": "disk"})
	p := func(s string) string { return filepath.Join(root, s) }
	var others []Overlay
	for i := 2; i <= 40; i++ {
		n := p("disk/n" + strconv.Itoa(i))
		for _, d := range []string{"upper", "work"} {
			if err := os.MkdirAll(filepath.Join(n, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		others = append(others, Overlay{MountPoint: n + "/mnts", Lower: []string{p("disk/cache")}, Upper: n + "/upper", Work: n + "/work"})
	}
	all := []Kind{Upper, Work, Lower}
	for _, tt := range []struct {
		name string
		dirs []Dir
		want string
	}{
		{"apart, not there yet", []Dir{{"upper", p("disk/n99/upper"), all}, {"work", p("disk/n99/work"), all}, {"lower", p("disk/cache"), []Kind{Upper, Work}}}, ""},
		{"through a symlink, the last overlay's work", []Dir{{"upper", p("disk/n99/upper"), all}, {"work", p("alias/n40/work/w"), all}},
			`work dir "` + p("alias/n40/work/w") + `" is inside the workdir of another overlay on "` + p("disk/n40/mnts") + `" (workdir "` + p("disk/n40/work") + `")`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stats, lstats, links := map[string]int{}, map[string]int{}, map[string]int{}
			r := newResolver()
			r.fsStat = func(s string) (os.FileInfo, error) { stats[s]++; return os.Stat(s) }
			r.fsLstat = func(s string) (os.FileInfo, error) { lstats[s]++; return os.Lstat(s) }
			r.fsReadlink = func(s string) (string, error) { links[s]++; return os.Readlink(s) }
			f, ok := r.near(tt.dirs, others)
			got := ""
			if ok {
				got = f.String()
			}
			if got != tt.want {
				t.Errorf("near() = %s\nwant %s", got, tt.want)
			}
			if f2, ok2 := Near(tt.dirs, others); ok2 != ok || f2 != f {
				t.Errorf("Near() = %v %v, the counted resolver %v %v", f2, ok2, f, ok)
			}
			for s, n := range stats {
				if n != 1 {
					t.Errorf("stat(%q) asked %d times", s, n)
				}
			}
			for _, m := range []map[string]int{lstats, links} {
				for s, n := range m {
					if n != 1 {
						t.Errorf("lstat or readlink of %q asked %d times", s, n)
					}
				}
			}
			// The dirs, the shared lower and each overlay's upper and work, and the prefixes
			// of the dirs that do not exist yet; then their components.
			if max := 2*len(others) + 2*len(tt.dirs) + 2; len(stats) > max {
				t.Errorf("%d paths stat'ed, want at most %d", len(stats), max)
			}
			if max := strings.Count(root, "/") + 2 + len(others) + 2*len(others) + 3; len(lstats) > max {
				t.Errorf("%d paths lstat'ed, want at most %d", len(lstats), max)
			}
		})
	}
}

func writeFile(t *testing.T, name string) {
	t.Helper()
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
