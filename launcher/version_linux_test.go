//go:build linux

package launcher_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
)

// TestVersionSeparates: two builds of one program (the same Name and Key,
// different Version) get their own supervisors and files; a service of the
// same Name with another Key is refused with ErrNameConflict and leaves no
// semaphore set of its Key behind; the old build's service is unharmed.
func TestVersionSeparates(t *testing.T) {
	e := newEnv(t)
	// toy-over allows two copies side by side; its stop waits for the gate.
	if err := os.MkdirAll(e.run, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.run, stopGate), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v1 := toyService(toyOverName)
	h1 := acquire(t, v1)

	v2 := toyService(toyOverName)
	v2.Version = toyVersion2
	if v2.FileName() == v1.FileName() {
		t.Fatalf("Version does not change the file name %q", v2.FileName())
	}
	h2, err := v2.Acquire(testCtx(t, 30*1e9))
	if err != nil {
		t.Fatalf("Acquire of another Version: %v", err)
	}
	if h2.Supervisor() == h1.Supervisor() {
		t.Fatal("another Version joined the old supervisor")
	}
	h2.Release()

	other := toyService(toyOverName)
	other.Key = launcher.Key("something else", e.run)
	_, err = other.Acquire(testCtx(t, 30*1e9))
	if !errors.Is(err, launcher.ErrNameConflict) {
		t.Fatalf("same Name, another Key: err = %v, want ErrNameConflict", err)
	}
	if n := semSets(t, e.run, other.Key); n != 0 {
		t.Errorf("the refused service left %d semaphore sets", n)
	}
	if h1.Err() != nil {
		t.Errorf("the old service was harmed: %v", h1.Err())
	}
	h1.Release()
	proctest.WaitGone(t, h1.Supervisor(), 20*time.Second, "first supervisor")
	e.waitAllGone(10 * time.Second)
	for _, name := range []string{v1.FileName(), v2.FileName()} {
		if left := serviceFiles(t, e.run, name); len(left) != 0 {
			t.Errorf("left behind: %v", left)
		}
	}
}
