package layout

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Rel is how one path stands to another.
type Rel int

const (
	// Apart: neither is within the other.
	Apart Rel = iota
	// Same: the same directory.
	Same
	// Inside: the first is below the second.
	Inside
	// Contains: the second is below the first.
	Contains
)

// String is the relation as words between the two paths: "is the same as", "is inside",
// "contains"; "is apart from" for Apart.
func (r Rel) String() string {
	switch r {
	case Same:
		return "is the same as"
	case Inside:
		return "is inside"
	case Contains:
		return "contains"
	}
	return "is apart from"
}

// relNorm is the relation of two paths as written (string tests only).
func relNorm(a, b string) Rel {
	a, b = norm(a), norm(b)
	switch {
	case a == b:
		return Same
	case b == "/" || strings.HasPrefix(a, b+"/"):
		return Inside
	case a == "/" || strings.HasPrefix(b, a+"/"):
		return Contains
	}
	return Apart
}

// Relation is how path a stands to path b: as written, then by inode (another name of the same
// directory), then with the symlinks of both resolved (Canon). A relative path (docker's
// overlay2 writes its layers relative to its own directory) names nothing from here: it is
// compared as written only.
func Relation(a, b string) Rel {
	return (*resolver)(nil).relation(a, b)
}

// SamePath says whether a and b are the same path as written or the same file on disk.
func SamePath(a, b string) bool {
	return norm(a) == norm(b) || (filepath.IsAbs(a) && filepath.IsAbs(b) && (*resolver)(nil).sameFile(a, b))
}

// Canon is p with the symlinks (and `.`, `..`) of its longest existing directory prefix
// resolved and the rest appended: a directory that does not exist yet is placed where it will
// be. A relative p, or one whose prefix cannot be resolved, is returned as written (normalised).
func Canon(p string) string {
	return (*resolver)(nil).canon(p)
}

// resolver answers what Relation, Canon and LowerRelation ask the file system (os.Stat of a
// path, the os.Lstat and os.Readlink of filepath.EvalSymlinks), remembering each answer for the
// operation that made it: Near compares a few dirs with the layers of every overlay mounted, and
// without it every pair would resolve both paths again, component by component. Its answers are
// a snapshot taken during that one call; no resolver outlives it. A nil *resolver remembers
// nothing: every question goes to the file system (os.Stat, filepath.EvalSymlinks).
type resolver struct {
	stats  map[string]statResult // os.Stat
	lstats map[string]statResult // os.Lstat
	links  map[string]linkResult // os.Readlink
	canons map[string]string     // canon

	// fsStat, fsLstat and fsReadlink are os.Stat, os.Lstat and os.Readlink; tests count
	// their calls.
	fsStat, fsLstat func(string) (os.FileInfo, error)
	fsReadlink      func(string) (string, error)
}

type statResult struct {
	fi  os.FileInfo
	err error
}

type linkResult struct {
	target string
	err    error
}

// newResolver is a resolver with an empty memory, for one operation.
func newResolver() *resolver {
	return &resolver{
		stats:      map[string]statResult{},
		lstats:     map[string]statResult{},
		links:      map[string]linkResult{},
		canons:     map[string]string{},
		fsStat:     os.Stat,
		fsLstat:    os.Lstat,
		fsReadlink: os.Readlink,
	}
}

// stat is os.Stat(p), asked once per distinct p.
func (r *resolver) stat(p string) (os.FileInfo, error) {
	if r == nil {
		return os.Stat(p)
	}
	if s, ok := r.stats[p]; ok {
		return s.fi, s.err
	}
	fi, err := r.fsStat(p)
	r.stats[p] = statResult{fi, err}
	return fi, err
}

// lstat is os.Lstat(p), asked once per distinct p.
func (r *resolver) lstat(p string) (os.FileInfo, error) {
	if s, ok := r.lstats[p]; ok {
		return s.fi, s.err
	}
	fi, err := r.fsLstat(p)
	r.lstats[p] = statResult{fi, err}
	return fi, err
}

// readlink is os.Readlink(p), asked once per distinct p.
func (r *resolver) readlink(p string) (string, error) {
	if l, ok := r.links[p]; ok {
		return l.target, l.err
	}
	target, err := r.fsReadlink(p)
	r.links[p] = linkResult{target, err}
	return target, err
}

// evalSymlinks is filepath.EvalSymlinks(p) (see walkSymlinks).
func (r *resolver) evalSymlinks(p string) (string, error) {
	if r == nil {
		return filepath.EvalSymlinks(p)
	}
	return r.walkSymlinks(p)
}

// walkSymlinks is filepath.EvalSymlinks on Unix, the same steps as path/filepath's walkSymlinks
// (Go 1.26), with each Lstat and Readlink of a prefix asked once per resolver: the paths of a
// box's overlays share most of their components.
func (r *resolver) walkSymlinks(path string) (string, error) {
	volLen := 0
	if volLen < len(path) && path[volLen] == '/' {
		volLen++
	}
	vol := path[:volLen]
	dest := vol
	linksWalked := 0
	for start, end := volLen, volLen; start < len(path); start = end {
		for start < len(path) && path[start] == '/' {
			start++
		}
		end = start
		for end < len(path) && path[end] != '/' {
			end++
		}
		// The next path component is in path[start:end].
		if end == start {
			break // no more path components
		} else if path[start:end] == "." {
			continue
		} else if path[start:end] == ".." {
			// Back up to the previous component if possible (volLen includes a leading slash).
			var i int
			for i = len(dest) - 1; i >= volLen; i-- {
				if dest[i] == '/' {
					break
				}
			}
			if i < volLen || dest[i+1:] == ".." {
				// No slash in dest, or it ends in a ".." that had to be kept: keep this one too.
				if len(dest) > volLen {
					dest += "/"
				}
				dest += ".."
			} else {
				dest = dest[:i] // discard everything since the last slash
			}
			continue
		}

		// An ordinary component: add it to the result.
		if len(dest) > 0 && dest[len(dest)-1] != '/' {
			dest += "/"
		}
		dest += path[start:end]
		fi, err := r.lstat(dest)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !fi.Mode().IsDir() && end < len(path) {
				return "", syscall.ENOTDIR
			}
			continue
		}

		// A symlink.
		linksWalked++
		if linksWalked > 255 {
			return "", errors.New("EvalSymlinks: too many links")
		}
		link, err := r.readlink(dest)
		if err != nil {
			return "", err
		}
		path = link + path[end:]
		if len(link) > 0 && link[0] == '/' {
			// to an absolute path
			dest = link[:1]
			end = 1
			vol = link[:1]
			volLen = 1
		} else {
			// to a relative path: it replaces the last component of dest
			var i int
			for i = len(dest) - 1; i >= volLen; i-- {
				if dest[i] == '/' {
					break
				}
			}
			if i < volLen {
				dest = vol
			} else {
				dest = dest[:i]
			}
			end = 0
		}
	}
	return filepath.Clean(dest), nil
}

// relation is Relation.
func (r *resolver) relation(a, b string) Rel {
	if rel := relNorm(a, b); rel != Apart {
		return rel
	}
	if !filepath.IsAbs(a) || !filepath.IsAbs(b) {
		return Apart
	}
	if r.sameFile(a, b) {
		return Same
	}
	ca, cb := r.canon(a), r.canon(b)
	if ca == norm(a) && cb == norm(b) {
		return Apart // both canonical already: the string test was the answer
	}
	return relNorm(ca, cb)
}

// sameFile says whether a and b both exist and are the same file (symlinks followed).
func (r *resolver) sameFile(a, b string) bool {
	fa, err := r.stat(a)
	if err != nil {
		return false
	}
	fb, err := r.stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// canon is Canon, computed once per distinct path (normalised).
func (r *resolver) canon(p string) string {
	p = norm(p)
	if r != nil {
		if c, ok := r.canons[p]; ok {
			return c
		}
	}
	c := r.resolveCanon(p)
	if r != nil {
		r.canons[p] = c
	}
	return c
}

// resolveCanon is Canon of a normalised p.
func (r *resolver) resolveCanon(p string) string {
	if !filepath.IsAbs(p) {
		return p
	}
	dir, rest := p, ""
	for dir != "/" {
		if fi, err := r.stat(dir); err == nil && fi.IsDir() {
			break
		}
		i := strings.LastIndex(dir, "/") // not filepath.Dir: it would clean `..` as a string
		rest = dir[i:] + rest
		dir = dir[:i]
		if dir == "" {
			dir = "/"
		}
	}
	resolved, err := r.evalSymlinks(dir)
	if err != nil {
		return p
	}
	if resolved == "/" && rest != "" {
		return rest
	}
	return resolved + rest
}
