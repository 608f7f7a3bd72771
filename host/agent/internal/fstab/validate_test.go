package fstab

import (
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		id      string
		wantErr bool
	}{
		{"box1/ttnode1", false},
		{"b/N", false},
		{"0/0", false},
		{"my-box/Node_1.a-b", false},
		{strings.Repeat("b", 32) + "/" + strings.Repeat("n", 63), false},
		{strings.Repeat("b", 33) + "/n", true},
		{"b/" + strings.Repeat("n", 64), true},
		{"", true},
		{"box1", true},
		{"box1/", true},
		{"/ttnode1", true},
		{"Box1/ttnode1", true},
		{"-box/ttnode1", true},
		{"box1/-n", true},
		{"box1/.hidden", true},
		{"box1/..", true},
		{"box1/a/b", true},
		{"box1/a b", true},
		{"box1/a,b", true},
		{"box1/a\n", true},
		{"box_1/a", true},
	}
	for _, tt := range tests {
		err := ValidateID(tt.id)
		if (err != nil) != tt.wantErr {
			t.Errorf("ValidateID(%q) = %v, want error %v", tt.id, err, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), strings.TrimSpace(tt.id)) {
			t.Errorf("ValidateID(%q): error %q does not name the value", tt.id, err)
		}
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path    string
		wantErr string
	}{
		{"/mnt/usbdisk/ttnode1/mnts", ""},
		{"/", ""},
		{"", "must not be empty"},
		{"mnt/x", "absolute"},
		{"/mnt/a b", "whitespace"},
		{"/mnt/a\tb", "whitespace"},
		{"/mnt/a\x01b", "control"},
		{"/mnt/a\u00a0b", "whitespace"},
		{"/mnt/a,b", "comma"},
		{"/mnt//x", "clean"},
		{"/mnt/x/", "clean"},
		{"/mnt/./x", "clean"},
		{"/mnt/../x", "clean"},
	}
	for _, tt := range tests {
		err := ValidatePath("merged dir", tt.path)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidatePath(%q) = %v, want nil", tt.path, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidatePath(%q) = %v, want an error about %q", tt.path, err, tt.wantErr)
		case err != nil && !strings.Contains(err.Error(), "merged dir"):
			t.Errorf("ValidatePath(%q): error %q does not name what the path is", tt.path, err)
		}
	}
}

func TestValidateOptions(t *testing.T) {
	tests := []struct {
		options string
		wantErr string
	}{
		{"lowerdir=/l,upperdir=/u,workdir=/w,index=off,nofail", ""},
		{"defaults", ""},
		{"x-systemd.requires-mounts-for=/mnt/usbdisk", ""},
		{"x-overlay-fleetish=1", ""},
		{"", "must not be empty"},
		{"a b", "whitespace"},
		{"a,\nb", "whitespace"},
		{"a,,b", "empty option"},
		{",a", "empty option"},
		{"a,", "empty option"},
		{"nofail,x-overlay-fleet=box1/a", "marker"},
		{"x-overlay-fleet", "marker"},
	}
	for _, tt := range tests {
		err := ValidateOptions(tt.options)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateOptions(%q) = %v, want nil", tt.options, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidateOptions(%q) = %v, want an error about %q", tt.options, err, tt.wantErr)
		case err != nil && tt.options != "" && !strings.Contains(err.Error(), strings.ReplaceAll(tt.options, "\n", `\n`)):
			t.Errorf("ValidateOptions(%q): error %q does not name the value", tt.options, err)
		}
	}
}
