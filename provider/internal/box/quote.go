package box

import "strings"

// Quote joins argv into one command line for the remote login shell, which is what an SSH
// "exec" request carries. Every argument not made only of characters that are safe unquoted
// goes in single quotes (a single quote inside is closed, escaped with a backslash and
// reopened), so no argument can be split, globbed, expanded or turned into a second command.
func Quote(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = quoteArg(a)
	}
	return strings.Join(quoted, " ")
}

func quoteArg(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// unsafeRune reports whether r needs quoting: anything outside a small set that no POSIX
// shell treats specially inside a word. '=' and '~' are quoted too, so an argument can never
// be read as an assignment or a home directory.
func unsafeRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	switch r {
	case '-', '_', '.', '/', ',', ':', '@', '%', '+':
		return false
	}
	return true
}
