package fstab

import "strings"

// Unescape undoes the octal escapes of an fstab field (fstab(5): `\040` for a space, `\011` for
// a tab, `\012` for a newline, `\134` for a backslash; libmount decodes any `\` followed by three
// octal digits). A backslash that does not start such an escape is kept as it is.
func Unescape(field string) string {
	if !strings.Contains(field, `\`) {
		return field
	}
	var b strings.Builder
	b.Grow(len(field))
	for i := 0; i < len(field); i++ {
		if v, ok := octalAt(field, i); ok {
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(field[i])
	}
	return b.String()
}

// octalAt reports whether s holds an escape `\ooo` of a byte value at i, and that value.
func octalAt(s string, i int) (byte, bool) {
	if i+3 >= len(s) || s[i] != '\\' {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i+1 : i+4]) {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 0xff {
		return 0, false
	}
	return byte(v), true
}

// Escape encodes a value for one fstab field: the characters that would end the field or the
// line (space, tab, newline) and the backslash itself become octal escapes.
func Escape(value string) string {
	if !strings.ContainsAny(value, " \t\n\\") {
		return value
	}
	var b strings.Builder
	b.Grow(len(value) + 8)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case ' ':
			b.WriteString(`\040`)
		case '\t':
			b.WriteString(`\011`)
		case '\n':
			b.WriteString(`\012`)
		case '\\':
			b.WriteString(`\134`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
