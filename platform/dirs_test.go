//go:build linux || darwin || freebsd

package platform

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("%s: something was created inside: %v", dir, ents)
	}
}

func TestEnsurePrivateDirCreates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "procref")
	if err := EnsurePrivateDir(p); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{p, filepath.Dir(p)} {
		if m := mode(t, q); !m.IsDir() || m.Perm() != 0o700 {
			t.Fatalf("%s mode %v, want drwx------", q, m)
		}
	}
	if err := EnsurePrivateDir(p); err != nil {
		t.Fatalf("second call: %v", err)
	}
}

func TestEnsurePrivateDirRefusesOpenMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	err := EnsurePrivateDir(p)
	if !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "chmod 700 "+p) {
		t.Fatalf("err = %v; want ErrInsecureDir naming `chmod 700 %s`", err, p)
	}
	if m := mode(t, p); m.Perm() != 0o777 {
		t.Fatalf("mode changed to %v", m)
	}
	assertEmpty(t, p)
}

func TestEnsurePrivateDirRefusesSymlink(t *testing.T) {
	tmp := t.TempDir()
	target := filepath.Join(tmp, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	err := EnsurePrivateDir(link)
	if !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "rm "+link) {
		t.Fatalf("err = %v; want ErrInsecureDir telling to `rm %s`", err, link)
	}
	assertEmpty(t, target)
	// A dangling symlink (attacker pointing at a path they will create later).
	dangling := filepath.Join(tmp, "dangling")
	if err := os.Symlink(filepath.Join(tmp, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePrivateDir(dangling); !errors.Is(err, ErrInsecureDir) {
		t.Fatalf("dangling symlink: err = %v, want ErrInsecureDir", err)
	}
	if _, err := os.Lstat(filepath.Join(tmp, "nowhere")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("symlink target was created: %v", err)
	}
}

func TestEnsurePrivateDirRefusesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePrivateDir(p); !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("err = %v, want ErrInsecureDir: not a directory", err)
	}
}

func TestEnsurePrivateDirRefusesForeignOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown to another uid needs root")
	}
	p := filepath.Join(t.TempDir(), "foreign")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := EnsurePrivateDir(p)
	if !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("err = %v; want ErrInsecureDir: owned by uid 65534, remove it", err)
	}
	assertEmpty(t, p)
}

func TestRuntimeDirOverride(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rt")
	t.Setenv("PROCREF_RUNTIME_DIR", p)
	got, err := RuntimeDir()
	if err != nil || got != p {
		t.Fatalf("RuntimeDir = %q, %v; want %q", got, err, p)
	}
	if m := mode(t, p); m.Perm() != 0o700 {
		t.Fatalf("mode %v", m)
	}
	// An insecure override is refused, not repaired.
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := RuntimeDir(); !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "PROCREF_RUNTIME_DIR") {
		t.Fatalf("insecure override: err = %v", err)
	}
}

func TestRuntimeDirXDG(t *testing.T) {
	x := t.TempDir()
	t.Setenv("PROCREF_RUNTIME_DIR", "")
	t.Setenv("XDG_RUNTIME_DIR", x)
	got, err := RuntimeDir()
	if want := filepath.Join(x, "procref"); err != nil || got != want {
		t.Fatalf("RuntimeDir = %q, %v; want %q", got, err, want)
	}
}

// With XDG_RUNTIME_DIR unset: /run/user/<uid>/procref only if that base is
// ours and 0700, else $TMPDIR/procref-<uid>. runUserBase points at a temp
// dir so the real /run/user is never touched.
func TestRuntimeDirFallback(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("darwin falls back to xdg.RuntimeDir (Application Support)")
	}
	tmp := t.TempDir()
	t.Setenv("PROCREF_RUNTIME_DIR", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", filepath.Join(tmp, "tmp"))
	if err := os.Mkdir(filepath.Join(tmp, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := runUserBase
	runUserBase = filepath.Join(tmp, "run-user")
	t.Cleanup(func() { runUserBase = old })
	uid := strconv.Itoa(os.Getuid())
	fallback := filepath.Join(tmp, "tmp", "procref-"+uid)

	check := func(want string) {
		t.Helper()
		got, err := RuntimeDir()
		if err != nil || got != want {
			t.Fatalf("RuntimeDir = %q, %v; want %q", got, err, want)
		}
	}
	check(fallback) // no /run/user/<uid>

	userDir := filepath.Join(runUserBase, uid)
	if err := os.MkdirAll(userDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(userDir, 0o755); err != nil {
		t.Fatal(err)
	}
	check(fallback) // exists but not 0700: not trusted

	if err := os.Chmod(userDir, 0o700); err != nil {
		t.Fatal(err)
	}
	check(filepath.Join(userDir, "procref"))

	// Someone pre-created the fallback world-writable: refused with the fix.
	if err := os.Chmod(userDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fallback, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := RuntimeDir(); !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "chmod 700 "+fallback) {
		t.Fatalf("pre-created insecure fallback: err = %v", err)
	}
}

func TestStateDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "st")
	t.Setenv("PROCREF_STATE_DIR", p)
	if got, err := StateDir(); err != nil || got != p {
		t.Fatalf("StateDir = %q, %v; want %q", got, err, p)
	}
	x := t.TempDir()
	t.Setenv("PROCREF_STATE_DIR", "")
	t.Setenv("XDG_STATE_HOME", x)
	if got, err := StateDir(); err != nil || got != filepath.Join(x, "procref") {
		t.Fatalf("StateDir = %q, %v; want %q", got, err, filepath.Join(x, "procref"))
	}
}

// Issue 22 item 3: every directory above the private dir must be owned by
// root or us and not writable by group/other unless sticky; a parent
// another user could write is refused with the fix, as named and through a
// symlink.
func TestEnsurePrivateDirChecksParents(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // no sticky bit
		t.Fatal(err)
	}
	p := filepath.Join(open, "rt")
	err := EnsurePrivateDir(p)
	if !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), open+", above "+p) || !strings.Contains(err.Error(), "chmod go-w "+open) {
		t.Fatalf("dir under a 0777 parent: err = %v; want ErrInsecureDir naming %s and `chmod go-w`", err, open)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(open, link); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePrivateDir(filepath.Join(link, "rt")); !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), open+", above") {
		t.Fatalf("dir under a symlink to a 0777 parent: err = %v; want ErrInsecureDir naming %s", err, open)
	}
	// Sticky, like /tmp: another user cannot rename what we own there.
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePrivateDir(p); err != nil {
		t.Fatalf("dir under a sticky 01777 parent: %v", err)
	}
	if os.Getuid() != 0 {
		t.Skip("chown to another uid needs root")
	}
	if err := os.Chown(open, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err = EnsurePrivateDir(p)
	if !errors.Is(err, ErrInsecureDir) || !strings.Contains(err.Error(), "owned by uid 65534, not by root or us") {
		t.Fatalf("dir under a parent owned by uid 65534: err = %v; want ErrInsecureDir naming the owner", err)
	}
}
