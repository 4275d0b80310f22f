//go:build linux && !mips && !mipsle

package refcount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// kernelObjects counts the semaphore sets with key's IPC key in
// /proc/sysvipc/sem (-1 for FileLock, which has no such listing).
func kernelObjects(t testing.TB, impl Impl, key string) int {
	t.Helper()
	if impl != SysV {
		return -1
	}
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(int(sysvKey(os.Geteuid(), key)))
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && f[0] == want {
			n++
		}
	}
	return n
}

// forceRemoveSysV removes the set with key's IPC key, whoever owns it.
func forceRemoveSysV(key string) error {
	id, err := semget(sysvKey(os.Geteuid(), key), 0, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = semctl(id, 0, ipcRmid, nil)
	return err
}

func TestSysVKey(t *testing.T) {
	a := sysvKey(1000, "k1")
	if a == 0 {
		t.Fatal("key is IPC_PRIVATE")
	}
	if sysvKey(1000, "k1") != a {
		t.Fatal("key derivation is not stable")
	}
	if sysvKey(1001, "k1") == a || sysvKey(1000, "k2") == a {
		t.Fatal("key does not depend on uid and service key")
	}
}

// Must show 4: a set with the wrong mode is refused, and the error names
// the fix.
func TestSysVRefusesWrongMode(t *testing.T) {
	tc := newTestCounter(t, SysV)
	id, err := semget(sysvKey(os.Geteuid(), tc.key), 1, ipcCreat|ipcExcl|0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { semctl(id, 0, ipcRmid, nil) })
	_, err = Open(tc.name, tc.key, tc.opts)
	if !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("Open of a 0666 set = %v, want ErrNotPrivate", err)
	}
	if fix := fmt.Sprintf("ipcrm -s %d", id); !strings.Contains(err.Error(), fix) {
		t.Fatalf("error %q does not say %q", err, fix)
	}
	if _, err := os.Stat(registryPath(tc.opts.Dir, tc.name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused counter was registered: %v", err)
	}
}

func TestSysVRefusesWrongOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a set's owner needs root")
	}
	tc := newTestCounter(t, SysV)
	c := tc.open(t)
	id, _ := strconv.Atoi(c.ID())
	if err := semSetOwner(id, 65534, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(tc.name, tc.key, tc.opts)
	if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), fmt.Sprintf("ipcrm -s %d", id)) {
		t.Fatalf("Open of a set owned by uid 65534 = %v, want ErrNotPrivate naming `ipcrm -s %d`", err, id)
	}
}

func TestFileLockRefusesWrongModeOrOwner(t *testing.T) {
	tc := newTestCounter(t, FileLock)
	c := tc.open(t)
	path := c.ID()
	lock, err := OpenLock(tc.opts.Dir, tc.name)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, lock.Path()} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Open(tc.name, tc.key, tc.opts)
	if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), "remove "+path) {
		t.Fatalf("Open of a 0644 file = %v, want ErrNotPrivate naming `remove %s`", err, path)
	}
	if _, err := OpenLock(tc.opts.Dir, tc.name); !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("OpenLock of a 0644 file = %v, want ErrNotPrivate", err)
	}
	if _, err := lock.TryLock(); !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("TryLock on a 0644 file = %v, want ErrNotPrivate", err)
	}
	if os.Geteuid() == 0 {
		os.Chmod(path, 0o600)
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(tc.name, tc.key, tc.opts); !errors.Is(err, ErrNotPrivate) {
			t.Fatalf("Open of a file owned by uid 65534 = %v, want ErrNotPrivate", err)
		}
	}
	// A symlink in place of the lock file is refused, not followed.
	os.Remove(lock.Path())
	if err := os.Symlink(filepath.Join(tc.opts.Dir, "elsewhere"), lock.Path()); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLock(tc.opts.Dir, tc.name); !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("OpenLock of a symlink = %v, want ErrNotPrivate", err)
	}
}
