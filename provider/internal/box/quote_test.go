package box

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"/var/lib/overlay-fleet/bin/overlay-fleet-host", "fstab-entry", "read"},
			"/var/lib/overlay-fleet/bin/overlay-fleet-host fstab-entry read"},
		{[]string{"echo", ""}, "echo ''"},
		{[]string{"echo", "a b"}, "echo 'a b'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"echo", "$(reboot)", "`id`", "a;b", "x|y", "*", "~root", "A=1"},
			"echo '$(reboot)' '`id`' 'a;b' 'x|y' '*' '~root' 'A=1'"},
		{[]string{"echo", "line\nbreak"}, "echo 'line\nbreak'"},
	}
	for _, tt := range tests {
		if got := Quote(tt.argv); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.argv, got, tt.want)
		}
	}
}

// TestQuoteRoundTrip gives the quoted line to a real POSIX shell and checks it sees argv.
func TestQuoteRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	args := []string{"", "plain", "two words", "it's", `"dq"`, "$HOME", "$(id)", "`id`", "a;b&c|d",
		"*", "?", "[a]", "~", "x=y", "new\nline", "tab\there", `back\slash`, "'", "''", "-n", "ü€"}
	out, err := exec.Command(sh, "-c", `printf '%s\0' `+Quote(args)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Equal(got, args) {
		t.Errorf("the shell saw %q, want %q", got, args)
	}
}
