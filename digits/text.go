package digits

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text from a store (info.json "name" and "note", master.json "msg", server
// messages) is shown in models.tsv, `modelstorefs ls`, welcome.txt and
// error.txt. It must never reach a terminal or a table as control
// characters: NUL makes grep call the file binary, ESC sequences move the
// cursor or set the terminal title. These two functions are the one place
// that makes it harmless.

// CleanLine returns s as one table cell or line: tabs and line breaks
// become spaces, and every other control character (C0, DEL, C1) and every
// byte that is not UTF-8 is written as a visible escape (\x1b, \u009b).
func CleanLine(s string) string { return clean(s, false) }

// CleanText is CleanLine for several lines: "\n" and "\t" are kept, "\r\n"
// and a lone "\r" become "\n", other control characters are escaped.
func CleanText(s string) string { return clean(s, true) }

func clean(s string, multiline bool) string {
	if isClean(s, multiline) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\r' && strings.HasPrefix(s[i+size:], "\n"):
			if !multiline {
				b.WriteByte(' ')
			}
		case r == '\n' || r == '\t':
			if multiline {
				b.WriteRune(r)
			} else {
				b.WriteByte(' ')
			}
		case r == '\r': // a lone CR would overwrite the line on a terminal
			if multiline {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		case r == '\u2028' || r == '\u2029':
			if multiline {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// isClean is the fast path: nothing to change (ASCII without controls).
func isClean(s string, multiline bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7f || (c < 0x20 && !(multiline && (c == '\n' || c == '\t'))) {
			return false
		}
	}
	return true
}

// HasControl reports whether s holds a control character other than the
// allowed ones, or bytes that are not UTF-8 (for tests and fuzzing).
func HasControl(s string, allowed string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') && !strings.ContainsRune(allowed, r) {
			return true
		}
	}
	return false
}
