//go:build unix

package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// Issue 22 item 3: a runtime dir that fails its check at handoff time is an
// error saying how to fix it, never a socket path in the working directory.
func TestHandoffSocketNeedsPrivateDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	svc := &launcher.Service{Name: "handoff-test", Dir: dir}
	got, err := handoffSocket(svc, 42)
	if err != nil || filepath.Dir(got) != dir {
		t.Fatalf("handoffSocket in a private dir = %q, %v; want a path in %s", got, err, dir)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = handoffSocket(svc, 42)
	if !errors.Is(err, platform.ErrInsecureDir) || !strings.Contains(err.Error(), "chmod 700 "+dir) || got != "" {
		t.Fatalf("handoffSocket in a 0755 dir = %q, %v; want ErrInsecureDir saying `chmod 700 %s`", got, err, dir)
	}
}
