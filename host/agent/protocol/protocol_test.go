package protocol

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestRequestsLeaveOutEmptyFields(t *testing.T) {
	tests := []struct {
		name string
		req  any
		want string
	}{
		{"fstab-entry read", FstabEntryRequest{FSTab: "/etc/fstab", ID: "box1/n1"}, `{"fstab":"/etc/fstab","id":"box1/n1"}`},
		{"fstab-entry create", FstabEntryRequest{FSTab: "/etc/fstab", ID: "box1/n1", Merged: "/m", Options: "a,b"},
			`{"fstab":"/etc/fstab","id":"box1/n1","merged":"/m","options":"a,b"}`},
		{"overlay-mount read", OverlayMountRequest{Merged: "/d/n1/mnts"}, `{"merged":"/d/n1/mnts"}`},
		{"overlay-mount delete with purge", OverlayMountRequest{Merged: "/d/n1/mnts", Upper: "/d/n1/upper", Work: "/d/n1/work", Purge: true},
			`{"merged":"/d/n1/mnts","upper":"/d/n1/upper","work":"/d/n1/work","purge":true}`},
		{"network delete", NetworkRequest{Name: "macnet", Box: "box1"}, `{"name":"macnet","box":"box1"}`},
		{"container delete", ContainerRequest{Name: "ttnode1", InstanceID: "box1/ttnode1"}, `{"name":"ttnode1","instanceId":"box1/ttnode1"}`},
		{"container read", ContainerRequest{Name: "ttnode1", Env: map[string]string{"K": ""}}, `{"name":"ttnode1","env":{"K":""}}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.req)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: %s, %v; want %s", tt.name, got, err, tt.want)
		}
	}
}

func TestAnswersRoundTrip(t *testing.T) {
	answers := []any{
		&FstabEntryAnswer{FSTab: "/etc/fstab", ID: "box1/n1", Present: true, Merged: "/m", Options: "a", Line: "overlay /m overlay a 0 0"},
		&FstabEntryAnswer{FSTab: "/etc/fstab", ID: "box1/n1"},
		&OverlayMountAnswer{Merged: "/m", Mounted: true, Lower: "/l", Upper: "/u", Work: "/w", Options: "index=off"},
		&NetworkAnswer{Name: "macnet", ID: "abc", Present: true, Driver: "macvlan", Parent: "eth0", Subnet: "10.0.0.0/24", Gateway: "10.0.0.1", Box: "box1"},
		&ContainerAnswer{Name: "ttnode1", Present: true, Running: true, DNS: []string{}, Env: map[string]string{"K": "V"}},
	}
	for _, a := range answers {
		data, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got := reflect.New(reflect.TypeOf(a).Elem()).Interface()
		if err := json.Unmarshal(data, got); err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("%s decoded as %+v, %v; want %+v", data, got, err, a)
		}
	}
}

// TestAnswersWithoutPresence: an answer that does not say whether the object exists is an
// error, not "it does not exist" (a reader would drop the resource from the state).
func TestAnswersWithoutPresence(t *testing.T) {
	tests := []struct {
		into    any
		data    string
		wantErr string
	}{
		{&FstabEntryAnswer{}, `{"fstab":"/etc/fstab","id":"box1/n1"}`, `no "present" field`},
		{&FstabEntryAnswer{}, `{"fstab":"/etc/fstab","id":"box1/n1","present":null}`, `no "present" field`},
		{&FstabEntryAnswer{}, `null`, `no "present" field`},
		{&OverlayMountAnswer{}, `{"merged":"/m"}`, `no "mounted" field`},
		{&NetworkAnswer{}, `{"name":"macnet"}`, `no "present" field`},
		{&ContainerAnswer{}, `{"name":"ttnode1","running":true}`, `no "present" field`},
		{&ContainerAnswer{}, `["not an object"]`, "cannot unmarshal array"},
		{&OverlayMountAnswer{}, `{"merged":"/m","mounted":"yes"}`, "cannot unmarshal string"},
	}
	for _, tt := range tests {
		if err := json.Unmarshal([]byte(tt.data), tt.into); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("decoding %s into %T: %v, want an error with %q", tt.data, tt.into, err, tt.wantErr)
		}
	}
	var a FstabEntryAnswer
	if err := json.Unmarshal([]byte(`{"fstab":"/etc/fstab","id":"box1/n1","present":false}`), &a); err != nil || a.Present || a.ID != "box1/n1" {
		t.Errorf("an absent entry: %+v, %v", a, err)
	}
}
