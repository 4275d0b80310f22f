//go:build linux && !mips && !mipsle

package refcount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelObjects counts the semaphore sets with key's IPC key in
// /proc/sysvipc/sem (-1 for FileLock, which has no such listing).
func kernelObjects(t testing.TB, impl Impl, dir, key string) int {
	t.Helper()
	if impl != SysV {
		return -1
	}
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(int(testSysVKey(t, dir, key)))
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && f[0] == want {
			n++
		}
	}
	return n
}

// testSysVKey is the IPC key Open uses for key in dir.
func testSysVKey(t testing.TB, dir, key string) int32 {
	t.Helper()
	secret, err := loadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sysvKey(secret, os.Geteuid(), key)
}

// forceRemoveSysV removes the set with key's IPC key, whoever owns it.
func forceRemoveSysV(t testing.TB, dir, key string) error {
	id, err := semget(testSysVKey(t, dir, key), 0, 0)
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
	s1, s2 := []byte("secret-1"), []byte("secret-2")
	a := sysvKey(s1, 1000, "k1")
	if a == 0 {
		t.Fatal("key is IPC_PRIVATE")
	}
	if sysvKey(s1, 1000, "k1") != a {
		t.Fatal("key derivation is not stable")
	}
	if sysvKey(s1, 1001, "k1") == a || sysvKey(s1, 1000, "k2") == a || sysvKey(s2, 1000, "k1") == a {
		t.Fatal("key does not depend on secret, uid and service key")
	}
}

// Issue 12 item 3: the secret is created 0600 once per runtime dir and two
// dirs get different keys for the same service.
func TestSecretPerDir(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	s1, err := loadSecret(d1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadSecret(d1)
	if err != nil || string(again) != string(s1) {
		t.Fatalf("second load = %x, %v; want the same secret", again, err)
	}
	st, err := os.Stat(filepath.Join(d1, secretFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", st, err)
	}
	if testSysVKey(t, d1, "k") == testSysVKey(t, d2, "k") {
		t.Fatal("two runtime dirs share a SysV key")
	}
	os.Chmod(filepath.Join(d1, secretFile), 0o644)
	if _, err := loadSecret(d1); !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("load of a 0644 secret = %v, want ErrNotPrivate", err)
	}
}

// Issue 12 item 3: a set squatted on our key (here: wrong mode) makes an
// Auto counter fall back to FileLock, and says why.
func TestSysVSquattedFallsBack(t *testing.T) {
	tc := newTestCounter(t, SysV)
	id, err := semget(testSysVKey(t, tc.opts.Dir, tc.key), 1, ipcCreat|ipcExcl|0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { semctl(id, 0, ipcRmid, nil) })
	var logged string
	opts := Options{Dir: tc.opts.Dir, Logf: func(f string, a ...any) { logged = fmt.Sprintf(f, a...) }}
	c, err := Open(tc.name, tc.key, opts)
	if err != nil {
		t.Fatalf("Auto Open of a squatted key = %v, want a FileLock counter", err)
	}
	defer c.Close()
	t.Cleanup(func() { os.Remove(filepath.Join(tc.opts.Dir, tc.name+".ref")) })
	if c.Impl() != FileLock || !strings.Contains(logged, "falling back") {
		t.Fatalf("impl %v, log %q; want FileLock and a line saying why", c.Impl(), logged)
	}
	rel, err := c.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Count(); n != 1 || err != nil {
		t.Fatalf("count = %d, %v; want 1", n, err)
	}
	rel()
	infos, err := List(opts)
	if err != nil || len(infos) != 1 || infos[0].Impl != FileLock {
		t.Fatalf("List = %+v, %v; want the FileLock counter", infos, err)
	}
}

// Must show 4: a set with the wrong mode is refused, and the error names
// the fix.
func TestSysVRefusesWrongMode(t *testing.T) {
	tc := newTestCounter(t, SysV)
	id, err := semget(testSysVKey(t, tc.opts.Dir, tc.key), 1, ipcCreat|ipcExcl|0o666)
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

// semSetOwner changes the owner uid and mode of a set with IPC_SET (tests
// use it to make a set that is not ours).
func semSetOwner(id int, uid uint32, mode uint32) error {
	p, err := semStat(id)
	if err != nil {
		return err
	}
	var buf [semidDSSize]byte
	ne := binary.NativeEndian
	ne.PutUint32(buf[4:], uid)
	ne.PutUint32(buf[8:], p.gid)
	ne.PutUint32(buf[20:], mode)
	_, err = semctl(id, 0, ipcSet, unsafe.Pointer(&buf[0]))
	return err
}
