package host

import (
	"strings"
	"testing"

	"github.com/procref/procref/internal/hostproto"
)

// TestBothPlaceholders: a command with both {socket} and {port} is refused
// with a message that says to use one.
func TestBothPlaceholders(t *testing.T) {
	b := &backend{spec: &hostproto.Spec{Command: []string{"/bin/srv", "--unix={socket}", "--port={port}"}}}
	_, err := b.listenAddr()
	if err == nil || !strings.Contains(err.Error(), "use one") {
		t.Errorf("listenAddr = %v, want an error saying to use one placeholder", err)
	}
}
