package docker

import (
	"context"
	"fmt"
	"strings"
)

// NetworkSpec is the macvlan network of a box as planned.
type NetworkSpec struct {
	Name, Parent, Subnet, Gateway string
	// Box is the box it belongs to: its BoxLabel.
	Box string
}

// describe is the network's settings in words, for messages.
func (s NetworkSpec) describe() string {
	return fmt.Sprintf("macvlan on %s, %s via %s", s.Parent, s.Subnet, s.Gateway)
}

func (n Network) describe() string {
	return fmt.Sprintf("%s on %s, %s via %s", orNone(n.Driver), orNone(n.Parent), orNone(n.Subnet), orNone(n.Gateway))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// matches says that n is the planned network s (driver, parent, addresses; not the label).
func (n Network) matches(s NetworkSpec) bool {
	return n.Present && n.Driver == "macvlan" && n.Parent == s.Parent && n.Subnet == s.Subnet && n.Gateway == s.Gateway
}

// ReadNetwork reports the network of that name (Present false when there is none).
func (e *Engine) ReadNetwork(ctx context.Context, name string) (Network, error) {
	out, err := e.query(ctx, "network", "inspect", name)
	if IsNotFound(err) {
		return Network{Name: name}, nil
	}
	if err != nil {
		return Network{}, err
	}
	return parseNetwork(out, name)
}

// CreateNetwork makes the box's macvlan network as planned, labelled with the box; one that is
// already there as planned is kept. A network of that name that overlay-fleet did not make for
// the box, or that is otherwise than planned, is refused, naming both (nothing is changed).
func (e *Engine) CreateNetwork(ctx context.Context, s NetworkSpec) (Network, error) {
	l, err := e.lock(ctx, "network create "+s.Name)
	if err != nil {
		return Network{}, err
	}
	defer l.Unlock()
	n, err := e.ReadNetwork(ctx, s.Name)
	if err != nil {
		return Network{}, err
	}
	if n.Present {
		switch {
		case n.Box != s.Box:
			return Network{}, fmt.Errorf("a docker network named %s exists that overlay-fleet did not create for box %s (%s; label %s=%q): remove it or choose another network name; nothing was changed",
				s.Name, s.Box, n.describe(), BoxLabel, n.Box)
		case !n.matches(s):
			return Network{}, fmt.Errorf("docker network %s of box %s is %s, the plan wants %s: it must be deleted first (its containers with it); nothing was changed",
				s.Name, s.Box, n.describe(), s.describe())
		}
		return n, nil
	}
	if _, err := e.change(ctx, "network", "create", "--driver", "macvlan", "--opt", "parent="+s.Parent,
		"--subnet", s.Subnet, "--gateway", s.Gateway, "--label", BoxLabel+"="+s.Box, s.Name); err != nil {
		return Network{}, fmt.Errorf("cannot create docker network %s (%s): %w", s.Name, s.describe(), err)
	}
	n, err = e.ReadNetwork(ctx, s.Name)
	if err != nil {
		return Network{}, fmt.Errorf("docker network %s was created, but: %w", s.Name, err)
	}
	if !n.matches(s) || n.Box != s.Box {
		why := fmt.Sprintf("docker network %s was created as %s (label %q), the plan wants %s (label %q)", s.Name, n.describe(), n.Box, s.describe(), s.Box)
		if n.Present {
			if _, err := e.change(ctx, "network", "rm", n.ID); err != nil {
				return Network{}, fmt.Errorf("%s, and removing it again failed: %w", why, err)
			}
			return Network{}, fmt.Errorf("%s (removed again)", why)
		}
		return Network{}, fmt.Errorf("%s", why)
	}
	return n, nil
}

// DeleteNetwork removes the box's network of that name; one already gone is fine. A network
// that overlay-fleet did not make for box is refused, and so is one that a container still
// uses (naming the containers, and saying which were not made by overlay-fleet for box).
func (e *Engine) DeleteNetwork(ctx context.Context, name, box string) (Network, error) {
	l, err := e.lock(ctx, "network delete "+name)
	if err != nil {
		return Network{}, err
	}
	defer l.Unlock()
	n, err := e.ReadNetwork(ctx, name)
	if err != nil || !n.Present {
		return n, err
	}
	if n.Box != box {
		return Network{}, fmt.Errorf("docker network %s was not created by overlay-fleet for box %s (label %s=%q): left alone",
			name, box, BoxLabel, n.Box)
	}
	// By full id: a name would also match as an id prefix. Stopped containers too (-a).
	out, err := e.query(ctx, "ps", "-a", "--no-trunc", "--filter", "network="+n.ID,
		"--format", `{{.Names}}	{{.Label "`+InstanceLabel+`"}}`)
	if err != nil {
		return Network{}, fmt.Errorf("cannot list the containers on docker network %s: %w", name, err)
	}
	var foreign, ours []string
	for _, u := range parseUsers(out) {
		if strings.HasPrefix(u.instance, box+"/") {
			ours = append(ours, u.name)
		} else {
			foreign = append(foreign, u.name)
		}
	}
	if len(foreign) > 0 {
		return Network{}, fmt.Errorf("docker network %s is used by containers overlay-fleet did not create for box %s: %s; nothing was changed (remove them or move them to another network)",
			name, box, strings.Join(foreign, ", "))
	}
	if len(ours) > 0 {
		return Network{}, fmt.Errorf("docker network %s is still used by containers of box %s: %s; delete them first; nothing was changed",
			name, box, strings.Join(ours, ", "))
	}
	if _, err := e.change(ctx, "network", "rm", n.ID); err != nil && !IsNotFound(err) {
		return Network{}, fmt.Errorf("cannot remove docker network %s: %w", name, err)
	}
	n, err = e.ReadNetwork(ctx, name)
	if err != nil {
		return Network{}, err
	}
	if n.Present {
		return Network{}, fmt.Errorf("docker network %s is still there after docker network rm", name)
	}
	return n, nil
}
