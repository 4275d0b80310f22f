//go:build linux || darwin || freebsd

package platform

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 22 item 3: files in the runtime dir are reached relative to the
// checked handle: a swap of the dir after the open redirects nothing; a
// symlink or a file of another owner inside is refused.
func TestPrivateDirHandle(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rt")
	if err := EnsurePrivateDir(p); err != nil {
		t.Fatal(err)
	}
	d, err := OpenPrivateDir(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
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
