package fstab

import (
	"reflect"
	"strings"
	"testing"
)

const (
	opts1 = "lowerdir=/l,upperdir=/d/n1/upper,workdir=/d/n1/work,index=off,nofail"
	line1 = "overlay /d/n1/mnts overlay " + opts1 + ",x-overlay-fleet=box1/n1 0 0"
	opts2 = "lowerdir=/l,upperdir=/d/n2/upper,workdir=/d/n2/work,index=off,nofail"
	line2 = "overlay /d/n2/mnts overlay " + opts2 + ",x-overlay-fleet=box1/n2 0 0"
)

// foreign is an fstab of lines that are not ours, with what careless tools break: comments,
// blank lines, tabs, runs of blanks, escapes, CRLF, bytes that are not UTF-8.
const foreign = "# /etc/fstab: static file system information.\n" +
	"#\n" +
	"UUID=1234-abcd\t/\text4\terrors=remount-ro 0       1\n" +
	"\n" +
	"   \t \n" +
	"/dev/sdb1 /mnt/usb\\040disk ext4 defaults,nofail 0 2\n" +
	"//srv/share /mnt/share cifs credentials=/root/.c,uid=0 0 0\r\n" +
	"# a managed-looking comment: overlay /x overlay a,x-overlay-fleet=box1/n1 0 0\n" +
	"tmpfs /tmp tmpfs mode=1777\xff\xfe 0 0\n"

func TestParseBytesRoundTrip(t *testing.T) {
	for _, in := range []string{
		"",
		"\n",
		"\n\n",
		"a",
		"a\n",
		"a\nb",
		"a\r\nb\r\n",
		foreign,
		foreign + "no newline at the end",
		foreign + line1 + "\n" + line1,
	} {
		if got := string(Parse([]byte(in)).Bytes()); got != in {
			t.Errorf("Parse(%q).Bytes() = %q", in, got)
		}
	}
}

func TestParseEntry(t *testing.T) {
	tests := []struct {
		raw    string
		want   Entry
		wantOK bool
	}{
		{"", Entry{}, false},
		{"   ", Entry{}, false},
		{"# comment", Entry{}, false},
		{"  \t# indented comment", Entry{}, false},
		{"single", Entry{}, false},
		{"src /mnt", Entry{Spec: "src", File: "/mnt"}, true},
		{"UUID=x\t/  ext4 \t defaults 0 1", Entry{"UUID=x", "/", "ext4", "defaults", "0", "1"}, true},
		{`/dev/a /mnt/a\040b ext4 user=a\134b 0 0`, Entry{"/dev/a", "/mnt/a b", "ext4", `user=a\b`, "0", "0"}, true},
		{"  src /m t o", Entry{Spec: "src", File: "/m", VFSType: "t", MntOps: "o"}, true},
	}
	for _, tt := range tests {
		got, ok := ParseEntry(tt.raw)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("ParseEntry(%q) = %+v, %v; want %+v, %v", tt.raw, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestFormatLine(t *testing.T) {
	got, err := FormatLine("box1/n1", "/d/n1/mnts", opts1)
	if err != nil || got != line1 {
		t.Fatalf("FormatLine = %q, %v; want %q", got, err, line1)
	}
	for _, bad := range [][3]string{
		{"Box1/n1", "/d/n1/mnts", opts1},
		{"box1/n1", "d/n1/mnts", opts1},
		{"box1/n1", "/d/n1/mnts", ""},
		{"box1/n1", "/d/n1/mnts", opts1 + ",x-overlay-fleet=box1/n2"},
	} {
		if _, err := FormatLine(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("FormatLine(%q, %q, %q) = nil error", bad[0], bad[1], bad[2])
		}
	}
}

func TestLookup(t *testing.T) {
	tab := Parse([]byte(foreign + line2 + "\n" +
		"overlay /d/n1/mnts overlay x-overlay-fleet=box1/n1,nofail,ro 0 0\n" + line1 + "\n"))
	m, ok := tab.Lookup("box1/n1")
	want := Managed{ID: "box1/n1", Merged: "/d/n1/mnts", Options: "nofail,ro", Line: "overlay /d/n1/mnts overlay x-overlay-fleet=box1/n1,nofail,ro 0 0", LineNo: 11}
	if !ok || m != want {
		t.Errorf("Lookup(box1/n1) = %+v, %v; want the first line of the id, %+v", m, ok, want)
	}
	if _, ok := tab.Lookup("box1/n3"); ok {
		t.Error("Lookup(box1/n3) found a line")
	}
	if _, ok := tab.Lookup("box1/n"); ok {
		t.Error("Lookup(box1/n) matched a longer id")
	}
	if got, want := tab.IDs(), []string{"box1/n2", "box1/n1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IDs() = %q, want %q", got, want)
	}
}

func TestSet(t *testing.T) {
	newLine1 := strings.Replace(line1, "index=off", "index=off,ro", 1)
	tests := []struct {
		name    string
		in      string
		merged  string
		options string
		want    string
		wantErr string
	}{
		{name: "empty file", in: "", want: line1 + "\n"},
		{name: "append after foreign lines", in: foreign, want: foreign + line1 + "\n"},
		{name: "append after a last line without newline", in: "a b c", want: "a b c\n" + line1 + "\n"},
		{name: "same line: no change", in: foreign + line1 + "\n" + line2 + "\n", want: foreign + line1 + "\n" + line2 + "\n"},
		{
			name: "replace in place", in: foreign + line1 + "\n" + "# after\n",
			options: strings.Replace(opts1, "index=off", "index=off,ro", 1),
			want:    foreign + newLine1 + "\n# after\n",
		},
		{
			name: "replace a last line without newline", in: foreign + line1,
			options: strings.Replace(opts1, "index=off", "index=off,ro", 1),
			want:    foreign + newLine1 + "\n",
		},
		{name: "same last line without newline gets one", in: "x y\n" + line1, want: "x y\n" + line1 + "\n"},
		{
			name: "duplicates collapse into the first",
			in:   line1 + "\n" + foreign + line1 + "\n" + "overlay /old overlay a,x-overlay-fleet=box1/n1 0 0\n",
			want: line1 + "\n" + foreign,
		},
		{
			name: "a removed duplicate at the end keeps the foreign ending",
			in:   line1 + "\nlast foreign\n" + line1,
			want: line1 + "\nlast foreign\n",
		},
		{name: "other instance kept", in: line2 + "\n", want: line2 + "\n" + line1 + "\n"},
		{name: "marker in a comment is foreign", in: "# " + line1 + "\n", want: "# " + line1 + "\n" + line1 + "\n"},
		{
			name: "foreign entry on the merged dir", in: "a b\n/dev/sdc1 /d/n1/mnts ext4 defaults 0 0\n",
			wantErr: `line 2 already has an entry for "/d/n1/mnts"`,
		},
		{
			name: "foreign entry on the merged dir, unclean", in: "/dev/sdc1 /d//n1/mnts/ ext4 defaults 0 0\n",
			wantErr: "line 1 already has an entry",
		},
		{
			name: "foreign entry on the merged dir, escaped", in: "/dev/sdc1 /d/n1\\057mnts ext4 defaults 0 0\n",
			wantErr: "line 1 already has an entry",
		},
		{
			name: "another instance on the merged dir", in: strings.Replace(line2, "/d/n2/mnts", "/d/n1/mnts", 1) + "\n",
			wantErr: "line 1 already has an entry",
		},
		{name: "bad options", in: foreign, options: "a b", wantErr: "whitespace"},
		{name: "bad merged", in: foreign, merged: "/d/n1/mnts/", wantErr: "clean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged, options := tt.merged, tt.options
			if merged == "" {
				merged = "/d/n1/mnts"
			}
			if options == "" {
				options = opts1
			}
			tab := Parse([]byte(tt.in))
			err := tab.Set("box1/n1", merged, options)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set() = %v, want an error with %q", err, tt.wantErr)
				}
				if got := string(tab.Bytes()); got != tt.in {
					t.Errorf("a failed Set changed the table to %q", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set() = %v", err)
			}
			if got := string(tab.Bytes()); got != tt.want {
				t.Errorf("Set() gives\n%q\nwant\n%q", got, tt.want)
			}
			if w := tab.written(); len(w) != 1 || w[0].MountPoint != merged {
				t.Errorf("written() = %+v, want the one line of %s", w, merged)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"absent", foreign, foreign},
		{"only line", line1 + "\n", ""},
		{"between foreign lines", "a b\n" + line1 + "\n# c\n", "a b\n# c\n"},
		{"last line without newline", "a b\n" + line1, "a b\n"},
		{"foreign last line without newline stays so", line1 + "\na b", "a b"},
		{"duplicates", line1 + "\n" + line2 + "\n" + line1 + "\n", line2 + "\n"},
		{"comment kept", "# " + line1 + "\n", "# " + line1 + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := Parse([]byte(tt.in))
			if err := tab.Remove("box1/n1"); err != nil {
				t.Fatal(err)
			}
			if got := string(tab.Bytes()); got != tt.want {
				t.Errorf("Remove() gives %q, want %q", got, tt.want)
			}
		})
	}
	if err := Parse(nil).Remove("bad id"); err == nil || !strings.Contains(err.Error(), `"bad id"`) {
		t.Errorf("Remove(bad id) = %v, want an error naming it", err)
	}
}
