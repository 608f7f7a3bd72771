package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"overlay-fleet/host/agent/internal/lock"
	"overlay-fleet/host/agent/protocol"
)

const (
	foreignLines = "# /etc/fstab\nUUID=1234\t/   ext4 errors=remount-ro 0 1\n/dev/sdb1 /mnt/usb\\040disk ext4 nofail 0 2"
	opts         = "lowerdir=/mnt/usbdisk/static_cache,upperdir=/mnt/usbdisk/ttnode1/upper,workdir=/mnt/usbdisk/ttnode1/work,index=off,nfs_export=off,redirect_dir=off,metacopy=off,nofail"
	line         = "overlay /mnt/usbdisk/ttnode1/mnts overlay " + opts + ",x-overlay-fleet=box1/ttnode1 0 0"
)

// testEnv is an env with its own lock dir (owned by the user running the test) and no verifier.
func testEnv(t *testing.T, stdin string) (*env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	return &env{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		locks:  &lock.Dir{Path: filepath.Join(t.TempDir(), "locks"), Owner: os.Getuid()},
	}, &stdout, &stderr
}

func request(t *testing.T, v map[string]string) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestFstabEntryLifecycle runs create, read, update, delete on one fstab, as the provider would.
func TestFstabEntryLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fstab")
	if err := os.WriteFile(path, []byte(foreignLines), 0o644); err != nil {
		t.Fatal(err)
	}
	full := map[string]string{"fstab": path, "id": "box1/ttnode1", "merged": "/mnt/usbdisk/ttnode1/mnts", "options": opts}
	updated := map[string]string{"fstab": path, "id": "box1/ttnode1", "merged": "/mnt/usbdisk/ttnode1/mnts", "options": opts + ",ro"}
	short := map[string]string{"fstab": path, "id": "box1/ttnode1"}
	present := protocol.FstabEntryAnswer{FSTab: path, ID: "box1/ttnode1", Present: true, Merged: "/mnt/usbdisk/ttnode1/mnts", Options: opts, Line: line}
	withRO := protocol.FstabEntryAnswer{FSTab: path, ID: "box1/ttnode1", Present: true, Merged: "/mnt/usbdisk/ttnode1/mnts", Options: opts + ",ro",
		Line: strings.Replace(line, ",x-overlay-fleet", ",ro,x-overlay-fleet", 1)}
	absent := protocol.FstabEntryAnswer{FSTab: path, ID: "box1/ttnode1"}
	steps := []struct {
		action  string
		req     map[string]string
		want    protocol.FstabEntryAnswer
		wantTab string
		// rewrites says that the step replaces the file; the others must leave it alone.
		rewrites bool
	}{
		{"read", short, absent, foreignLines, false},
		{"delete", short, absent, foreignLines, false},
		{"create", full, present, foreignLines + "\n" + line + "\n", true},
		{"create", full, present, foreignLines + "\n" + line + "\n", false},
		{"read", full, present, foreignLines + "\n" + line + "\n", false},
		{"update", updated, withRO, foreignLines + "\n" + withRO.Line + "\n", true},
		{"update", updated, withRO, foreignLines + "\n" + withRO.Line + "\n", false},
		{"read", short, withRO, foreignLines + "\n" + withRO.Line + "\n", false},
		{"delete", full, absent, foreignLines + "\n", true},
		{"delete", short, absent, foreignLines + "\n", false},
		{"read", short, absent, foreignLines + "\n", false},
	}
	for i, s := range steps {
		before, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		e, stdout, stderr := testEnv(t, request(t, s.req))
		if code := run(context.Background(), e, []string{"fstab-entry", s.action}); code != 0 {
			t.Fatalf("step %d %s: exit %d, stderr %q", i, s.action, code, stderr)
		}
		if stderr.Len() != 0 {
			t.Errorf("step %d %s: stderr %q", i, s.action, stderr)
		}
		var got protocol.FstabEntryAnswer
		dec := json.NewDecoder(stdout)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("step %d %s: stdout %q: %v", i, s.action, stdout, err)
		}
		if got != s.want {
			t.Errorf("step %d %s: answer\n%+v\nwant\n%+v", i, s.action, got, s.want)
		}
		data, _ := os.ReadFile(path)
		if string(data) != s.wantTab {
			t.Errorf("step %d %s: fstab\n%q\nwant\n%q", i, s.action, data, s.wantTab)
		}
		after, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if rewritten := !os.SameFile(before, after); rewritten != s.rewrites {
			t.Errorf("step %d %s: file replaced %v, want %v", i, s.action, rewritten, s.rewrites)
		}
	}
}

func TestFstabEntryAnswerKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fstab")
	e, stdout, _ := testEnv(t, request(t, map[string]string{"fstab": path, "id": "box1/ttnode1"}))
	if code := run(context.Background(), e, []string{"fstab-entry", "read"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"fstab": path, "id": "box1/ttnode1", "present": false, "merged": "", "options": "", "line": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer %v, want every key: %v", got, want)
	}
	if !strings.HasSuffix(stdout.String(), "}\n") || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("answer %q is not one line", stdout)
	}
}

func TestFstabEntryErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fstab")
	conflict := filepath.Join(dir, "conflict")
	if err := os.WriteFile(conflict, []byte("/dev/sdc1 /mnt/usbdisk/ttnode1/mnts ext4 defaults 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := `{"fstab":"` + path + `","id":"box1/ttnode1","merged":"/mnt/usbdisk/ttnode1/mnts","options":"` + opts + `"}`
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, "", 2, "no command given"},
		{"unknown command", []string{"mount"}, "", 2, `unknown command "mount"`},
		{"no action", []string{"fstab-entry"}, good, 2, "fstab-entry takes one action"},
		{"two actions", []string{"fstab-entry", "read", "read"}, good, 2, "fstab-entry takes one action"},
		{"bad action", []string{"fstab-entry", "upsert"}, good, 2, `got "upsert"`},
		{"empty stdin", []string{"fstab-entry", "read"}, " \n", 2, "no JSON request on stdin"},
		{"not JSON", []string{"fstab-entry", "read"}, "fstab=/etc/fstab", 2, "bad JSON request"},
		{"two values", []string{"fstab-entry", "create"}, good + good, 2, "more than one JSON value"},
		{"unknown key", []string{"fstab-entry", "read"}, `{"fstab":"/etc/fstab","id":"box1/a","mergd":"/x"}`, 2, `unknown field "mergd"`},
		{"wrong type", []string{"fstab-entry", "read"}, `{"fstab":"/etc/fstab","id":1}`, 2, "bad JSON request"},
		{"no fstab", []string{"fstab-entry", "read"}, `{"id":"box1/a"}`, 2, "fstab must not be empty"},
		{"relative fstab", []string{"fstab-entry", "read"}, `{"fstab":"fstab","id":"box1/a"}`, 2, `fstab "fstab" must be an absolute path`},
		{"bad id", []string{"fstab-entry", "delete"}, `{"fstab":"/etc/fstab","id":"box1/../x"}`, 2, `instance id "box1/../x"`},
		{"create without merged", []string{"fstab-entry", "create"}, `{"fstab":"/etc/fstab","id":"box1/a","options":"nofail"}`, 2, "merged dir must not be empty"},
		{"update with the marker", []string{"fstab-entry", "update"}, `{"fstab":"/etc/fstab","id":"box1/a","merged":"/m","options":"nofail,x-overlay-fleet=box1/b"}`, 2, `"nofail,x-overlay-fleet=box1/b" must not contain the x-overlay-fleet marker`},
		{"options with a newline", []string{"fstab-entry", "update"}, `{"fstab":"/etc/fstab","id":"box1/a","merged":"/m","options":"a\nb"}`, 2, `fstab options "a\nb" contain whitespace`},
		{"conflict", []string{"fstab-entry", "create"}, strings.Replace(good, path, conflict, 1), 1, `fstab "` + conflict + `": line 1 already has an entry for "/mnt/usbdisk/ttnode1/mnts"; refusing to add the line of box1/ttnode1`},
		{"fstab is a directory", []string{"fstab-entry", "read"}, `{"fstab":"` + dir + `","id":"box1/a"}`, 1, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, stdout, stderr := testEnv(t, tt.stdin)
			code := run(context.Background(), e, tt.args)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "overlay-fleet-host: ") || !strings.HasSuffix(msg, "\n") || strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr %q is not one line `overlay-fleet-host: ...`", msg)
			}
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("stderr %q does not say %q", msg, tt.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q on failure", stdout)
			}
		})
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a refused request created the fstab")
	}
}

func TestHelp(t *testing.T) {
	e, stdout, _ := testEnv(t, "")
	if code := run(context.Background(), e, []string{"--help"}); code != 0 || !strings.Contains(stdout.String(), "fstab-entry read|create|update|delete") {
		t.Errorf("--help: exit %d, %q", code, stdout)
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"a":                  "a",
		"a\nb\r\nc\rd":       "a; b; c; d",
		"  a  b \n":          "a  b",
		`"quoted\nvalue"`:    `"quoted\nvalue"`,
		"trailing newline\n": "trailing newline",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
