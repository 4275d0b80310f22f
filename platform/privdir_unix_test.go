//go:build linux || darwin || freebsd

package platform

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// openTestDir makes a private dir and opens its handle (closed at the end).
func openTestDir(t *testing.T) (string, *PrivateDir) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rt")
	if err := EnsurePrivateDir(p); err != nil {
		t.Fatal(err)
	}
	d, err := OpenPrivateDir(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return p, d
}

// Issue 22 item 3: files in the runtime dir are reached relative to the
// checked handle: a swap of the dir after the open redirects nothing; a
// symlink or a file of another owner inside is refused.
func TestPrivateDirHandle(t *testing.T) {
	p, d := openTestDir(t)
	f, err := d.OpenFile("a.json", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("ours")
	f.Close()

	// Swap: the checked dir moves away and another takes its path.
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "a.json"), []byte("fake"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err = d.OpenFile("a.json", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "ours" {
		t.Fatalf("after the swap the handle read %q, want the checked dir's %q", b, "ours")
	}

	// Rename and Remove act on the checked dir too.
	if err := d.Rename("a.json", "b.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p+".moved", "b.json")); err != nil {
		t.Fatalf("rename through the handle: %v", err)
	}
	if err := d.Remove("b.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p, "a.json")); err != nil {
		t.Fatalf("the swapped-in dir was touched: %v", err)
	}
	if err := d.Remove("b.json"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("second remove = %v, want os.ErrNotExist", err)
	}
	if err := os.Symlink(filepath.Join(p, "a.json"), filepath.Join(p+".moved", "link.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenFile("link.json", os.O_RDONLY, 0); !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("open of a symlink = %v, want ErrNotOurs: symbolic link", err)
	}
	for _, name := range []string{"../rt/a.json", "..", ""} {
		if _, err := d.OpenFile(name, os.O_RDONLY, 0); err == nil || !strings.Contains(err.Error(), "single file name") {
			t.Fatalf("open of %q = %v, want a refusal", name, err)
		}
	}
	if _, err := d.OpenFile("missing.json", os.O_RDONLY, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a missing file = %v, want os.ErrNotExist", err)
	}
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPrivateDir(p); !errors.Is(err, ErrInsecureDir) {
		t.Fatalf("OpenPrivateDir of a 0755 dir = %v, want ErrInsecureDir", err)
	}
	if os.Getuid() != 0 {
		t.Skip("chown to another uid needs root")
	}
	planted := filepath.Join(p+".moved", "planted.json")
	if err := os.WriteFile(planted, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(planted, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenFile("planted.json", os.O_RDONLY, 0); !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("open of a file of uid 65534 = %v, want ErrNotOurs naming the owner", err)
	}
}

// Issue 22 item 3: a unix socket is bound and dialled through the handle.
// After the checked dir is renamed away and another put at its path, a
// dial through the handle reaches the listener in the checked dir (Linux,
// via /proc/self/fd) or is refused (by path elsewhere: the dir at the path
// is not the handle's); nothing is created in the dir now at the path, and
// closing the listener removes its socket from the checked dir.
func TestPrivateDirSocketAfterSwap(t *testing.T) {
	p, d := openTestDir(t)
	ln, err := d.ListenUnix("h.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, err := d.Stat("h.sock"); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket in the dir: %v, %v; want a 0600 socket", fi, err)
	}
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := d.DialUnix(context.Background(), "h.sock")
	switch {
	case runtime.GOOS == "linux" && err != nil:
		t.Fatalf("dial through the handle after the swap: %v", err)
	case runtime.GOOS != "linux" && !errors.Is(err, ErrInsecureDir):
		t.Fatalf("dial by path after the swap = %v, want ErrInsecureDir", err)
	case err == nil:
		c.Close()
	}
	ln2, err := d.ListenUnix("second.sock")
	if runtime.GOOS == "linux" {
		if err != nil {
			t.Fatalf("listen through the handle after the swap: %v", err)
		}
		ln2.Close()
	} else if !errors.Is(err, ErrInsecureDir) {
		t.Fatalf("listen by path after the swap = %v, want ErrInsecureDir", err)
	}
	if names, _ := filepath.Glob(filepath.Join(p, "*")); len(names) != 0 {
		t.Fatalf("the dir now at the path got %v", names)
	}
	if names, err := d.Glob("*.sock"); err != nil || strings.Join(names, ",") != "h.sock" {
		t.Fatalf("Glob through the handle = %v, %v; want [h.sock]", names, err)
	}
	ln.Close()
	if _, err := os.Lstat(filepath.Join(p+".moved", "h.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Close the socket is still in the checked dir: %v", err)
	}
	if err := d.WriteFile("w.json", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(p+".moved", "w.json")); err != nil || string(b) != "x" {
		t.Fatalf("WriteFile through the handle: %q, %v", b, err)
	}
}

type brokenSource struct{}

func (brokenSource) Read([]byte) (int, error) { return 0, errors.New("source broke") }

// TestWriteFrom: the one atomic writer replaces a file whole, 0600, with
// no temporary file left; a source that fails leaves the old content.
func TestWriteFrom(t *testing.T) {
	p := t.TempDir()
	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := OpenPrivateDir(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, content := range []string{"first\n", "second, longer\n"} {
		if err := d.WriteFrom("f", strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(p, "f")); err != nil || string(got) != content {
			t.Fatalf("content = %q, %v; want %q", got, err, content)
		}
	}
	if fi, _ := os.Stat(filepath.Join(p, "f")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if err := d.WriteFrom("f", brokenSource{}); err == nil || !strings.Contains(err.Error(), "source broke") {
		t.Fatalf("WriteFrom(broken source) = %v, want its error", err)
	}
	if got, _ := os.ReadFile(filepath.Join(p, "f")); string(got) != "second, longer\n" {
		t.Errorf("content = %q after a failed write, want the old", got)
	}
	if ents, _ := os.ReadDir(p); len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only the file (no temp left)", len(ents))
	}
}
