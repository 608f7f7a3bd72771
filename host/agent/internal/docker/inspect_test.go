package docker

import (
	"reflect"
	"strings"
	"testing"
)

// Trimmed `docker container inspect` output of the two engine generations (fields as the
// engines write them; unrelated ones left out).
const (
	// Docker 20.10 (API 1.41), running: the MAC both container-wide and on the endpoint.
	inspect2010Running = `[{"Id":"9f1c","Created":"2024-01-01T00:00:00Z","State":{"Status":"running","Running":true,"Paused":false,"Restarting":false,"Pid":4242,"ExitCode":0,"Error":""},
"Image":"sha256:aaaa","Name":"/ttnode1","RestartCount":0,
"HostConfig":{"Binds":null,"NetworkMode":"macnet","RestartPolicy":{"Name":"always","MaximumRetryCount":0},"Dns":["198.18.0.53"],"Privileged":false,
  "Mounts":[{"Type":"bind","Source":"/mnt/usbdisk/ttnode1/mnts","Target":"/mnts"}]},
"Mounts":[{"Type":"bind","Source":"/mnt/usbdisk/ttnode1/mnts","Destination":"/mnts","Mode":"","RW":true,"Propagation":"rprivate"}],
"Config":{"Hostname":"box1-ttnode1","Env":["NODE=1","PATH=/usr/bin:/bin"],"Image":"overlay-fleet/cache-node:lab","MacAddress":"02:AA:BB:CC:DD:01",
  "Labels":{"overlay-fleet.instance":"box1/ttnode1"}},
"NetworkSettings":{"Bridge":"","MacAddress":"","Networks":{"macnet":{"IPAMConfig":{"IPv4Address":"198.18.1.101"},"Links":null,"Aliases":["9f1c"],
  "NetworkID":"n1","EndpointID":"e1","Gateway":"198.18.1.1","IPAddress":"198.18.1.101","IPPrefixLen":24,"MacAddress":"02:aa:bb:cc:dd:01","DriverOpts":null}}}}]`
	// Docker 29 (API 1.50 through the 28 CLI), stopped: no address and no MAC on the endpoint,
	// none container-wide; the static IP in IPAMConfig; made with -v (no HostConfig.Mounts).
	inspect29Stopped = `[{"Id":"7e2d","State":{"Status":"exited","Running":false,"ExitCode":137,"Error":""},"Image":"sha256:bbbb","Name":"/ttnode2",
"HostConfig":{"Binds":["/mnt/usbdisk/ttnode2/mnts:/mnts"],"NetworkMode":"macnet","RestartPolicy":{"Name":"no","MaximumRetryCount":0},"Dns":null,"Privileged":true},
"Mounts":[{"Type":"bind","Source":"/mnt/usbdisk/ttnode2/mnts","Destination":"/mnts","RW":true}],
"Config":{"Hostname":"box2-ttnode2","Env":null,"Image":"overlay-fleet/cache-node:lab","Labels":{"overlay-fleet.instance":"box2/ttnode2","overlay-fleet.mac":"02:aa:bb:cc:dd:02"}},
"NetworkSettings":{"Networks":{"macnet":{"IPAMConfig":{"IPv4Address":"198.18.2.102"},"NetworkID":"n2","EndpointID":"","IPAddress":"","MacAddress":""}}}}]`
)

// inspect29Restarting is inspect29Stopped while the engine restarts it: Running and Restarting.
var inspect29Restarting = strings.Replace(inspect29Stopped, `"State":{"Status":"exited","Running":false,"ExitCode":137`,
	`"State":{"Status":"restarting","Running":true,"Restarting":true,"ExitCode":1`, 1)

func TestParseContainer(t *testing.T) {
	tests := []struct {
		name string
		data string
		as   string
		view View
		want Container
	}{
		{name: "20.10 running", data: inspect2010Running, as: "ttnode1", want: Container{
			Name: "ttnode1", Present: true, ID: "9f1c", Running: true, Status: "running", InstanceID: "box1/ttnode1",
			Hostname: "box1-ttnode1", Network: "macnet", IP: "198.18.1.101", MAC: "02:aa:bb:cc:dd:01", Image: "overlay-fleet/cache-node:lab",
			ImageID: "sha256:aaaa", Merged: "/mnt/usbdisk/ttnode1/mnts", Target: "/mnts", Restart: "always", DNS: []string{"198.18.0.53"},
		}},
		{name: "29 stopped", data: inspect29Stopped, as: "ttnode2", view: View{Network: "macnet"}, want: Container{
			Name: "ttnode2", Present: true, ID: "7e2d", Status: "exited", ExitCode: 137, InstanceID: "box2/ttnode2",
			Hostname: "box2-ttnode2", Network: "macnet", IP: "198.18.2.102", MAC: "02:aa:bb:cc:dd:02", Image: "overlay-fleet/cache-node:lab",
			ImageID: "sha256:bbbb", Merged: "/mnt/usbdisk/ttnode2/mnts", Target: "/mnts", Restart: "no", Privileged: true, DNS: []string{},
		}},
		{name: "29 restarting (exited, in the restart policy's back-off): not running, its MAC from its label", data: inspect29Restarting, as: "ttnode2", view: View{Network: "macnet"}, want: Container{
			Name: "ttnode2", Present: true, ID: "7e2d", Status: "restarting", ExitCode: 1, InstanceID: "box2/ttnode2",
			Hostname: "box2-ttnode2", Network: "macnet", IP: "198.18.2.102", MAC: "02:aa:bb:cc:dd:02", Image: "overlay-fleet/cache-node:lab",
			ImageID: "sha256:bbbb", Merged: "/mnt/usbdisk/ttnode2/mnts", Target: "/mnts", Restart: "no", Privileged: true, DNS: []string{},
		}},
		{name: "an id prefix match is not the container", data: inspect2010Running, as: "9f", want: Container{Name: "9f"}},
		{name: "empty answer", data: `[]`, as: "ttnode1", want: Container{Name: "ttnode1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseContainer([]byte(tt.data), tt.as, tt.view)
			if err != nil {
				t.Fatal(err)
			}
			if got := public(got); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	if _, err := parseContainer([]byte("Segmentation fault"), "ttnode1", View{}); err == nil {
		t.Error("garbage parsed")
	}
}

func TestParseNetwork(t *testing.T) {
	data := `[{"Name":"macnet","Id":"abc123","Driver":"macvlan","Options":{"parent":"of-b1"},"Labels":{"overlay-fleet.box":"box1"},
"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"fd00::/64"},{"Subnet":"198.18.1.0/24","Gateway":"198.18.1.1"}]},"Containers":{}}]`
	got, err := parseNetwork([]byte(data), "macnet")
	want := Network{Name: "macnet", Present: true, ID: "abc123", Driver: "macvlan", Parent: "of-b1", Subnet: "198.18.1.0/24", Gateway: "198.18.1.1", Box: "box1"}
	if err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if got, err := parseNetwork([]byte(data), "abc"); err != nil || got.Present {
		t.Errorf("an id prefix match: %+v, %v", got, err)
	}
}

func TestParseUsers(t *testing.T) {
	got := parseUsers([]byte("ttnode2\tbox1/ttnode2\npihole\t\n\nttnode1\tbox1/ttnode1\n"))
	want := []user{{"pihole", ""}, {"ttnode1", "box1/ttnode1"}, {"ttnode2", "box1/ttnode2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestOwnEnv(t *testing.T) {
	got := ownEnv(envMap([]string{"PATH=/usr/bin", "NODE=1", "MODE=fast", "EMPTY="}), envMap([]string{"PATH=/usr/bin", "MODE=slow"}))
	want := map[string]string{"NODE": "1", "MODE": "fast", "EMPTY": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
