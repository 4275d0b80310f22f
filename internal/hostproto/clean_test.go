package hostproto

import (
	"strings"
	"testing"
)

func TestCleanLine(t *testing.T) {
	for in, want := range map[string]string{
		"gopls crashed:\x00\x00 panic\n\tgoroutine 1": "gopls crashed: panic goroutine 1",
		"bad \xff\xfe bytes\r\n":                      "bad bytes",
		"plain":                                       "plain",
		"\x1b[31mred\x1b[0m":                          "[31mred [0m",
	} {
		if got := CleanLine(in); got != want {
			t.Errorf("CleanLine(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsAny(CleanLine(in), "\x00\n\r\x1b") {
			t.Errorf("CleanLine(%q) kept a control character", in)
		}
	}
	if got := EndLine("a\x00b\nc"); got != "end a b c\n" {
		t.Errorf("EndLine = %q", got)
	}
}
