package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"overlay-fleet/host/agent/internal/lock"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// fakeDocker is an engine and its CLI in memory: it understands the calls the operations make
// and answers them as the docker CLI does (inspect JSON, "No such ..." errors).
type fakeDocker struct {
	containers map[string]*fakeContainer
	networks   map[string]*fakeNetwork
	images     map[string]fakeImage // by reference and by id
	// oldAPI makes the inspect of a stopped container show Config.MacAddress (API < 1.44).
	oldAPI bool
	// giveMAC, when set, is the MAC the engine gives a new container whatever was asked.
	giveMAC string
	// exitOnStart makes started containers exit at once; crashLoop makes them run again after
	// exiting, as a restart policy does (running, restarted once).
	exitOnStart, crashLoop bool
	// fail maps a call's first words (e.g. "run", "network create") to the error it gets; a run
	// that fails leaves a created container, as the real CLI does when the start fails.
	fail  map[string]error
	calls [][]string
	seq   int
}

type fakeContainer struct {
	id, name, hostname, network, ip, mac, imageRef, imageID string
	running                                                 bool
	status                                                  string
	labels                                                  map[string]string
	restart                                                 string
	privileged                                              bool
	dns, env                                                []string
	source, target                                          string
	restarts                                                int
}

type fakeNetwork struct {
	id, name, driver, parent, subnet, gateway string
	labels                                    map[string]string
}

type fakeImage struct {
	id  string
	env []string
}

const (
	labImage   = "overlay-fleet/cache-node:lab"
	labImageID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	newImageID = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func newFakeDocker() *fakeDocker {
	f := &fakeDocker{containers: map[string]*fakeContainer{}, networks: map[string]*fakeNetwork{}, images: map[string]fakeImage{}, fail: map[string]error{}}
	f.addImage(labImage, labImageID, "PATH=/usr/bin:/bin", "CACHE=/mnts")
	return f
}

func (f *fakeDocker) addImage(ref, id string, env ...string) {
	f.images[ref] = fakeImage{id: id, env: env}
	f.images[id] = fakeImage{id: id, env: env}
}

func (f *fakeDocker) nextID() string {
	f.seq++
	return fmt.Sprintf("%064x", f.seq)
}

func notFound(args []string, what string) error {
	return &Error{Args: args, ExitStatus: 1, Stderr: "Error: No such " + what + ": " + args[len(args)-1]}
}

func usage(args []string, msg string) error {
	return &Error{Args: args, ExitStatus: 125, Stderr: "docker: " + msg}
}

// flags splits `--flag value` pairs (and lone --detach, --privileged, --no-trunc, -a) from the
// trailing operands.
func flags(args []string) (map[string][]string, []string) {
	m := map[string][]string{}
	lone := map[string]bool{"--detach": true, "--privileged": true, "--no-trunc": true, "-a": true, "--force": true}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case lone[a]:
			m[a] = append(m[a], "")
		case strings.HasPrefix(a, "-") && i+1 < len(args):
			m[a] = append(m[a], args[i+1])
			i++
		default:
			rest = append(rest, a)
		}
	}
	return m, rest
}

func (f *fakeDocker) Run(_ context.Context, _ Kind, args ...string) ([]byte, error) {
	f.calls = append(f.calls, args)
	for k, err := range f.fail {
		if strings.HasPrefix(strings.Join(args, " "), k) {
			if k == "run" {
				f.run(args[1:], false)
			}
			return nil, err
		}
	}
	switch {
	case len(args) == 3 && args[0] == "container" && args[1] == "inspect":
		c := f.containers[args[2]]
		if c == nil {
			return nil, notFound(args, "container")
		}
		return json.Marshal([]any{f.inspect(c)})
	case len(args) == 3 && args[0] == "image" && args[1] == "inspect":
		img, ok := f.images[args[2]]
		if !ok {
			return nil, notFound(args, "image")
		}
		return json.Marshal([]any{map[string]any{"Id": img.id, "Config": map[string]any{"Env": img.env}}})
	case len(args) == 3 && args[0] == "network" && args[1] == "inspect":
		n := f.networks[args[2]]
		if n == nil {
			return nil, &Error{Args: args, ExitStatus: 1, Stderr: "Error response from daemon: network " + args[2] + " not found"}
		}
		return json.Marshal([]any{map[string]any{
			"Name": n.name, "Id": n.id, "Driver": n.driver, "Options": map[string]string{"parent": n.parent}, "Labels": n.labels,
			"IPAM": map[string]any{"Config": []any{map[string]string{"Subnet": n.subnet, "Gateway": n.gateway}}},
		}})
	case len(args) > 2 && args[0] == "network" && args[1] == "create":
		fl, rest := flags(args[2:])
		if len(rest) != 1 || f.networks[rest[0]] != nil {
			return nil, usage(args, "network exists")
		}
		n := &fakeNetwork{id: f.nextID(), name: rest[0], driver: fl["--driver"][0], subnet: fl["--subnet"][0], gateway: fl["--gateway"][0], labels: map[string]string{}}
		n.parent = strings.TrimPrefix(fl["--opt"][0], "parent=")
		for _, l := range fl["--label"] {
			k, v, _ := strings.Cut(l, "=")
			n.labels[k] = v
		}
		f.networks[n.name] = n
		return []byte(n.id + "\n"), nil
	case len(args) == 3 && args[0] == "network" && args[1] == "rm":
		for name, n := range f.networks {
			if n.id == args[2] || name == args[2] {
				delete(f.networks, name)
				return []byte(args[2] + "\n"), nil
			}
		}
		return nil, notFound(args, "network")
	case len(args) > 1 && args[0] == "ps":
		fl, _ := flags(args[1:])
		id := strings.TrimPrefix(fl["--filter"][0], "network=")
		var out strings.Builder
		for _, name := range slices.Sorted(maps.Keys(f.containers)) {
			c := f.containers[name]
			if n := f.networks[c.network]; n != nil && n.id == id {
				fmt.Fprintf(&out, "%s\t%s\n", c.name, c.labels[InstanceLabel])
			}
		}
		return []byte(out.String()), nil
	case len(args) > 1 && args[0] == "run":
		return f.run(args[1:], true)
	case len(args) == 3 && args[0] == "rm" && args[1] == "--force":
		if f.containers[args[2]] == nil {
			return nil, notFound(args, "container")
		}
		delete(f.containers, args[2])
		return []byte(args[2] + "\n"), nil
	case len(args) == 4 && args[0] == "stop":
		c := f.containers[args[3]]
		if c == nil {
			return nil, notFound(args, "container")
		}
		c.running, c.status = false, "exited"
		return []byte(args[3] + "\n"), nil
	case len(args) == 2 && args[0] == "start":
		c := f.containers[args[1]]
		if c == nil {
			return nil, notFound(args, "container")
		}
		f.start(c)
		return []byte(args[1] + "\n"), nil
	case len(args) == 4 && args[0] == "update" && args[1] == "--restart":
		c := f.containers[args[3]]
		if c == nil {
			return nil, notFound(args, "container")
		}
		c.restart = args[2]
		return []byte(args[3] + "\n"), nil
	}
	return nil, usage(args, "the fake does not know this call")
}

func (f *fakeDocker) start(c *fakeContainer) {
	c.running, c.status = true, "running"
	if f.exitOnStart {
		c.running, c.status = false, "exited"
	}
	if f.crashLoop {
		c.restarts++
	}
}

func (f *fakeDocker) run(args []string, start bool) ([]byte, error) {
	fl, rest := flags(args)
	if len(rest) != 1 {
		return nil, usage(args, "want one image")
	}
	name := fl["--name"][0]
	if f.containers[name] != nil {
		return nil, usage(args, "Conflict. The container name \"/"+name+"\" is already in use")
	}
	img, ok := f.images[rest[0]]
	if !ok {
		return nil, usage(args, "Unable to find image")
	}
	c := &fakeContainer{
		id: f.nextID(), name: name, hostname: fl["--hostname"][0], network: fl["--network"][0], ip: fl["--ip"][0],
		mac: fl["--mac-address"][0], imageRef: rest[0], imageID: img.id, status: "created", labels: map[string]string{},
		restart: fl["--restart"][0], privileged: fl["--privileged"] != nil, dns: fl["--dns"], env: append(slices.Clone(img.env), fl["--env"]...),
	}
	if f.giveMAC != "" {
		c.mac = f.giveMAC
	}
	for _, l := range fl["--label"] {
		k, v, _ := strings.Cut(l, "=")
		c.labels[k] = v
	}
	for _, part := range strings.Split(fl["--mount"][0], ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "source":
			c.source = v
		case "target":
			c.target = v
		}
	}
	f.containers[name] = c
	if start {
		f.start(c)
	}
	return []byte(c.id + "\n"), nil
}

// inspect is the container as `docker container inspect` shows it: a stopped container's
// endpoint has no address and no MAC; engines below API 1.44 show the MAC in Config.
func (f *fakeDocker) inspect(c *fakeContainer) map[string]any {
	ep := map[string]any{"NetworkID": "", "IPAddress": "", "MacAddress": "", "IPAMConfig": map[string]string{"IPv4Address": c.ip}}
	if n := f.networks[c.network]; n != nil {
		ep["NetworkID"] = n.id
	}
	if c.running {
		ep["IPAddress"], ep["MacAddress"] = c.ip, c.mac
	}
	config := map[string]any{"Hostname": c.hostname, "Image": c.imageRef, "Env": c.env, "Labels": c.labels}
	if f.oldAPI {
		config["MacAddress"] = c.mac
	}
	return map[string]any{
		"Id": c.id, "Name": "/" + c.name, "Image": c.imageID, "RestartCount": c.restarts,
		"State":  map[string]any{"Status": c.status, "Running": c.running, "ExitCode": map[bool]int{true: 0, false: 1}[c.running]},
		"Config": config,
		"HostConfig": map[string]any{
			"NetworkMode": c.network, "Privileged": c.privileged, "RestartPolicy": map[string]any{"Name": c.restart}, "Dns": c.dns,
			"Mounts": []any{map[string]any{"Type": "bind", "Source": c.source, "Target": c.target}},
		},
		"NetworkSettings": map[string]any{"Networks": map[string]any{c.network: ep}},
	}
}

// callsOf are the recorded calls whose first word is verb, joined.
func (f *fakeDocker) callsOf(verbs ...string) []string {
	var out []string
	for _, c := range f.calls {
		if slices.Contains(verbs, c[0]) || (len(c) > 1 && slices.Contains(verbs, c[0]+" "+c[1])) {
			out = append(out, strings.Join(c, " "))
		}
	}
	return out
}

// testEngine is an Engine on f with its own lock dir and a mount table where overlays are
// mounted on the given dirs.
func testEngine(t *testing.T, f Runner, overlays ...string) *Engine {
	t.Helper()
	return &Engine{
		Docker: f,
		Locks:  &lock.Dir{Path: filepath.Join(t.TempDir(), "locks"), Owner: os.Getuid()},
		MountTable: func() (mountinfo.Table, error) {
			t := mountinfo.Table{{ID: 1, ParentID: 1, MountPoint: "/", FSType: "ext4"}}
			for i, dir := range overlays {
				t = append(t, mountinfo.Mount{ID: 10 + i, ParentID: 1, MountPoint: dir, FSType: "overlay", Source: "overlay"})
			}
			return t, nil
		},
	}
}
