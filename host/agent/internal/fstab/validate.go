package fstab

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unicode"
)

// Length limits of an instance id's parts: the box name as the stack config allows it (at most
// 32), the instance name as docker allows a container name (at most 63).
const (
	maxBoxLength  = 32
	maxNameLength = 63
)

// idPattern is compiled on first use, not at every start of the agent.
var idPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)
})

// ValidateID checks an instance id, `<box>/<name>`: the box of a-z, 0-9 and `-` starting with a
// letter or digit (at most 32), the name of letters, digits, `_`, `.` and `-` starting with a
// letter or digit (at most 63). The error names the value.
func ValidateID(id string) error {
	if !idPattern().MatchString(id) {
		return fmt.Errorf("instance id %q must be <box>/<name>: box of a-z 0-9 - and name of A-Z a-z 0-9 _ . -, each starting with a letter or digit", id)
	}
	box, name, _ := strings.Cut(id, "/")
	if len(box) > maxBoxLength || len(name) > maxNameLength {
		return fmt.Errorf("instance id %q is too long: the box name may have at most %d characters, the instance name at most %d", id, maxBoxLength, maxNameLength)
	}
	return nil
}

// ValidatePath checks a path that goes into an fstab line or names the fstab: absolute, in clean
// form (no `//`, `.` or `..` components, no trailing `/`), without whitespace, control characters
// or `,`. label says what the path is ("merged dir", "fstab"); the error names it and the value.
func ValidatePath(label, path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%s must not be empty", label)
	case !filepath.IsAbs(path):
		return fmt.Errorf("%s %q must be an absolute path", label, path)
	case strings.ContainsFunc(path, isSpaceOrControl):
		return fmt.Errorf("%s %q contains whitespace or control characters", label, path)
	case strings.Contains(path, ","):
		return fmt.Errorf("%s %q contains a comma", label, path)
	case filepath.Clean(path) != path:
		return fmt.Errorf("%s %q is not in clean form (want %q)", label, path, filepath.Clean(path))
	}
	return nil
}

// ValidateOptions checks the options of a managed line as the caller gives them: a non-empty
// comma-separated list without empty options, whitespace or control characters, and without the
// marker option (Set adds it). The error names the value.
func ValidateOptions(options string) error {
	if options == "" {
		return fmt.Errorf("fstab options must not be empty")
	}
	if strings.ContainsFunc(options, isSpaceOrControl) {
		return fmt.Errorf("fstab options %q contain whitespace or control characters", options)
	}
	for _, o := range strings.Split(options, ",") {
		if o == "" {
			return fmt.Errorf("fstab options %q contain an empty option", options)
		}
		if key, _, _ := strings.Cut(o, "="); key == MarkerKey {
			return fmt.Errorf("fstab options %q must not contain the %s marker: it is added to the line, naming the instance", options, MarkerKey)
		}
	}
	return nil
}

func isSpaceOrControl(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r)
}
