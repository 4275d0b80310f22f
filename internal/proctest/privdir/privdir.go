// Package privdir gives tests a private runtime dir's checked handle.
package privdir

import (
	"path/filepath"
	"testing"

	"github.com/procref/procref/platform"
)

// Dir creates a new 0700 directory under t.TempDir (checked with
// platform.EnsurePrivateDir) and returns its handle
// (platform.OpenPrivateDir), closed when the test ends.
func Dir(t testing.TB) *platform.PrivateDir {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run")
	if err := platform.EnsurePrivateDir(p); err != nil {
		t.Fatal(err)
	}
	d, err := platform.OpenPrivateDir(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
