package lastbytes

import (
	"strings"
	"testing"
)

// TestBuffer: small writes and one larger than the bound keep exactly the
// last Max bytes.
func TestBuffer(t *testing.T) {
	b := &Buffer{Max: 8}
	for _, s := range []string{"abc", "defgh", "ij"} {
		b.Write([]byte(s))
	}
	if got := string(b.Bytes()); got != "cdefghij" {
		t.Errorf("after small writes: %q, want cdefghij", got)
	}
	b.Write([]byte(strings.Repeat("x", 20) + "12345678"))
	if got := string(b.Bytes()); got != "12345678" {
		t.Errorf("after a large write: %q, want 12345678", got)
	}
}
