package layout

import (
	"os"
	"path/filepath"
	"strings"
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
	if r := relNorm(a, b); r != Apart {
		return r
	}
	if !filepath.IsAbs(a) || !filepath.IsAbs(b) {
		return Apart
	}
	if sameFile(a, b) {
		return Same
	}
	ca, cb := Canon(a), Canon(b)
	if ca == norm(a) && cb == norm(b) {
		return Apart // both canonical already: the string test was the answer
	}
	return relNorm(ca, cb)
}

// SamePath says whether a and b are the same path as written or the same file on disk.
func SamePath(a, b string) bool {
	return norm(a) == norm(b) || (filepath.IsAbs(a) && filepath.IsAbs(b) && sameFile(a, b))
}

// sameFile says whether a and b both exist and are the same file (symlinks followed).
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// Canon is p with the symlinks (and `.`, `..`) of its longest existing directory prefix
// resolved and the rest appended: a directory that does not exist yet is placed where it will
// be. A relative p, or one whose prefix cannot be resolved, is returned as written (normalised).
func Canon(p string) string {
	p = norm(p)
	if !filepath.IsAbs(p) {
		return p
	}
	dir, rest := p, ""
	for dir != "/" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			break
		}
		i := strings.LastIndex(dir, "/") // not filepath.Dir: it would clean `..` as a string
		rest = dir[i:] + rest
		dir = dir[:i]
		if dir == "" {
			dir = "/"
		}
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return p
	}
	if resolved == "/" && rest != "" {
		return rest
	}
	return resolved + rest
}
