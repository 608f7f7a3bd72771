package mountinfo

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Mount
		wantErr string
	}{
		{
			name: "proc(5) example",
			line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			want: Mount{ID: 36, ParentID: 35, Major: 98, Minor: 0, Root: "/mnt1", MountPoint: "/mnt2",
				MountOptions: "rw,noatime", OptionalFields: []string{"master:1"}, FSType: "ext3",
				Source: "/dev/root", SuperOptions: "rw,errors=continue"},
		},
		{
			name: "no optional fields",
			line: "22 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw",
			want: Mount{ID: 22, ParentID: 1, Major: 8, Minor: 2, Root: "/", MountPoint: "/",
				MountOptions: "rw,relatime", FSType: "ext4", Source: "/dev/sda2", SuperOptions: "rw"},
		},
		{
			name: "several optional fields",
			line: "100 22 0:50 / /mnt/x rw shared:5 master:2 propagate_from:3 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w,index=off",
			want: Mount{ID: 100, ParentID: 22, Major: 0, Minor: 50, Root: "/", MountPoint: "/mnt/x", MountOptions: "rw",
				OptionalFields: []string{"shared:5", "master:2", "propagate_from:3"}, FSType: "overlay", Source: "overlay",
				SuperOptions: "rw,lowerdir=/l,upperdir=/u,workdir=/w,index=off"},
		},
		{
			name: "escapes in root, mount point and source; options kept escaped",
			line: `40 22 8:17 /sub\040dir /mnt/my\040disk\011x rw - ext4 /dev/disk/by-label/a\134b rw,opt=a\054b`,
			want: Mount{ID: 40, ParentID: 22, Major: 8, Minor: 17, Root: "/sub dir", MountPoint: "/mnt/my disk\tx",
				MountOptions: "rw", FSType: "ext4", Source: `/dev/disk/by-label/a\b`, SuperOptions: `rw,opt=a\054b`},
		},
		{
			name: "empty source shown as an empty field",
			line: "50 22 0:60 / /run/x rw - tmpfs  rw,size=1024k",
			want: Mount{ID: 50, ParentID: 22, Major: 0, Minor: 60, Root: "/", MountPoint: "/run/x", MountOptions: "rw",
				FSType: "tmpfs", SuperOptions: "rw,size=1024k"},
		},
		{
			name: "no source field at all",
			line: "51 22 0:61 / /run/y rw - tmpfs rw",
			want: Mount{ID: 51, ParentID: 22, Major: 0, Minor: 61, Root: "/", MountPoint: "/run/y", MountOptions: "rw",
				FSType: "tmpfs", SuperOptions: "rw"},
		},
		{
			name: "fuse subtype", line: "60 22 0:70 / /mnt/f rw - fuse.sshfs user@host:/ rw,user_id=0",
			want: Mount{ID: 60, ParentID: 22, Major: 0, Minor: 70, Root: "/", MountPoint: "/mnt/f", MountOptions: "rw",
				FSType: "fuse.sshfs", Source: "user@host:/", SuperOptions: "rw,user_id=0"},
		},
		{name: "too short", line: "1 2 3:4 / /", wantErr: "fields"},
		{name: "no separator", line: "36 35 98:0 /mnt1 /mnt2 rw master:1 ext3 /dev/root rw", wantErr: "no -"},
		{name: "too many after separator", line: "36 35 98:0 / /m rw - ext3 /dev/root rw extra", wantErr: "after -"},
		{name: "bad id", line: "x 35 98:0 / /m rw - ext3 /dev/root rw", wantErr: "mount id"},
		{name: "bad parent", line: "1 y 98:0 / /m rw - ext3 /dev/root rw", wantErr: "parent id"},
		{name: "bad device", line: "1 2 98 / /m rw - ext3 /dev/root rw", wantErr: "major:minor"},
		{name: "bad device numbers", line: "1 2 a:b / /m rw - ext3 /dev/root rw", wantErr: "major:minor"},
		{name: "no type", line: "1 2 3:4 / /m rw -  /dev/root rw", wantErr: "no filesystem type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.line) {
					t.Errorf("ParseLine() = %+v, %v; want an error with %q naming the line", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseLine() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestOptionsAndUnescape(t *testing.T) {
	if got, want := Options(`rw,lowerdir=/a\054b:/c,upperdir=/u\040v`), []string{"rw", "lowerdir=/a,b:/c", "upperdir=/u v"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Options() = %q, want %q", got, want)
	}
	if got := Options(""); got != nil {
		t.Errorf("Options(\"\") = %q, want none", got)
	}
	for in, want := range map[string]string{
		`a\040b`: "a b", `\134`: `\`, `a\0`: `a\0`, `a\400`: `a\400`, `a\9zz`: `a\9zz`, "plain": "plain",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

const table = `22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
30 22 8:17 / /mnt/usbdisk rw,relatime shared:2 - ext4 /dev/sdb1 rw
41 30 0:50 / /mnt/usbdisk/n1/mnts rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c
42 41 0:51 / /mnt/usbdisk/n1/mnts rw,relatime - overlay overlay rw,lowerdir=/d,upperdir=/e,workdir=/f
43 30 0:52 / /mnt/usbdisk/n2/mnts rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/g,workdir=/h
44 42 0:53 / /mnt/usbdisk/n1/mnts/sub rw - tmpfs tmpfs rw
`

func TestTop(t *testing.T) {
	tab, err := Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if len(tab) != 6 {
		t.Fatalf("Parse() gave %d mounts, want 6", len(tab))
	}
	tests := []struct {
		mountPoint string
		wantID     int // 0: none
	}{
		{"/", 22},
		{"/mnt/usbdisk", 30},
		{"/mnt/usbdisk/n1/mnts", 42},
		{"/mnt/usbdisk/n2/mnts", 43},
		{"/mnt/usbdisk/n3/mnts", 0},
		{"/mnt/usbdisk/n1/mnts/", 0},
	}
	for _, tt := range tests {
		m, ok := tab.Top(tt.mountPoint)
		if ok != (tt.wantID != 0) || m.ID != tt.wantID {
			t.Errorf("Top(%q) = %d, %v; want %d", tt.mountPoint, m.ID, ok, tt.wantID)
		}
	}
	// The stack order comes from the parent ids, not from the order of the lines.
	reversed := Table{tab[3], tab[2]}
	if m, _ := reversed.Top("/mnt/usbdisk/n1/mnts"); m.ID != 42 {
		t.Errorf("Top() on reversed lines = %d, want 42", m.ID)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	_, err := Parse(strings.NewReader(table + "\nbroken line\n"))
	if err == nil || !strings.Contains(err.Error(), "line 8") {
		t.Errorf("Parse() = %v, want an error naming line 8", err)
	}
	long := "1 2 3:4 / /m rw - overlay overlay rw,lowerdir=/" + strings.Repeat("a", 200000)
	tab, err := Parse(strings.NewReader(long + "\n"))
	if err != nil || len(tab) != 1 {
		t.Errorf("Parse(long line) = %d mounts, %v", len(tab), err)
	}
}

func TestReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, err := ReadFile(p)
	if err != nil || len(tab) != 6 {
		t.Errorf("ReadFile() = %d mounts, %v", len(tab), err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadFile(missing) = nil error")
	}
	// The real table of this process parses, and has a root.
	real, err := Read()
	if err != nil {
		t.Fatalf("Read() = %v", err)
	}
	if len(real) == 0 {
		t.Fatal("Read() found no mounts")
	}
	if _, ok := real.Top("/"); !ok {
		t.Error("Read(): no mount on /")
	}
}
