package hostproto

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanLine returns s as one line of plain text for a window's reason
// line: control characters (NUL included: a crashed backend's last stderr
// bytes, a malformed frame quoted in an error, can carry them) and
// invalid UTF-8 become spaces, and runs of white space one space.
func CleanLine(s string) string {
	clean := strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(clean), " ")
}
