package overlay

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name      string
		list      string
		overlay   []string
		flags     []string
		mountBits uintptr
		wantErr   string
	}{
		{name: "empty", list: ""},
		{name: "pinned", list: PinnedOptions, overlay: strings.Split(PinnedOptions, ",")},
		{name: "overlay options and flags", list: PinnedOptions + ",xino=off,uuid=null,volatile,noatime,nodev",
			overlay: append(strings.Split(PinnedOptions, ","), "xino=off", "uuid=null", "volatile"),
			flags:   []string{"noatime", "nodev"}, mountBits: syscall.MS_NOATIME | syscall.MS_NODEV},
		{name: "later flag wins", list: "ro,nosuid,rw", flags: []string{"ro", "nosuid", "rw"}, mountBits: syscall.MS_NOSUID},
		{name: "lazytime and nosymfollow", list: "lazytime,nosymfollow", flags: []string{"lazytime", "nosymfollow"}, mountBits: msLazyTime | msNoSymFollow},
		{name: "bind", list: PinnedOptions + ",bind", wantErr: `contain "bind", which is not an overlay mount option`},
		{name: "remount", list: "remount", wantErr: `"remount", which is not`},
		{name: "make-private", list: "make-private", wantErr: `"make-private", which is not`},
		{name: "loop", list: "loop", wantErr: `"loop", which is not`},
		{name: "fstab only", list: "nofail", wantErr: `"nofail", which is not`},
		{name: "x-systemd", list: "x-systemd.automount", wantErr: `"x-systemd.automount", which is not`},
		{name: "layer", list: "upperdir=/u", wantErr: "must not set upperdir: the layers are given apart"},
		{name: "lowerdir+", list: "lowerdir+=/l", wantErr: "must not set lowerdir+"},
		{name: "bare upperdir", list: "upperdir", wantErr: "must not set upperdir"},
		{name: "unknown value", list: "xino=maybe", wantErr: `"xino=maybe": xino takes on, off, auto`},
		{name: "value on a bare option", list: "volatile=1", wantErr: "volatile takes no value"},
		{name: "empty option", list: "index=off,,xino=off", wantErr: "an empty option"},
		{name: "blank", list: "index=off, xino=off", wantErr: "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOptions("options", tt.list)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "options ") {
					t.Fatalf("ParseOptions(%q) = %+v, %v; want an error with %q", tt.list, o, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.Overlay, tt.overlay) || !reflect.DeepEqual(o.Flags, tt.flags) {
				t.Errorf("overlay %q flags %q; want %q %q", o.Overlay, o.Flags, tt.overlay, tt.flags)
			}
			if o.String() != tt.list {
				t.Errorf("String() = %q, want the list as given %q", o.String(), tt.list)
			}
			if got := o.MountFlags(); got != tt.mountBits {
				t.Errorf("MountFlags() = %#x, want %#x", got, tt.mountBits)
			}
		})
	}
}
