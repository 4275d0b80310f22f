//go:build unix

package proxy

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// Issue 22 item 3: a runtime dir that fails its check at handoff time (its
// held handle re-checked: here chmod 755 after it was opened) is an error
// saying how to fix it, never a socket path in the working directory.
func TestHandoffSocketNeedsPrivateDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	svc := &launcher.Service{Name: "handoff-test", Dir: dir}
	got, err := handoffDir(svc)
	if err != nil || got.Path() != dir {
		t.Fatalf("handoffDir of a private dir = %v, %v; want the handle on %s", got, err, dir)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = handoffDir(svc)
	if !errors.Is(err, platform.ErrInsecureDir) || !strings.Contains(err.Error(), "chmod 700 "+dir) || got != nil {
		t.Fatalf("handoffDir of a 0755 dir = %v, %v; want ErrInsecureDir saying `chmod 700 %s`", got, err, dir)
	}
}
