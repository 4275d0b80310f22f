//go:build unix

package discovery

import (
	"context"
	"errors"
	"io"
	"net"
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
		_, err := Read(openDir(t, dir), "svc")
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
// dir's handle: a dir that fails its check gets no handle (an error, not a
// stale hint to replace), and a hint of another owner is refused.
func TestReadChecksDirAndOwner(t *testing.T) {
	dir := privateDir(t)
	d := openDir(t, dir)
	if err := Write(d, &Hint{Name: "svc", Host: platform.Self(), Port: 1, Token: "t", Nonce: "n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(d, "svc"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := platform.OpenPrivateDir(dir); !errors.Is(err, platform.ErrInsecureDir) || !strings.Contains(err.Error(), "chmod go-w") {
		t.Fatalf("opening the dir under a 0777 parent = %v, want ErrInsecureDir with the fix", err)
	}
	os.Chmod(filepath.Dir(dir), 0o700)
	if os.Getuid() != 0 {
		t.Skip("chown to another uid needs root")
	}
	if err := os.Chown(Path(dir, "svc"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(d, "svc"); !errors.Is(err, ErrStale) || !errors.Is(err, platform.ErrNotOurs) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Read of a hint of uid 65534 = %v, want ErrStale wrapping ErrNotOurs", err)
	}
}

// TestVerifyRefusesAnotherPID: a hint whose socket is served by a process
// other than the hint's host pid (here: this test, while the hint names
// pid 1) is stale, and the listener never sees the token.
func TestVerifyRefusesAnotherPID(t *testing.T) {
	dir := privateDir(t)
	init, err := platform.Lookup(1)
	if err != nil {
		t.Skip("no pid 1 to name as the host:", err)
	}
	sock := filepath.Join(dir, "svc.1.host.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	h := &Hint{Name: "svc", Host: init, Socket: sock, Token: "TOKEN", Nonce: "NONCE"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Verify(ctx, h, "", 5*time.Second)
	if conn != nil {
		conn.Close()
	}
	if !errors.Is(err, ErrStale) || !errors.Is(err, platform.ErrNotOurPeer) {
		t.Errorf("Verify = %v, want ErrStale and ErrNotOurPeer", err)
	}
	if b := <-got; len(b) > 0 {
		t.Errorf("the listener got %q, want nothing", b)
	}
}

// Issue 22 item 3: Remove unlinks relative to the checked dir's handle:
// after the dir was renamed away and another put at its path, the hint in
// the checked dir goes and the one at the path stays.
func TestRemoveChecksDir(t *testing.T) {
	dir := privateDir(t)
	d := openDir(t, dir)
	if err := Write(d, &Hint{Name: "svc", Host: platform.Self(), Port: 1, Token: "t", Nonce: "n"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := platform.EnsurePrivateDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := Write(openDir(t, dir), &Hint{Name: "svc", Host: platform.Self(), Port: 1, Token: "t", Nonce: "other"}); err != nil {
		t.Fatal(err)
	}
	if err := Remove(d, "svc", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(Path(dir+".moved", "svc")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Remove: %v, want the checked dir's hint gone", err)
	}
	if _, err := os.Lstat(Path(dir, "svc")); err != nil {
		t.Fatalf("the hint at the path went: %v", err)
	}
}
