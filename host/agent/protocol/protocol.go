// Package protocol is the wire format between the overlay-fleet provider and the box agent
// (overlay-fleet-host): for each subcommand, the JSON object the agent reads on stdin and the
// one it writes on stdout. The agent decodes requests and encodes answers with these types, the
// provider (module overlay-fleet/provider, through a replace directive) encodes requests and
// decodes answers with them, so the two sides cannot drift apart.
//
// It owns the field names and what a field being absent means, nothing else: the checks of the
// values are the agent's, the provider's resource inputs and outputs (with their docs) are the
// provider's. Requests leave out empty fields (the agent reads an absent field as empty).
// Answers always carry every field; decoding one that lacks its presence field (`present`,
// `mounted`) is an error, so an answer that does not say whether the object exists is never
// read as "it does not".
//
// Standard library only, like the agent.
package protocol

import (
	"encoding/json"
	"fmt"
)

// The agent's subcommands: `overlay-fleet-host <command> <action>`.
const (
	FstabEntryCommand   = "fstab-entry"
	OverlayMountCommand = "overlay-mount"
	NetworkCommand      = "network"
	ContainerCommand    = "container"
)

// FstabEntryRequest is the request of `fstab-entry read|create|update|delete`. read and delete
// use only FSTab and ID.
type FstabEntryRequest struct {
	// FSTab is the fstab file, e.g. /etc/fstab.
	FSTab string `json:"fstab"`
	// ID is the instance id, `<box>/<name>`.
	ID string `json:"id"`
	// Merged is the overlay's mount point.
	Merged string `json:"merged,omitempty"`
	// Options are the mount options of the line, without the marker.
	Options string `json:"options,omitempty"`
}

// FstabEntryAnswer is the answer of every fstab-entry action: the instance's line as the file
// has it after the action.
type FstabEntryAnswer struct {
	FSTab string `json:"fstab"`
	ID    string `json:"id"`
	// Present says that the file has a managed line of the instance; the fields below are
	// empty when it has none.
	Present bool `json:"present"`
	// Merged is the line's mount point, decoded.
	Merged string `json:"merged"`
	// Options are the line's mount options, decoded, without the marker.
	Options string `json:"options"`
	// Line is the whole line as in the file.
	Line string `json:"line"`
}

// UnmarshalJSON decodes an answer that has a "present" field.
func (a *FstabEntryAnswer) UnmarshalJSON(data []byte) error {
	type plain FstabEntryAnswer
	return decodeWith(data, (*plain)(a), "present")
}

// OverlayMountRequest is the request of `overlay-mount read|create|update|delete`. create and
// update need every field but Purge and Container; read needs Merged alone (the others, when
// given, are what the mount is compared with); delete needs Merged, and Upper and Work to purge.
type OverlayMountRequest struct {
	// Merged is the mount point; it identifies the instance's mount.
	Merged string `json:"merged"`
	// Lower is the lower dir; Upper and Work are the instance's own dirs.
	Lower string `json:"lower,omitempty"`
	Upper string `json:"upper,omitempty"`
	Work  string `json:"work,omitempty"`
	// Options are the mount options: the pinned ones and any extra (overlay options such as
	// xino=, uuid=, volatile; flags such as ro, noatime, nodev); "" means the pinned ones.
	Options string `json:"options,omitempty"`
	// Purge (delete only) removes the upper and work dirs after the unmount.
	Purge bool `json:"purge,omitempty"`
	// Container (create and update only) is the instance's docker container, by name: when the
	// overlay must be remounted, it is stopped before the unmount and started again after the
	// mount, if it runs (it holds the merged dir in its own mount namespace). It must carry the
	// overlay-fleet.instance label and bind the merged dir; another container is refused, never
	// touched.
	Container string `json:"container,omitempty"`
}

// OverlayMountAnswer is the answer of every overlay-mount action: what is mounted on the
// merged dir after the action, read from /proc/self/mountinfo.
type OverlayMountAnswer struct {
	Merged string `json:"merged"`
	// Mounted says that an overlay is mounted on Merged; the fields below are empty when not.
	Mounted bool `json:"mounted"`
	// Lower, Upper and Work are its layers: as the request wrote them where they are the same
	// directories, as the kernel shows them where they differ or the request has none.
	Lower string `json:"lower"`
	Upper string `json:"upper"`
	Work  string `json:"work"`
	// Options are the request's options when the kernel has them in effect; else the options
	// it has in effect, in the same words (the pinned keys first).
	Options string `json:"options"`
}

// UnmarshalJSON decodes an answer that has a "mounted" field.
func (a *OverlayMountAnswer) UnmarshalJSON(data []byte) error {
	type plain OverlayMountAnswer
	return decodeWith(data, (*plain)(a), "mounted")
}

// NetworkRequest is the request of `network read|create|delete`. read uses only Name; delete
// Name and Box; create every field.
type NetworkRequest struct {
	// Name is the docker network's name.
	Name string `json:"name"`
	// Parent is the macvlan parent interface, e.g. eth0.
	Parent string `json:"parent,omitempty"`
	// Subnet is its IPv4 subnet in CIDR form, Gateway the LAN's gateway in it.
	Subnet  string `json:"subnet,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// Box is the box it belongs to (label overlay-fleet.box=<box>).
	Box string `json:"box,omitempty"`
}

// NetworkAnswer is the answer of every network action: the network of that name as `docker
// network inspect` reports it after the action.
type NetworkAnswer struct {
	Name string `json:"name"`
	// ID is the network's full id.
	ID string `json:"id"`
	// Present says that the engine has a network of that name; the fields below are empty
	// when not.
	Present bool   `json:"present"`
	Driver  string `json:"driver"`
	Parent  string `json:"parent"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	// Box is its overlay-fleet.box label ("" for a network overlay-fleet did not make).
	Box string `json:"box"`
}

// UnmarshalJSON decodes an answer that has a "present" field.
func (a *NetworkAnswer) UnmarshalJSON(data []byte) error {
	type plain NetworkAnswer
	return decodeWith(data, (*plain)(a), "present")
}

// ContainerRequest is the request of `container read|create|update|delete`. read uses Name
// (and, when given, Network and Target: where to read IP, MAC and the bind mount, and the names
// in Env: variables to report even where the image sets the same value); delete Name and
// InstanceID; create and update every field but the optional ones.
type ContainerRequest struct {
	// Name is the container's name.
	Name string `json:"name"`
	// InstanceID is its instance, `<box>/<name>` (label overlay-fleet.instance).
	InstanceID string `json:"instanceId,omitempty"`
	// Hostname, Network, IP and MAC are its identity on the macvlan network.
	Hostname string `json:"hostname,omitempty"`
	Network  string `json:"network,omitempty"`
	IP       string `json:"ip,omitempty"`
	MAC      string `json:"mac,omitempty"`
	// Image is the image reference to run (it must be on the box); ImageID, optional, the id
	// it must have.
	Image   string `json:"image,omitempty"`
	ImageID string `json:"imageId,omitempty"`
	// Merged is the instance's merged dir (its overlay must be mounted), bind-mounted on
	// Target (default /mnts).
	Merged string `json:"merged,omitempty"`
	Target string `json:"target,omitempty"`
	// Restart is the restart policy (default always).
	Restart    string            `json:"restart,omitempty"`
	Privileged bool              `json:"privileged,omitempty"`
	DNS        []string          `json:"dns,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	// MaxDown is maxDownPerBox: a change that takes the instance's container away to make it
	// again (a replacement) waits while that many other instances of the box are down, and is
	// refused once a replacement failed in this run (0: not bounded).
	MaxDown int `json:"maxDown,omitempty"`
	// Run names the operation (one provider process: one `pulumi up`) in the box's down records.
	Run string `json:"run,omitempty"`
	// Replacing says a delete takes the container away to make it again; otherwise it is for good.
	Replacing bool `json:"replacing,omitempty"`
}

// ContainerAnswer is the answer of every container action: the container of that name as
// `docker inspect` reports it after the action.
type ContainerAnswer struct {
	Name string `json:"name"`
	// ID is the container's full id.
	ID string `json:"id"`
	// Present says that the engine has a container of that name; the fields below are empty
	// when not.
	Present bool `json:"present"`
	Running bool `json:"running"`
	// Status is the engine's word for its state: running, exited, created, restarting, ...
	Status string `json:"status"`
	// InstanceID is its overlay-fleet.instance label ("" for one overlay-fleet did not make).
	InstanceID string `json:"instanceId"`
	Hostname   string `json:"hostname"`
	// Network is the network IP and MAC are read on; IP and MAC the live ones while it runs,
	// the configured ones while it is stopped.
	Network string `json:"network"`
	IP      string `json:"ip"`
	MAC     string `json:"mac"`
	// Image is the reference it was made from, ImageID the image it runs.
	Image   string `json:"image"`
	ImageID string `json:"imageId"`
	// Merged is the source of its bind mount on Target.
	Merged     string `json:"merged"`
	Target     string `json:"target"`
	Restart    string `json:"restart"`
	Privileged bool   `json:"privileged"`
	// DNS are its DNS servers ([] for none).
	DNS []string `json:"dns"`
	// Env are its environment variables beyond its image's ({} for none).
	Env map[string]string `json:"env"`
}

// UnmarshalJSON decodes an answer that has a "present" field.
func (a *ContainerAnswer) UnmarshalJSON(data []byte) error {
	type plain ContainerAnswer
	return decodeWith(data, (*plain)(a), "present")
}

// decodeWith decodes the JSON object data into v (a type without an UnmarshalJSON of its own)
// after checking that it has the field key.
func decodeWith(data []byte, v any, key string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	if raw, ok := fields[key]; !ok || string(raw) == "null" {
		return fmt.Errorf("no %q field", key)
	}
	return json.Unmarshal(data, v)
}
