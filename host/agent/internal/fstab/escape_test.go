package fstab

import "testing"

func TestUnescape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "/mnt/data", "/mnt/data"},
		{"space", `/mnt/my\040disk`, "/mnt/my disk"},
		{"tab", `/a\011b`, "/a\tb"},
		{"newline", `/a\012b`, "/a\nb"},
		{"backslash", `/a\134b`, `/a\b`},
		{"any octal byte", `\043x`, "#x"},
		{"escape at end", `/a\040`, "/a "},
		{"too short", `/a\04`, `/a\04`},
		{"not octal", `/a\089`, `/a\089`},
		{"above a byte", `/a\400`, `/a\400`},
		{"lone backslash", `/a\b`, `/a\b`},
		{"two in a row", `\040\040`, "  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unescape(tt.in); got != tt.want {
				t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"/mnt/data", "/mnt/data"},
		{"/mnt/my disk", `/mnt/my\040disk`},
		{"a\tb\nc", `a\011b\012c`},
		{`a\b`, `a\134b`},
		{"", ""},
	}
	for _, tt := range tests {
		got := Escape(tt.in)
		if got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back := Unescape(got); back != tt.in {
			t.Errorf("Unescape(Escape(%q)) = %q", tt.in, back)
		}
	}
}
