package docker

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"overlay-fleet/host/agent/internal/down"
)

// Pauses between looks while as many instances as allowed are down: from the first to the last.
const (
	firstDownPause = 50 * time.Millisecond
	lastDownPause  = time.Second
)

// DefaultDownWait is how long a replacement waits for its turn (maxDownPerBox) at most: as long
// as the sh library's slots wait.
const DefaultDownWait = 30 * time.Minute

// inTurn runs try until it has done its work or failed (verdict Go), waiting between tries while
// it answers Wait (try holds the box's docker lock itself: nothing is held while waiting). A
// Refuse, or a wait longer than the engine's DownWait, fails naming instance and why.
func (e *Engine) inTurn(ctx context.Context, t TakeDown, instance string, try func(waited time.Duration) (down.Verdict, string, error)) error {
	wait := e.DownWait
	if wait == 0 {
		wait = DefaultDownWait
	}
	start, pause := time.Now(), firstDownPause
	for {
		v, why, err := try(time.Since(start))
		switch {
		case err != nil:
			return err
		case v == down.Go:
			return nil
		case v == down.Refuse:
			return fmt.Errorf("not taking %s down: %s", instance, why)
		case time.Since(start) >= wait:
			return fmt.Errorf("not taking %s down: waited %s, and %s", instance, wait, why)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not taking %s down: %w (%s)", instance, ctx.Err(), why)
		case <-time.After(pause):
		}
		pause = min(2*pause, lastDownPause)
	}
}

// admitLocked decides, under the box's docker lock (held by the caller, who takes the container
// away under the same hold on Go), whether instance (its merged dir merged, its container
// container) may be taken down now, t.Max instances of the box being down at most, and on Go
// records it as down (a record it had already keeps its time). Records of instances that are no
// longer down are removed first: gone for good (no overlay mounted on their merged dir any more)
// or running again (their container runs: the replacement never took it down, or it was made
// again by other means).
func (e *Engine) admitLocked(ctx context.Context, t TakeDown, instance, merged, container string, waited time.Duration) (down.Verdict, string, error) {
	if e.Down == nil {
		return down.Go, "", nil
	}
	records, err := e.Down.List()
	if err != nil {
		return 0, "", err
	}
	var live []down.Record
	own := down.Record{Instance: instance, Merged: merged, Container: container, Since: time.Now(), Run: t.Run}
	for _, r := range records {
		if r.Instance == instance {
			own.Since = r.Since
			continue
		}
		over, err := e.recordOver(ctx, r)
		if err != nil {
			return 0, "", err
		}
		if over {
			if err := e.Down.Remove(r.Instance); err != nil {
				return 0, "", err
			}
			continue
		}
		live = append(live, r)
	}
	v, why := down.Decide(live, instance, t.Run, t.Max, waited)
	if v == down.Go {
		err = e.Down.Put(own)
	}
	return v, why, err
}

// recordOver says that r's instance is no longer down: its overlay is not mounted any more, or its
// container runs.
func (e *Engine) recordOver(ctx context.Context, r down.Record) (bool, error) {
	mounted, _, err := e.overlayMountedAt(r.Merged)
	if err != nil || !mounted {
		return !mounted, err
	}
	if r.Container == "" {
		return false, nil
	}
	c, err := e.ReadContainer(ctx, r.Container, View{})
	if err != nil {
		return false, err
	}
	return c.Present && c.Running && c.InstanceID == r.Instance, nil
}

// overlayMountedAt says whether an overlay is mounted on dir (its symlinks resolved), and what
// is there otherwise (for messages).
func (e *Engine) overlayMountedAt(dir string) (bool, string, error) {
	if e.MountTable == nil {
		return false, "", fmt.Errorf("no mount table to look at %s with", dir)
	}
	t, err := e.MountTable()
	if err != nil {
		return false, "", err
	}
	at := dir
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		at = real
	}
	m, ok := t.Top(at)
	switch {
	case !ok:
		return false, "nothing", nil
	case m.FSType != "overlay":
		return false, "a " + m.FSType + " filesystem", nil
	}
	return true, "", nil
}

// settle ends the down record of instance after a create: removed when made is nil (its
// container runs), marked failed in run otherwise (its instance stays down).
func (e *Engine) settle(instance, run string, made error) error {
	if e.Down == nil {
		return nil
	}
	r, ok, err := e.Down.Get(instance)
	if err != nil || !ok {
		return err
	}
	if made == nil {
		return e.Down.Remove(instance)
	}
	r.Failed, r.FailedRun = firstLine(made.Error()), run
	return e.Down.Put(r)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
