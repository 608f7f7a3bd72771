package down

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	inFlight := Record{Instance: "box1/ttnode2", Run: "r1"}
	failedNow := Record{Instance: "box1/ttnode2", Run: "r1", Failed: "not running after its start", FailedRun: "r1"}
	failedBefore := Record{Instance: "box1/ttnode2", Run: "r0", Failed: "not running after its start", FailedRun: "r0"}
	tests := []struct {
		name    string
		down    []Record
		max     int
		waited  time.Duration
		want    Verdict
		wantWhy string
	}{
		{"none down", nil, 1, 0, Go, ""},
		{"its own record does not count", []Record{{Instance: "box1/ttnode1"}}, 1, 0, Go, ""},
		{"one down, max 1: wait", []Record{inFlight}, 1, 0, Wait, "maxDownPerBox 1: down already: box1/ttnode2"},
		{"one down, max 2", []Record{inFlight}, 2, 0, Go, ""},
		{"a replacement failed in this run: refused at once", []Record{failedNow}, 4, 0, Refuse, "the replacement of box1/ttnode2 failed in this run"},
		{"failed in an earlier run: wait a while", []Record{failedBefore}, 1, time.Second, Wait, "down already: box1/ttnode2"},
		{"failed in an earlier run, waited long enough: refused", []Record{failedBefore}, 4, FailedWait, Refuse, "box1/ttnode2 is down since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Decide(tt.down, "box1/ttnode1", "r1", tt.max, tt.waited)
			if got != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("Decide = %v %q, want %v with %q", got, why, tt.want, tt.wantWhy)
			}
		})
	}
}

func TestStore(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "down"), Owner: os.Getuid()}
	if rs, err := s.List(); err != nil || len(rs) != 0 {
		t.Fatalf("List of a new store: %v %v", rs, err)
	}
	since := time.Date(2026, 12, 8, 4, 0, 0, 0, time.UTC)
	for _, r := range []Record{{Instance: "box1/ttnode2", Merged: "/m2", Since: since, Run: "r1"}, {Instance: "box1/ttnode1", Merged: "/m1", Since: since, Run: "r1"}} {
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	r, ok, err := s.Get("box1/ttnode2")
	if err != nil || !ok || r.Merged != "/m2" || !r.Since.Equal(since) {
		t.Fatalf("Get = %+v %v %v", r, ok, err)
	}
	if err := s.Remove("box1/ttnode2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("box1/ttnode9"); err != nil {
		t.Errorf("removing a record that is not there: %v", err)
	}
	rs, err := s.List()
	if err != nil || len(rs) != 1 || rs[0].Instance != "box1/ttnode1" {
		t.Errorf("List = %+v %v", rs, err)
	}
	// A record that does not parse, or names another instance than its file, is refused.
	os.WriteFile(filepath.Join(s.Dir, "box1@ttnode3.json"), []byte(`{"instance":"box1/ttnode4"}`), 0o600)
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "box1@ttnode3.json is garbled") {
		t.Errorf("a record under another name: %v", err)
	}
}

func TestStoreRefusesAnOpenDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "down")
	os.Mkdir(dir, 0o777)
	os.Chmod(dir, 0o777)
	if _, err := (Store{Dir: dir, Owner: os.Getuid()}).List(); err == nil || !strings.Contains(err.Error(), "others cannot write") {
		t.Errorf("a directory others can write: %v", err)
	}
}
