package host

import (
	"strings"
	"testing"

	"github.com/procref/procref/platform"
)

// TestSocketPath: NAME.PID.sock when it fits the unix socket limit, the key's
// 12 hex digits when only that fits, a clear error when nothing does.
func TestSocketPath(t *testing.T) {
	const name = "gopls-0123456789ab"
	limit := platform.MaxSocketPath()
	dir := "/" + strings.Repeat("d", limit-len("/"+name+".42.sock")-1)
	if p, err := SocketPath(dir, name, 42); err != nil || p != dir+"/"+name+".42.sock" || len(p) != limit {
		t.Errorf("SocketPath at the limit = %q (%d bytes), %v", p, len(p), err)
	}
	dir += "d"
	if p, err := SocketPath(dir, name, 42); err != nil || p != dir+"/0123456789ab.42.sock" {
		t.Errorf("SocketPath one byte over = %q, %v; want the short name", p, err)
	}
	dir = "/" + strings.Repeat("d", limit)
	_, err := SocketPath(dir, name, 42)
	if err == nil || !strings.Contains(err.Error(), "set PROCREF_RUNTIME_DIR to a shorter private directory") {
		t.Errorf("SocketPath far over the limit: %v", err)
	}
}
