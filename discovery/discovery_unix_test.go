//go:build unix

package discovery

import (
	"errors"
	"testing"
	"time"

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
