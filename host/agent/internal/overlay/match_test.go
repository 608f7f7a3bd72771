package overlay

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// debian is the module parameters of a stock kernel: everything off, redirects followed.
var debian = Params{"index": "N", "nfs_export": "N", "metacopy": "N", "redirect_dir": "N", "redirect_always_follow": "Y"}

const layers = "rw,lowerdir=/l,upperdir=/u,workdir=/w"

func wanted(t *testing.T, extra string) []string {
	t.Helper()
	o, err := ParseOptions("options", extra)
	if err != nil {
		t.Fatal(err)
	}
	return Wanted(o)
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name   string
		extra  string // the instance's options besides the pinned ones
		super  string
		mount  string
		params Params
		want   []string
	}{
		{name: "pinned, nothing shown", super: layers, mount: "rw,relatime", params: debian},
		{name: "pinned, uuid=on shown (auto)", super: layers + ",uuid=on", mount: "rw,relatime", params: debian},
		{name: "pinned, unknown defaults", super: layers, mount: "rw,relatime", params: Params{}},
		{name: "index on by default", super: layers, mount: "rw,relatime", params: Params{"index": "Y"},
			want: []string{"index=off asked for but mounted with the default index=on"}},
		{name: "index shown on", super: layers + ",index=on", mount: "rw,relatime", params: debian,
			want: []string{"index=off asked for but mounted with index=on"}},
		{name: "redirect_dir=off kept as nofollow", super: layers + ",redirect_dir=nofollow", mount: "rw,relatime",
			params: Params{"redirect_dir": "Y", "redirect_always_follow": "N"}},
		{name: "redirect_dir=off shown as follow, which it is", super: layers + ",redirect_dir=follow", mount: "rw,relatime", params: debian},
		{name: "redirect_dir nofollow when off means follow", super: layers + ",redirect_dir=nofollow", mount: "rw,relatime", params: debian,
			want: []string{"redirect_dir=off asked for but mounted with redirect_dir=nofollow"}},
		{name: "extras in effect", extra: "uuid=null,xino=off,volatile,noatime,nodev", super: layers + ",uuid=null,fsync=volatile",
			mount: "rw,nodev,noatime", params: debian},
		{name: "volatile shown plain (older kernels)", extra: "volatile", super: layers + ",volatile", mount: "rw,relatime", params: debian},
		{name: "uuid asked, none shown", extra: "uuid=null", super: layers, mount: "rw,relatime", params: debian,
			want: []string{"uuid=null asked for but mounted with uuid=auto"}},
		{name: "flag asked, not in effect", extra: "noatime,nodev", super: layers, mount: "rw,relatime", params: debian,
			want: []string{"nodev asked for but not in effect", "access times noatime asked for but the mount has relatime"}},
		{name: "flag in effect, not asked", super: layers, mount: "rw,nosuid,noatime", params: debian,
			want: []string{"mounted with nosuid, not asked for", "access times relatime asked for but the mount has noatime"}},
		{name: "read-only", super: "ro,lowerdir=/l,upperdir=/u,workdir=/w", mount: "ro,relatime", params: debian,
			want: []string{"mounted read-only"}},
		{name: "ro asked and in effect", extra: "ro", super: "ro,lowerdir=/l,upperdir=/u,workdir=/w", mount: "ro,relatime", params: debian},
		{name: "ro then rw asked: rw", extra: "ro,rw", super: layers, mount: "rw,relatime", params: debian},
		{name: "strictatime", extra: "strictatime", super: layers, mount: "rw", params: debian},
		{name: "option not asked for", super: layers + ",xino=on,userxattr", mount: "rw,relatime", params: debian,
			want: []string{"mounted with xino=on, not asked for", "mounted with userxattr, not asked for"}},
		{name: "volatile not asked for", super: layers + ",fsync=volatile", mount: "rw,relatime", params: debian,
			want: []string{"mounted with fsync=volatile, not asked for"}},
		{name: "superblock sync not asked for", super: "rw,sync" + layers[2:], mount: "rw,relatime", params: debian,
			want: []string{"mounted with sync, not asked for"}},
		{name: "xino asked, not shown (one filesystem)", extra: "xino=on", super: layers, mount: "rw,relatime", params: debian},
		{name: "bare option asked, missing", extra: "userxattr", super: layers, mount: "rw,relatime", params: debian,
			want: []string{"userxattr asked for but not in effect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Match(wanted(t, tt.extra), ParseSuperOptions(tt.super), tt.mount, tt.params)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Match() = %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	tests := []struct {
		name   string
		super  string
		mount  string
		params Params
		want   string
	}{
		{name: "pinned", super: layers + ",uuid=on", mount: "rw,relatime", params: debian, want: PinnedOptions},
		{name: "unknown defaults", super: layers, mount: "rw,relatime", params: Params{}, want: PinnedOptions},
		{name: "module defaults on", super: layers, mount: "rw,relatime", params: Params{"index": "Y", "metacopy": "Y", "redirect_dir": "Y"},
			want: "index=on,nfs_export=off,redirect_dir=on,metacopy=on"},
		{name: "redirect_dir shown", super: layers + ",redirect_dir=nofollow", mount: "rw,relatime", params: debian,
			want: "index=off,nfs_export=off,redirect_dir=nofollow,metacopy=off"},
		{name: "extras and flags", super: "ro,sync" + layers[2:] + ",xino=on,uuid=null,fsync=volatile", mount: "ro,nosuid,nodev,noatime",
			params: debian, want: PinnedOptions + ",xino=on,uuid=null,volatile,ro,nosuid,nodev,sync,noatime"},
		{name: "strictatime", super: layers, mount: "rw", params: debian, want: PinnedOptions + ",strictatime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			so := ParseSuperOptions(tt.super)
			got := Effective(so, tt.mount, tt.params)
			if got != tt.want {
				t.Errorf("Effective() = %q, want %q", got, tt.want)
			}
			// What Effective says is in effect matches the mount.
			o, err := ParseOptions("effective", got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := Match(Wanted(o), so, tt.mount, tt.params); diff != nil {
				t.Errorf("Match(Effective()) = %q, want no difference", diff)
			}
		})
	}
}

func TestReadParams(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"index": "N\n", "redirect_always_follow": "Y\n", "check_copy_up": "N\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := ReadParams(dir)
	if want := (Params{"index": "N", "redirect_always_follow": "Y"}); !reflect.DeepEqual(got, want) {
		t.Errorf("ReadParams() = %v, want %v", got, want)
	}
	if len(ReadParams(filepath.Join(dir, "missing"))) != 0 {
		t.Error("a missing directory gave parameters")
	}
	if def, ok := got.def("redirect_dir"); ok {
		t.Errorf("redirect_dir default %q known without the redirect_dir parameter", def)
	}
}
