//go:build unix

package discovery

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/platform"
	"golang.org/x/sys/unix"
)

// A FIFO in place of the hint neither blocks Read nor is trusted.
func TestReadFIFO(t *testing.T) {
	dir := privateDir(t)
	if err := unix.Mkfifo(Path(dir, "svc"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Read(dir, "svc")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStale) {
			t.Errorf("Read of a FIFO: %v, want ErrStale", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read blocked on a FIFO")
	}
}

// Issue 22 item 3: Read reaches the hint relative to the checked runtime
// dir: a dir that fails its check is an error (not a stale hint to
// replace), and a hint of another owner is refused.
func TestReadChecksDirAndOwner(t *testing.T) {
	dir := privateDir(t)
	if err := Write(dir, &Hint{Name: "svc", Host: platform.Self(), Port: 1, Token: "t", Nonce: "n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir, "svc"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir, "svc"); !errors.Is(err, platform.ErrInsecureDir) || errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "chmod go-w") {
		t.Fatalf("Read under a 0777 parent = %v, want ErrInsecureDir (not ErrStale) with the fix", err)
	}
	os.Chmod(filepath.Dir(dir), 0o700)
	if os.Getuid() != 0 {
		t.Skip("chown to another uid needs root")
	}
	if err := os.Chown(Path(dir, "svc"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir, "svc"); !errors.Is(err, ErrStale) || !errors.Is(err, platform.ErrNotOurs) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Read of a hint of uid 65534 = %v, want ErrStale wrapping ErrNotOurs", err)
	}
}
