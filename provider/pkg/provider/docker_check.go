package provider

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// The checks of the docker resources' inputs: the same rules as the box agent's (which checks
// again), so a bad value fails `pulumi preview` naming the property.

// Labels the box agent puts on what it makes (model/constants.ts).
const (
	instanceLabel = "overlay-fleet.instance"
	boxLabel      = "overlay-fleet.box"
)

var (
	dockerNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	hostLabelPattern  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	macPattern        = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	imagePattern      = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	imageIDPattern    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	boxNamePattern    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	ifacePattern      = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	envKeyPattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	instanceIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}/[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
)

// restartPolicies are the restart policies a container may have.
var restartPolicies = []string{"always", "unless-stopped", "on-failure", "no"}

// checks collects the failures of one resource's inputs; values still unknown (in a preview)
// are left to the next check.
type checks struct {
	inputs   property.Map
	failures []p.CheckFailure
}

func (c *checks) known(key string) bool {
	v, ok := c.inputs.GetOk(key)
	return !ok || !v.HasComputed()
}

// fail records a failure of prop when prop is known.
func (c *checks) fail(prop, format string, args ...any) {
	if c.known(prop) {
		c.failures = append(c.failures, p.CheckFailure{Property: prop, Reason: fmt.Sprintf(format, args...)})
	}
}

// check runs problem on a known property and records what it says.
func (c *checks) check(prop string, problem string) {
	if problem != "" {
		c.fail(prop, "%s", problem)
	}
}

func dockerNameProblem(what, name string) string {
	if !dockerNamePattern.MatchString(name) {
		return fmt.Sprintf("%q is not a valid docker %s name (A-Z a-z 0-9 _ . -, starting with a letter or digit, at most 63)", name, what)
	}
	return ""
}

func hostnameProblem(h string) string {
	ok := h != "" && len(h) <= 63
	for _, l := range strings.Split(h, ".") {
		ok = ok && hostLabelPattern.MatchString(l)
	}
	if !ok {
		return fmt.Sprintf("%q is not a valid host name (labels of letters, digits and -, not starting or ending with -, at most 63 characters)", h)
	}
	return ""
}

func ipv4Problem(s string) string {
	if a, err := netip.ParseAddr(s); err != nil || !a.Is4() || a.String() != s {
		return fmt.Sprintf("%q is not an IPv4 address like 192.168.1.10", s)
	}
	return ""
}

func macProblem(mac string) string {
	switch {
	case !macPattern.MatchString(mac):
		return fmt.Sprintf("%q is not a MAC address in lower-case colon form like 02:42:c0:a8:01:c9", mac)
	case mac == "00:00:00:00:00:00":
		return fmt.Sprintf("%q is the all-zero MAC", mac)
	case strings.IndexByte("13579bdf", mac[1]) >= 0:
		return fmt.Sprintf("%q is a multicast MAC (lowest bit of the first octet set); a container needs a unicast MAC", mac)
	}
	return ""
}

func imageProblem(ref string) string {
	if !imagePattern.MatchString(ref) {
		return fmt.Sprintf("%q is not a docker image reference", ref)
	}
	return ""
}

func instanceIDProblem(id string) string {
	if !instanceIDPattern.MatchString(id) {
		return fmt.Sprintf("%q is not of the form <box>/<name> (box of a-z 0-9 -, name of A-Z a-z 0-9 _ . -)", id)
	}
	return ""
}

// bindPathProblem checks a path of a container's bind mount: absolute, clean, and fit for
// docker's --mount (no blanks, commas or quotes).
func bindPathProblem(path string) string {
	if !isAbsPath(path) || path == "/" || strings.ContainsAny(path, `,"'`) || cleanPath(path) != path {
		return fmt.Sprintf("%q is not an absolute path in clean form without blanks, commas or quotes (and not /)", path)
	}
	return ""
}

// cleanPath is path with `//`, `/./`, `/../` and a trailing `/` resolved, as filepath.Clean.
func cleanPath(path string) string {
	var parts []string
	for _, p := range strings.Split(path, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, p)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// subnetProblems checks an IPv4 subnet with host bits zero and its gateway, a host address in it.
func subnetProblems(c *checks, subnet, gateway string) {
	pfx, err := netip.ParsePrefix(subnet)
	if err != nil || !pfx.Addr().Is4() || pfx.String() != subnet || pfx.Bits() < 8 || pfx.Bits() > 30 || pfx.Masked() != pfx {
		c.fail("subnet", "%q is not an IPv4 subnet like 192.168.1.0/24 (prefix 8..30, host bits zero)", subnet)
		pfx = netip.Prefix{}
	}
	if problem := ipv4Problem(gateway); problem != "" {
		c.fail("gateway", "%s", problem)
		return
	}
	if !pfx.IsValid() || !c.known("subnet") {
		return
	}
	g := netip.MustParseAddr(gateway)
	last := pfx.Addr().As4()
	host := uint32(1)<<(32-pfx.Bits()) - 1
	for i := range 4 {
		last[3-i] |= byte(host >> (8 * i))
	}
	switch {
	case !pfx.Contains(g):
		c.fail("gateway", "%q is outside the subnet %q", gateway, subnet)
	case g == pfx.Addr() || g == netip.AddrFrom4(last):
		c.fail("gateway", "%q is the network or broadcast address of %q", gateway, subnet)
	}
}

func restartProblem(policy string) string {
	if !slices.Contains(restartPolicies, policy) {
		return fmt.Sprintf("%q is not a restart policy (%s)", policy, strings.Join(restartPolicies, ", "))
	}
	return ""
}
