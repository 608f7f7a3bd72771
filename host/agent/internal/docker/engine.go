package docker

import (
	"context"
	"fmt"
	"time"

	"overlay-fleet/host/agent/internal/down"
	"overlay-fleet/host/agent/internal/lock"
	"overlay-fleet/host/agent/internal/mountinfo"
)

// LockName is the box lock every change of the box's docker objects holds, from its checks to
// its last docker call: a network is not removed while a container is being made on it, and
// two agents never race on one name. Each docker call has its timeout, so no holder keeps it
// for ever.
const LockName = "docker"

// DefaultLockTimeout is how long a change waits for LockName.
const DefaultLockTimeout = 10 * time.Minute

// DefaultTarget is where a container sees its instance's merged dir unless told otherwise.
const DefaultTarget = "/mnts"

// Engine is the box's Docker engine as the operations use it.
type Engine struct {
	// Docker runs the docker CLI.
	Docker Runner
	// Locks is the directory of the box's locks.
	Locks *lock.Dir
	// LockTimeout is how long to wait for LockName; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// MountTable reads the box's mount table: a container is only started on a merged dir that
	// has an overlay mounted.
	MountTable func() (mountinfo.Table, error)
	// Down holds the box's down records (maxDownPerBox); nil: replacements are not bounded.
	Down *down.Store
	// DownWait is how long a replacement waits for its turn; 0 means DefaultDownWait.
	DownWait time.Duration
}

// TakeDown says how a change may take an instance's container away.
type TakeDown struct {
	// Max is maxDownPerBox (0: not bounded).
	Max int
	// Run names the operation (one provider process) in the down records.
	Run string
	// Replacing says a delete takes the container away to make it again (a Pulumi
	// replacement's delete); otherwise the delete is for good.
	Replacing bool
}

// lock takes the box's docker lock for what (e.g. `container create ttnode1`).
func (e *Engine) lock(ctx context.Context, what string) (*lock.Lock, error) {
	if e.Locks == nil {
		return nil, fmt.Errorf("%s: no lock directory", what)
	}
	timeout := e.LockTimeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	l, err := e.Locks.Lock(ctx, LockName, timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return l, nil
}

// query and change run one docker call of that kind.
func (e *Engine) query(ctx context.Context, args ...string) ([]byte, error) {
	return e.Docker.Run(ctx, Query, args...)
}

func (e *Engine) change(ctx context.Context, args ...string) ([]byte, error) {
	return e.Docker.Run(ctx, Change, args...)
}
