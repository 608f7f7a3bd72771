package layout

import (
	"os"
	"path/filepath"
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
