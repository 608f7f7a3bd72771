package docker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// The parts of `docker container inspect`, `docker network inspect` and `docker image inspect`
// JSON that overlay-fleet reads. Field names are the engine's; every engine from API 1.41 on
// has them (the MAC's place moved: see containerMAC).

type containerJSON struct {
	ID           string `json:"Id"`
	Name         string `json:"Name"`
	Image        string `json:"Image"`
	RestartCount int    `json:"RestartCount"`
	State        *struct {
		Status     string `json:"Status"`
		Running    bool   `json:"Running"`
		Restarting bool   `json:"Restarting"`
		ExitCode   int    `json:"ExitCode"`
		Error      string `json:"Error"`
	} `json:"State"`
	Config *struct {
		Hostname   string            `json:"Hostname"`
		Image      string            `json:"Image"`
		Env        []string          `json:"Env"`
		Labels     map[string]string `json:"Labels"`
		MacAddress string            `json:"MacAddress"` // container-wide, below API 1.44
	} `json:"Config"`
	HostConfig *struct {
		NetworkMode   string `json:"NetworkMode"`
		Privileged    bool   `json:"Privileged"`
		RestartPolicy struct {
			Name string `json:"Name"`
		} `json:"RestartPolicy"`
		DNS    []string `json:"Dns"`
		Mounts []struct {
			Type   string `json:"Type"`
			Source string `json:"Source"`
			Target string `json:"Target"`
		} `json:"Mounts"`
	} `json:"HostConfig"`
	Mounts []struct {
		Type        string `json:"Type"`
		Source      string `json:"Source"`
		Destination string `json:"Destination"`
	} `json:"Mounts"`
	NetworkSettings *struct {
		Networks map[string]*struct {
			NetworkID  string `json:"NetworkID"`
			IPAddress  string `json:"IPAddress"`
			MacAddress string `json:"MacAddress"`
			IPAMConfig *struct {
				IPv4Address string `json:"IPv4Address"`
			} `json:"IPAMConfig"`
		} `json:"Networks"`
	} `json:"NetworkSettings"`
}

type networkJSON struct {
	Name    string            `json:"Name"`
	ID      string            `json:"Id"`
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Labels  map[string]string `json:"Labels"`
	IPAM    struct {
		Config []struct {
			Subnet  string `json:"Subnet"`
			Gateway string `json:"Gateway"`
		} `json:"Config"`
	} `json:"IPAM"`
}

type imageJSON struct {
	ID     string `json:"Id"`
	Config *struct {
		Env []string `json:"Env"`
	} `json:"Config"`
}

// Container is a container as the engine reports it.
type Container struct {
	// Name is the container's name (without docker's leading `/`).
	Name string
	// Present says that the engine has a container of that name; the rest is empty when not.
	Present bool
	// ID is the container's full id.
	ID string
	// Running says that it runs (not restarting); Status is the engine's word (running, exited,
	// restarting, created, ...).
	Running bool
	Status  string
	// ExitCode and Error are the engine's account of the last end (for messages).
	ExitCode int
	Error    string
	// restarts is how often the engine restarted it (its restart policy) since its start.
	restarts int
	// InstanceID is its InstanceLabel ("" when it has none: not made by overlay-fleet).
	InstanceID string
	Hostname   string
	// Network is the network IP and MAC are read on: the one asked for, else its only one.
	Network string
	// IP and MAC are its address on Network: the live ones while it runs, the configured ones
	// (the static IP, the MAC it was created with) while it is stopped.
	IP, MAC string
	// Image is the reference it was created from, ImageID the image it runs.
	Image, ImageID string
	// Merged is the source of the bind mount on Target ("" when there is none there).
	Merged, Target string
	Restart        string
	Privileged     bool
	DNS            []string
	// Env are its environment variables that its image does not set (to those values): the
	// ones it was given.
	Env map[string]string

	// env is its whole environment.
	env map[string]string
	// labels are all its labels.
	labels map[string]string
}

// Network is a docker network as the engine reports it.
type Network struct {
	Name string
	// Present says that the engine has a network of that name; the rest is empty when not.
	Present bool
	ID      string
	Driver  string
	// Parent is the macvlan parent interface (the `parent` driver option).
	Parent string
	// Subnet and Gateway are its first IPv4 address pool.
	Subnet, Gateway string
	// Box is its BoxLabel ("" when it has none: not made by overlay-fleet).
	Box string
}

// image is an image as the engine reports it.
type image struct {
	ID  string
	Env map[string]string
}

// View says where to look in a container: the network to read IP and MAC on ("" for its only
// one), the target of the bind mount to read ("" for DefaultTarget, else its only one), and
// environment variables to report even where the image sets them to the same value.
type View struct {
	Network, Target string
	EnvKeys         []string
}

// parseContainer reads `docker container inspect <name>` output (a JSON array of one object)
// as the container name, looking where v says. A container whose name is not name (inspect
// also matches id prefixes) is reported absent.
func parseContainer(data []byte, name string, v View) (Container, error) {
	var list []containerJSON
	if err := json.Unmarshal(data, &list); err != nil {
		return Container{}, fmt.Errorf("cannot read docker inspect of container %s: %w", name, err)
	}
	c := Container{Name: name}
	if len(list) != 1 || strings.TrimPrefix(list[0].Name, "/") != name {
		return c, nil
	}
	j := list[0]
	c.Present, c.ID, c.ImageID, c.restarts = true, j.ID, j.Image, j.RestartCount
	if j.State != nil {
		// A container the engine restarts after it exited (restart policy, in its back-off) is
		// Running and Restarting: it does not run.
		c.Running, c.Status, c.ExitCode, c.Error = j.State.Running && !j.State.Restarting, j.State.Status, j.State.ExitCode, j.State.Error
	}
	var configMAC string
	c.env, c.labels = map[string]string{}, map[string]string{}
	if j.Config != nil {
		c.Hostname, c.Image, configMAC = j.Config.Hostname, j.Config.Image, j.Config.MacAddress
		c.env = envMap(j.Config.Env)
		for k, v := range j.Config.Labels {
			c.labels[k] = v
		}
	}
	c.InstanceID = c.labels[InstanceLabel]
	if h := j.HostConfig; h != nil {
		c.Privileged = h.Privileged
		c.Restart = h.RestartPolicy.Name
		c.DNS = append([]string{}, h.DNS...)
	}
	if c.Restart == "" {
		c.Restart = "no" // engines before 24 leave the default policy empty
	}
	if c.DNS == nil {
		c.DNS = []string{}
	}
	if v.Target != "" {
		c.Merged, c.Target = bindOn(j, v.Target), v.Target
	} else {
		c.Merged, c.Target = bindMount(j)
	}
	if j.NetworkSettings != nil {
		c.Network = v.Network
		if v.Network == "" && len(j.NetworkSettings.Networks) == 1 {
			for n := range j.NetworkSettings.Networks {
				c.Network = n
			}
		}
		if ep := j.NetworkSettings.Networks[c.Network]; ep != nil {
			c.IP, c.MAC = ep.IPAddress, strings.ToLower(ep.MacAddress)
			if c.IP == "" && ep.IPAMConfig != nil {
				c.IP = ep.IPAMConfig.IPv4Address // stopped: the static address it has configured
			}
			if c.MAC == "" && !c.Running {
				c.MAC = containerMAC(configMAC, c.labels[MACLabel])
			}
		} else {
			c.Network = ""
		}
	}
	return c, nil
}

// containerMAC is the MAC of a stopped container, whose endpoint shows none: the container-wide
// one that engines below API 1.44 report, else the one it was created with (MACLabel).
func containerMAC(configMAC, label string) string {
	if configMAC != "" {
		return strings.ToLower(configMAC)
	}
	return label
}

// bindMount is the bind mount of a container: the one on its default target /mnts, else its
// only bind mount; the source as the engine has it.
func bindMount(j containerJSON) (source, target string) {
	type bind struct{ source, target string }
	var binds []bind
	if j.HostConfig != nil {
		for _, m := range j.HostConfig.Mounts {
			if m.Type == "bind" {
				binds = append(binds, bind{m.Source, m.Target})
			}
		}
	}
	if len(binds) == 0 { // made with -v: only the runtime view has it
		for _, m := range j.Mounts {
			if m.Type == "bind" {
				binds = append(binds, bind{m.Source, m.Destination})
			}
		}
	}
	for _, b := range binds {
		if b.target == DefaultTarget {
			return b.source, b.target
		}
	}
	if len(binds) == 1 {
		return binds[0].source, binds[0].target
	}
	return "", ""
}

// bindOn is the source of the container's bind mount on target ("" when there is none).
func bindOn(j containerJSON, target string) string {
	if j.HostConfig != nil {
		for _, m := range j.HostConfig.Mounts {
			if m.Type == "bind" && m.Target == target {
				return m.Source
			}
		}
	}
	for _, m := range j.Mounts {
		if m.Type == "bind" && m.Destination == target {
			return m.Source
		}
	}
	return ""
}

// envMap reads `KEY=value` entries (a later entry of a key wins, as in the kernel's view).
func envMap(list []string) map[string]string {
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// ownEnv is the part of a container's environment its image does not set to the same value.
func ownEnv(container, image map[string]string) map[string]string {
	own := map[string]string{}
	for k, v := range container {
		if iv, ok := image[k]; !ok || iv != v {
			own[k] = v
		}
	}
	return own
}

// parseNetwork reads `docker network inspect <name>` output as the network name. A network
// whose name is not name (inspect also matches id prefixes) is reported absent.
func parseNetwork(data []byte, name string) (Network, error) {
	var list []networkJSON
	if err := json.Unmarshal(data, &list); err != nil {
		return Network{}, fmt.Errorf("cannot read docker network inspect of %s: %w", name, err)
	}
	n := Network{Name: name}
	var j *networkJSON
	for i := range list {
		if list[i].Name == name {
			j = &list[i]
		}
	}
	if j == nil {
		return n, nil
	}
	n.Present, n.ID, n.Driver = true, j.ID, j.Driver
	n.Parent = j.Options["parent"]
	n.Box = j.Labels[BoxLabel]
	for _, c := range j.IPAM.Config {
		// IPv4 only: an engine may add an IPv6 pool to a network.
		if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Addr().Is4() {
			n.Subnet, n.Gateway = c.Subnet, c.Gateway
			break
		}
	}
	return n, nil
}

// parseImage reads `docker image inspect <ref>` output.
func parseImage(data []byte, ref string) (image, error) {
	var list []imageJSON
	if err := json.Unmarshal(data, &list); err != nil || len(list) != 1 {
		if err == nil {
			err = fmt.Errorf("%d images in the answer", len(list))
		}
		return image{}, fmt.Errorf("cannot read docker image inspect of %s: %w", ref, err)
	}
	img := image{ID: list[0].ID, Env: map[string]string{}}
	if list[0].Config != nil {
		img.Env = envMap(list[0].Config.Env)
	}
	return img, nil
}

// user is a container on a network, as `docker ps` lists it.
type user struct {
	name, instance string
}

// parseUsers reads `docker ps --format '{{.Names}}\t{{.Label "overlay-fleet.instance"}}'`.
func parseUsers(data []byte) []user {
	var us []user
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, inst, _ := strings.Cut(line, "\t")
		us = append(us, user{name: strings.TrimSpace(name), instance: strings.TrimSpace(inst)})
	}
	sort.Slice(us, func(i, k int) bool { return us[i].name < us[k].name })
	return us
}
