package main

import (
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// inputDiff is the outcome of comparing old and new inputs.
type inputDiff struct {
	Changed  []string                           // top-level keys that differ (sorted)
	Replaces []string                           // the subset that forces a replacement
	Detailed map[string]*pulumirpc.PropertyDiff // property path -> kind
}

// replaceKeys are the inputs whose change replaces the resource (upstream: triggers only).
var replaceKeys = map[string]bool{keyTriggers: true}

// outputOnly are state properties that are not inputs.
var outputOnly = map[string]bool{keyStdout: true, keyStderr: true}

// diffInputs compares inputs. Secrets compare by value; null equals absent; a value that is
// not known yet (preview) counts as changed. ignore lists top-level keys to skip.
func diffInputs(olds, news resource.PropertyMap, ignore []string) inputDiff {
	d := inputDiff{Detailed: map[string]*pulumirpc.PropertyDiff{}}
	skip := map[string]bool{}
	for _, k := range ignore {
		skip[k] = true
	}
	keys := map[string]bool{}
	for k := range olds {
		keys[string(k)] = true
	}
	for k := range news {
		keys[string(k)] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if outputOnly[k] || skip[k] || strings.HasPrefix(k, "__") {
			continue
		}
		o, n := olds[resource.PropertyKey(k)], news[resource.PropertyKey(k)]
		if !n.ContainsUnknowns() && equalValues(o, n) {
			continue
		}
		d.Changed = append(d.Changed, k)
		replace := replaceKeys[k]
		if replace {
			d.Replaces = append(d.Replaces, k)
		}
		addDetail(d.Detailed, resource.PropertyPath{k}, o, n, replace, 1)
	}
	return d
}

// addDetail records the change of one value; it descends `depth` levels into objects and
// arrays that are known on both sides, so `pulumi preview --diff` shows e.g. triggers[1].
func addDetail(out map[string]*pulumirpc.PropertyDiff, path resource.PropertyPath, o, n resource.PropertyValue,
	replace bool, depth int,
) {
	uo, un := unwrap(o), unwrap(n)
	// Secret values (the connection) are reported as a whole.
	if depth > 0 && !un.ContainsUnknowns() && !o.IsSecret() && !n.IsSecret() {
		switch {
		case uo.IsArray() && un.IsArray():
			oa, na := uo.ArrayValue(), un.ArrayValue()
			for i := 0; i < len(oa) || i < len(na); i++ {
				var ov, nv resource.PropertyValue
				if i < len(oa) {
					ov = oa[i]
				}
				if i < len(na) {
					nv = na[i]
				}
				if !equalValues(ov, nv) {
					addDetail(out, append(append(resource.PropertyPath{}, path...), i), ov, nv, replace, depth-1)
				}
			}
			return
		case uo.IsObject() && un.IsObject():
			om, nm := uo.ObjectValue(), un.ObjectValue()
			ks := map[resource.PropertyKey]bool{}
			for k := range om {
				ks[k] = true
			}
			for k := range nm {
				ks[k] = true
			}
			for k := range ks {
				if !equalValues(om[k], nm[k]) {
					addDetail(out, append(append(resource.PropertyPath{}, path...), string(k)), om[k], nm[k], replace, depth-1)
				}
			}
			return
		}
	}
	kind := pulumirpc.PropertyDiff_UPDATE
	switch {
	case uo.IsNull():
		kind = pulumirpc.PropertyDiff_ADD
	case un.IsNull():
		kind = pulumirpc.PropertyDiff_DELETE
	}
	if replace {
		kind = map[pulumirpc.PropertyDiff_Kind]pulumirpc.PropertyDiff_Kind{
			pulumirpc.PropertyDiff_ADD:    pulumirpc.PropertyDiff_ADD_REPLACE,
			pulumirpc.PropertyDiff_DELETE: pulumirpc.PropertyDiff_DELETE_REPLACE,
			pulumirpc.PropertyDiff_UPDATE: pulumirpc.PropertyDiff_UPDATE_REPLACE,
		}[kind]
	}
	out[path.String()] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
}

// equalValues compares two known values, ignoring secretness; null equals a missing value.
func equalValues(a, b resource.PropertyValue) bool {
	a, b = unwrap(a), unwrap(b)
	switch {
	case a.IsNull() || b.IsNull():
		return a.IsNull() && b.IsNull()
	case a.IsArray():
		if !b.IsArray() || len(a.ArrayValue()) != len(b.ArrayValue()) {
			return false
		}
		for i, v := range a.ArrayValue() {
			if !equalValues(v, b.ArrayValue()[i]) {
				return false
			}
		}
		return true
	case a.IsObject():
		if !b.IsObject() {
			return false
		}
		am, bm := a.ObjectValue(), b.ObjectValue()
		for k, v := range am {
			if !equalValues(v, bm[k]) {
				return false
			}
		}
		for k, v := range bm {
			if _, ok := am[k]; !ok && !unwrap(v).IsNull() {
				return false
			}
		}
		return true
	case a.IsComputed() || b.IsComputed() || a.IsOutput() || b.IsOutput():
		return false
	default:
		return a.DeepEquals(b)
	}
}

// oldInputsOf returns the inputs to compare against: the recorded old inputs when the
// engine sends them, else the old state without the output-only properties.
func oldInputsOf(oldInputs, oldState resource.PropertyMap) resource.PropertyMap {
	if len(oldInputs) > 0 {
		return oldInputs
	}
	m := resource.PropertyMap{}
	for k, v := range oldState {
		if !outputOnly[string(k)] {
			m[k] = v
		}
	}
	return m
}
