package host

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
)

// TestCapLog: the host's writes and a second writer's (the backend, same
// file, O_APPEND) keep the log under the cap plus one line; the older part
// is kept in .1; later writes land at the start of the truncated file.
func TestCapLog(t *testing.T) {
	path := filepath.Join(logDir(t), "x.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	backend, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const max = 4 << 10
	w := CapLog(ctx, f, path, max, 10*time.Millisecond)
	if w == f {
		t.Fatal("CapLog did not recognise the log file")
	}
	line := []byte(strings.Repeat("x", 99) + "\n")
	for i := 0; i < 200; i++ {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
		if fi, _ := f.Stat(); fi.Size() > max+200 {
			t.Fatalf("log is %d bytes after a host write, cap %d", fi.Size(), max)
		}
	}
	old, err := os.ReadFile(path + ".1")
	if err != nil || len(old) <= max {
		t.Fatalf("%s.1: %d bytes, %v; want the rotated part", path, len(old), err)
	}
	// The backend's direct writes are caught by the periodic check, which
	// truncates and then writes its note (wait for both: the file is empty
	// in between).
	backend.Write(bytes.Repeat(line, 100))
	proctest.WaitFor(t, 5*time.Second, "the periodic check to rotate the log", func() error {
		b, _ := os.ReadFile(path)
		if len(b) > max+200 || !bytes.HasPrefix(b, []byte("procref: log rotated at ")) {
			return fmt.Errorf("log is %d bytes after the backend's writes and starts with %q", len(b), b[:min(len(b), 60)])
		}
		return nil
	})
}

// TestCapLogNotTheFile: a stderr that is not the log is left alone.
func TestCapLogNotTheFile(t *testing.T) {
	dir := t.TempDir()
	f, _ := os.Create(filepath.Join(dir, "a"))
	defer f.Close()
	if w := CapLog(context.Background(), f, filepath.Join(dir, "b"), 10, time.Hour); w != f {
		t.Error("CapLog wrapped a file that is not the log")
	}
}

// TestCapLogNoFollow (issue 22 item 6): links planted where the rotation
// writes (x.log.1.tmp, x.log.1) redirect nothing: the files they point to
// are untouched and x.log.1 is a regular file with the old part.
func TestCapLogNoFollow(t *testing.T) {
	dir := logDir(t)
	path := filepath.Join(dir, "x.log")
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path + ".1.tmp", path + ".1"} {
		if err := os.Symlink(victim, p); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := CapLog(ctx, f, path, 1<<10, time.Hour)
	line := []byte(strings.Repeat("x", 99) + "\n")
	for range 20 {
		w.Write(line)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
		t.Errorf("the link's target was written: %q", b[:min(len(b), 60)])
	}
	if fi, err := os.Lstat(path + ".1"); err != nil || !fi.Mode().IsRegular() || fi.Size() <= 1<<10 {
		t.Errorf("%s.1 after the rotation: %v, %v; want a regular file with the old part", path, fi, err)
	}
}

// logDir is a private dir for a log, as the launcher makes it (0700).
func logDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}
