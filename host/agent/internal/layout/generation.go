package layout

import (
	"path/filepath"
	"strings"
)

// GenerationSuffix joins a lower and a generation number: generation N > 1 of lower L is the
// sibling directory `L.g<N>` (model/constants.ts generationSuffix). A generation being built is
// `L.g<N>.partial` with the work dir `L.g<N>.work`.
const GenerationSuffix = ".g"

// LowerRelation is how path p stands to a lower dir and its family of generations: the lower
// itself (L or L.g<N>), its base L, and every L.g<N>, L.g<N>.partial and L.g<N>.work beside it.
// It returns the relation and the member p touches (lower when p is apart from all of them).
func LowerRelation(p, lower string) (Rel, string) {
	return (*resolver)(nil).lowerRelation(p, lower)
}

// lowerRelation is LowerRelation.
func (r *resolver) lowerRelation(p, lower string) (Rel, string) {
	if rel := r.relation(p, lower); rel != Apart {
		return rel, lower
	}
	base := generationBase(norm(lower))
	if base != norm(lower) {
		if rel := r.relation(p, base); rel != Apart {
			return rel, base
		}
	}
	// A generation sibling: p is one or inside one (containing one means containing L too).
	for _, cand := range []string{norm(p), r.canon(p)} {
		rest, ok := strings.CutPrefix(cand, base+GenerationSuffix)
		if !ok {
			continue
		}
		gen, _, _ := strings.Cut(rest, "/")
		n := strings.TrimSuffix(strings.TrimSuffix(gen, ".partial"), ".work")
		if n == "" || strings.Trim(n, "0123456789") != "" {
			continue
		}
		hit := base + GenerationSuffix + gen
		if cand == hit {
			return Same, hit
		}
		return Inside, hit
	}
	return Apart, lower
}

// generationBase is L for a lower L.g<N>, else the lower itself.
func generationBase(lower string) string {
	name := filepath.Base(lower)
	i := strings.LastIndex(name, GenerationSuffix)
	if i <= 0 {
		return lower
	}
	n := name[i+len(GenerationSuffix):]
	if n == "" || strings.Trim(n, "0123456789") != "" {
		return lower
	}
	return strings.TrimSuffix(lower, name[i:])
}
