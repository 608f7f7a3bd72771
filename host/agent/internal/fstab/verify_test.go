package fstab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// exitStatus is an *exec.ExitError with the given status, from a real process.
func exitStatus(t *testing.T, code string) error {
	t.Helper()
	err := exec.Command("sh", "-c", "exit "+code).Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("cannot make an exit status: %v", err)
	}
	return err
}

func TestFindmntVerify(t *testing.T) {
	ours := []WrittenLine{{LineNo: 4, MountPoint: "/d/n1/mnts"}}
	tests := []struct {
		name           string
		written        []WrittenLine // ours when nil
		stdout, stderr string
		exit           string // "" for status 0
		runErr         error
		wantErr        string
	}{
		{
			name:    "parse error at our line, named by its number in the fstab",
			written: []WrittenLine{{LineNo: 1, FstabLineNo: 10, MountPoint: "/d/n1/mnts"}, {LineNo: 2, FstabLineNo: 3, MountPoint: "/d/n2/mnts"}},
			stderr:  "findmnt: f: parse error at line 2 -- ignored\n",
			exit:    "1",
			wantErr: "reports for the written lines: parse error at line 3",
		},
		{
			name:   "clean",
			stdout: "", stderr: "0 parse errors, 0 errors, 0 warnings\n",
		},
		{
			name: "missing target of ours, wrong order, foreign errors and warnings",
			stdout: "/boot\n   [E] unreachable on boot required source: UUID=abcd\n" +
				"/d/n1/mnts\n   [E] wrong order: /d/n1/mnts specified before /d\n   [E] unreachable on boot required target: No such file or directory\n   [W] overlay seems unsupported by the current kernel\n" +
				"/data dir\n   [E] target is not a directory\n",
			stderr: "findmnt: /etc/.fstab.x: parse error at line 2 -- ignored\n\n1 parse errors, 4 errors, 1 warnings\n",
			exit:   "1",
		},
		{
			name:    "error for our target",
			stdout:  "/x\n   [E] target is not a directory\n/d/n1/mnts\n   [E] target is not a directory\n   [W] something\n",
			exit:    "1",
			wantErr: "findmnt --verify reports for the written lines: [E] target is not a directory",
		},
		{
			name:    "parse error at our line",
			stderr:  "findmnt: f: parse error at line 4 -- ignored\n",
			exit:    "1",
			wantErr: "parse error at line 4",
		},
		{
			name:   "findmnt without --verify",
			stderr: "findmnt: unrecognized option '--verify'\nTry 'findmnt --help' for more information.\n",
			exit:   "1",
		},
		{
			name:    "findmnt does not run",
			runErr:  errors.New("exec format error"),
			wantErr: "cannot run /usr/bin/findmnt --verify: exec format error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotArgs []string
			f := &Findmnt{Path: "/usr/bin/findmnt", Run: func(_ context.Context, name string, args ...string) ([]byte, []byte, error) {
				gotArgs = append([]string{name}, args...)
				err := tt.runErr
				if tt.exit != "" {
					err = exitStatus(t, tt.exit)
				}
				return []byte(tt.stdout), []byte(tt.stderr), err
			}}
			written := tt.written
			if written == nil {
				written = ours
			}
			err := f.Verify(context.Background(), "/etc/.fstab.x", written)
			if want := "/usr/bin/findmnt --verify --tab-file /etc/.fstab.x"; strings.Join(gotArgs, " ") != want {
				t.Errorf("ran %q, want %q", gotArgs, want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Verify() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Verify() = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestFindmntVerifyReal runs the findmnt of this machine, when it has one.
func TestFindmntVerifyReal(t *testing.T) {
	v := FindmntOnPath()
	if v == nil {
		t.Skip("no findmnt on PATH")
	}
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	writeFile(t, notADir, "", 0o644)
	tests := []struct {
		name    string
		content string
		written []WrittenLine
		wantErr string
	}{
		{
			name:    "our line with a missing mount point, beside broken foreign lines",
			content: "justone\nUUID=0000-none /boot ext4 defaults 0 2\n" + line1 + "\n",
			written: []WrittenLine{{LineNo: 3, MountPoint: "/d/n1/mnts"}},
		},
		{
			name:    "our line on a file",
			content: "overlay " + notADir + " overlay lowerdir=/l,x-overlay-fleet=box1/n1 0 0\n",
			written: []WrittenLine{{LineNo: 1, MountPoint: notADir}},
			wantErr: "target is not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "tab")
			if err := os.WriteFile(file, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := v.Verify(context.Background(), file, tt.written)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Verify() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Verify() = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
