package overlay

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestPinnedOptionsMatchModel keeps PinnedOptions equal to pinnedMountOptions of the TypeScript
// model, the other owner of the value.
func TestPinnedOptionsMatchModel(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "model", "constants.ts")
	src, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("%s is not here (the agent is built outside the repository)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`pinnedMountOptions\s*=\s*\[([^\]]*)\]`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s has no pinnedMountOptions array", path)
	}
	var opts []string
	for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(m[1], -1) {
		opts = append(opts, string(q[1]))
	}
	if got := strings.Join(opts, ","); got != PinnedOptions {
		t.Errorf("model pinnedMountOptions = %q, PinnedOptions = %q", got, PinnedOptions)
	}
}

func TestMountData(t *testing.T) {
	layers := Layers{Lower: []string{"/mnt/usbdisk/static_cache"}, Upper: "/mnt/usbdisk/n1/upper", Work: "/mnt/usbdisk/n1/work"}
	base := "lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/n1/upper,workdir=/mnt/usbdisk/n1/work," + PinnedOptions
	tests := []struct {
		name    string
		layers  Layers
		extra   string
		want    string
		wantErr string
	}{
		{name: "pinned only", layers: layers, want: base},
		{name: "extra options", layers: layers, extra: "xino=off,uuid=on,volatile", want: base + ",xino=off,uuid=on,volatile"},
		{name: "pinned repeated in extra is left out", layers: layers, extra: PinnedOptions + ",xino=off", want: base + ",xino=off"},
		{
			name:   "several lowers, read-only",
			layers: Layers{Lower: []string{"/l1", "/l2"}},
			want:   "lowerdir=/l1:/l2," + PinnedOptions,
		},
		{name: "contradicts pinned", layers: layers, extra: "index=on", wantErr: `"index=on" contradicts the pinned index=off`},
		{name: "layer in extra", layers: layers, extra: "lowerdir=/x", wantErr: "must not set lowerdir"},
		{name: "empty extra option", layers: layers, extra: "xino=off,", wantErr: "empty option"},
		{name: "whitespace in extra", layers: layers, extra: "a\tb", wantErr: "whitespace"},
		{name: "no lower", layers: Layers{Upper: "/u", Work: "/w"}, wantErr: "no lower dir"},
		{name: "upper without work", layers: Layers{Lower: []string{"/l"}, Upper: "/u"}, wantErr: "go together"},
		{name: "relative lower", layers: Layers{Lower: []string{"l"}}, wantErr: `lower dir "l" must be an absolute path`},
		{name: "colon in lower", layers: Layers{Lower: []string{"/a:b"}}, wantErr: `lower dir "/a:b" contains`},
		{name: "comma in upper", layers: Layers{Lower: []string{"/l"}, Upper: "/u,v", Work: "/w"}, wantErr: `upper dir "/u,v" contains`},
		{name: "space in work", layers: Layers{Lower: []string{"/l"}, Upper: "/u", Work: "/w x"}, wantErr: `work dir "/w x" contains whitespace`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MountData("/mnt/usbdisk/n1/mnts", tt.layers, tt.extra)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "/mnt/usbdisk/n1/mnts") {
					t.Errorf("MountData() = %q, %v; want an error with %q naming the merged dir", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("MountData() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMountDataLimit(t *testing.T) {
	long := "/" + strings.Repeat("d", 250)
	var lowers []string
	for range 20 {
		lowers = append(lowers, long)
	}
	fits := Layers{Lower: lowers[:10]}
	if data, err := MountData("/m", fits, ""); err != nil || len(data) > MaxMountData {
		t.Errorf("MountData(%d bytes of lowers) = %d bytes, %v", 10*252, len(data), err)
	}
	_, err := MountData("/m", Layers{Lower: lowers}, "")
	if err == nil || !strings.Contains(err.Error(), `overlay on "/m": mount data is 5103 bytes, more than the 4095`) {
		t.Errorf("MountData(too long) = %v, want an error naming the merged dir and the length", err)
	}
	// Exactly at the limit.
	prefix := "lowerdir=/"
	suffix := "," + PinnedOptions
	exact := Layers{Lower: []string{"/" + strings.Repeat("x", MaxMountData-len(prefix)-len(suffix))}}
	if data, err := MountData("/m", exact, ""); err != nil || len(data) != MaxMountData {
		t.Errorf("MountData(at the limit) = %d bytes, %v", len(data), err)
	}
	exact.Lower[0] += "x"
	if _, err := MountData("/m", exact, ""); err == nil {
		t.Error("MountData(one byte over) = nil error")
	}
}

func TestParseSuperOptions(t *testing.T) {
	tests := []struct {
		name  string
		field string
		want  SuperOptions
	}{
		{
			name:  "typical",
			field: "rw,lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/n1/upper,workdir=/mnt/usbdisk/n1/work,redirect_dir=nofollow,index=off,nfs_export=off,metacopy=off",
			want: SuperOptions{LowerDirs: []string{"/mnt/usbdisk/static_cache"}, UpperDir: "/mnt/usbdisk/n1/upper", WorkDir: "/mnt/usbdisk/n1/work",
				Other: []string{"rw", "redirect_dir=nofollow", "index=off", "nfs_export=off", "metacopy=off"}},
		},
		{
			name:  "several lowers, read-only",
			field: "ro,lowerdir=/up:/low,xino=off",
			want:  SuperOptions{LowerDirs: []string{"/up", "/low"}, Other: []string{"ro", "xino=off"}},
		},
		{
			name:  "kernel octal escapes and overlayfs escapes",
			field: `rw,lowerdir=/a\054b:/c\134:d:/e\040f,upperdir=/u\134\134v,workdir=/w`,
			want:  SuperOptions{LowerDirs: []string{"/a,b", "/c:d", "/e f"}, UpperDir: `/u\v`, WorkDir: "/w", Other: []string{"rw"}},
		},
		{
			name:  "data-only lowers",
			field: "ro,lowerdir=/l1:/l2::/d1:/d2,metacopy=on,redirect_dir=on",
			want:  SuperOptions{LowerDirs: []string{"/l1", "/l2"}, DataDirs: []string{"/d1", "/d2"}, Other: []string{"ro", "metacopy=on", "redirect_dir=on"}},
		},
		{
			name:  "new mount API, one option per layer",
			field: "rw,lowerdir+=/l1,lowerdir+=/l2,datadir+=/d1,upperdir=/u,workdir=/w",
			want:  SuperOptions{LowerDirs: []string{"/l1", "/l2"}, DataDirs: []string{"/d1"}, UpperDir: "/u", WorkDir: "/w", Other: []string{"rw"}},
		},
		{name: "empty", field: "", want: SuperOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseSuperOptions(tt.field); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseSuperOptions(%q) =\n%+v\nwant\n%+v", tt.field, got, tt.want)
			}
		})
	}
}

// TestMountDataRoundTrip: what MountData makes, mountinfo gives back as the same layers.
func TestMountDataRoundTrip(t *testing.T) {
	layers := Layers{Lower: []string{"/l1", "/l2"}, Upper: "/u", Work: "/w"}
	data, err := MountData("/m", layers, "xino=off")
	if err != nil {
		t.Fatal(err)
	}
	so := ParseSuperOptions("rw," + data)
	if !reflect.DeepEqual(so.LowerDirs, layers.Lower) || so.UpperDir != layers.Upper || so.WorkDir != layers.Work {
		t.Errorf("ParseSuperOptions(MountData()) = %+v, want the layers %+v", so, layers)
	}
}
