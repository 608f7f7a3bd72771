package docker

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
)

// Labels overlay-fleet puts on what it makes (model/constants.ts).
const (
	// InstanceLabel marks a container with its instance id, `<box>/<name>`.
	InstanceLabel = "overlay-fleet.instance"
	// BoxLabel marks a macvlan network with its box.
	BoxLabel = "overlay-fleet.box"
	// MACLabel records the MAC a container was created with (and verified to have): engines from
	// API 1.44 show no MAC for a stopped container, so a stopped one still reports its own.
	MACLabel = "overlay-fleet.mac"
)

// RestartPolicies are the restart policies a container may have.
var RestartPolicies = []string{"no", "always", "unless-stopped", "on-failure"}

// The patterns of the checks, compiled on first use: a subcommand that checks no docker value
// (fstab-entry, overlay-mount) does not pay for them at every start.
var (
	namePattern      = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	hostLabelPattern = lazyRegexp(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	macPattern       = lazyRegexp(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	imagePattern     = lazyRegexp(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	imageIDPattern   = lazyRegexp(`^sha256:[0-9a-f]{64}$`)
	boxPattern       = lazyRegexp(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	ifacePattern     = lazyRegexp(`^[A-Za-z0-9_.-]{1,15}$`)
	envKeyPattern    = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// lazyRegexp is the regexp of expr, compiled once, when first asked for.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// ValidateName checks a docker object name (container, network); label says which.
func ValidateName(label, name string) error {
	if !namePattern().MatchString(name) {
		return fmt.Errorf("%s %q is not a valid docker name (A-Z a-z 0-9 _ . -, starting with a letter or digit, at most 63)", label, name)
	}
	return nil
}

// ValidateHostname checks a container's host name: labels of letters, digits and `-` (not at
// either end), separated by `.`, at most 63 characters in all.
func ValidateHostname(h string) error {
	ok := h != "" && len(h) <= 63
	for _, l := range strings.Split(h, ".") {
		ok = ok && hostLabelPattern().MatchString(l)
	}
	if !ok {
		return fmt.Errorf("hostname %q must be labels of A-Z a-z 0-9 - (not starting or ending with -) separated by '.', at most 63 characters", h)
	}
	return nil
}

// ValidateIPv4 checks a dotted IPv4 address in canonical form; label says what it is.
func ValidateIPv4(label, s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.String() != s {
		return fmt.Errorf("%s %q is not an IPv4 address like 192.168.1.10", label, s)
	}
	return nil
}

// ValidateMAC checks a container MAC: six lower-case hex pairs separated by `:`, unicast, not
// all zero.
func ValidateMAC(mac string) error {
	switch {
	case !macPattern().MatchString(mac):
		return fmt.Errorf("MAC address %q must be six lower-case hex pairs separated by ':' (like 02:42:c0:a8:01:c9)", mac)
	case mac == "00:00:00:00:00:00":
		return fmt.Errorf("MAC address %q is the all-zero MAC", mac)
	case strings.IndexByte("13579bdf", mac[1]) >= 0:
		return fmt.Errorf("MAC address %q is a multicast MAC (lowest bit of the first octet set); a container needs a unicast MAC", mac)
	}
	return nil
}

// ValidateImage checks an image reference.
func ValidateImage(ref string) error {
	if !imagePattern().MatchString(ref) {
		return fmt.Errorf("image %q is not a docker image reference", ref)
	}
	return nil
}

// ValidateImageID checks an image id, `sha256:<64 hex>`.
func ValidateImageID(id string) error {
	if !imageIDPattern().MatchString(id) {
		return fmt.Errorf("image id %q is not sha256:<64 lower-case hex digits>", id)
	}
	return nil
}

// ValidateBox checks a box name.
func ValidateBox(box string) error {
	if !boxPattern().MatchString(box) {
		return fmt.Errorf("box name %q must use only a-z 0-9 - (starting and ending with a letter or digit, at most 32)", box)
	}
	return nil
}

// ValidateParent checks a macvlan parent interface name.
func ValidateParent(parent string) error {
	if !ifacePattern().MatchString(parent) {
		return fmt.Errorf("parent interface %q is not a network interface name (A-Z a-z 0-9 _ . -, at most 15)", parent)
	}
	return nil
}

// ValidateSubnet checks an IPv4 subnet in CIDR form with its host bits zero (prefix 8 to 30)
// and a gateway that is a host address in it.
func ValidateSubnet(subnet, gateway string) error {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.String() != subnet || p.Bits() < 8 || p.Bits() > 30 || p.Masked() != p {
		return fmt.Errorf("subnet %q is not an IPv4 subnet like 192.168.1.0/24 (prefix 8..30, host bits zero)", subnet)
	}
	if err := ValidateIPv4("gateway", gateway); err != nil {
		return err
	}
	g := netip.MustParseAddr(gateway)
	if !p.Contains(g) {
		return fmt.Errorf("gateway %q is outside the subnet %q", gateway, subnet)
	}
	if g == p.Addr() || g == broadcast(p) {
		return fmt.Errorf("gateway %q is the network or broadcast address of %q", gateway, subnet)
	}
	return nil
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= (1 << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// ValidateRestart checks a restart policy.
func ValidateRestart(policy string) error {
	for _, p := range RestartPolicies {
		if policy == p {
			return nil
		}
	}
	return fmt.Errorf("restart policy %q must be one of %s", policy, strings.Join(RestartPolicies, ", "))
}

// ValidateEnv checks an environment variable of a container.
func ValidateEnv(key, value string) error {
	if !envKeyPattern().MatchString(key) {
		return fmt.Errorf("environment variable name %q must be letters, digits and _, not starting with a digit", key)
	}
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("environment variable %s has a NUL character in its value", key)
	}
	return nil
}
