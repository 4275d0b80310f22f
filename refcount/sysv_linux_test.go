//go:build linux && !mips && !mipsle

package refcount

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/procref/procref/platform"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/internal/proctest/privdir"
	"golang.org/x/sys/unix"
)

// kernelObjects counts the semaphore sets with key's IPC key in
// /proc/sysvipc/sem (-1 for FileLock, which has no such listing).
func kernelObjects(t testing.TB, impl Impl, dir *platform.PrivateDir, key string) int {
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
func testSysVKey(t testing.TB, dir *platform.PrivateDir, key string) int32 {
	t.Helper()
	secret, err := loadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sysvKey(secret, os.Geteuid(), key)
}

// forceRemoveSysV removes the set with key's IPC key, whoever owns it.
func forceRemoveSysV(t testing.TB, dir *platform.PrivateDir, key string) error {
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
	d1, d2 := privdir.Dir(t), privdir.Dir(t)
	s1, err := loadSecret(d1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadSecret(d1)
	if err != nil || string(again) != string(s1) {
		t.Fatalf("second load = %x, %v; want the same secret", again, err)
	}
	st, err := os.Stat(filepath.Join(d1.Path(), secretFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", st, err)
	}
	if testSysVKey(t, d1, "k") == testSysVKey(t, d2, "k") {
		t.Fatal("two runtime dirs share a SysV key")
	}
	os.Chmod(filepath.Join(d1.Path(), secretFile), 0o644)
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
	t.Cleanup(func() { os.Remove(filepath.Join(tc.opts.Dir.Path(), tc.name+".ref")) })
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
	if _, err := tc.opts.Dir.Stat(registryName(tc.name)); !errors.Is(err, os.ErrNotExist) {
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
	if err := os.Symlink(filepath.Join(tc.opts.Dir.Path(), "elsewhere"), lock.Path()); err != nil {
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

func init() { helperModes["enospc"] = enospcHelper }

// Issue 22 item 4: with the system's semaphore sets used up, Auto falls back
// to FileLock and says why; an explicit SysV says the sets are used up. The
// helper runs in its own IPC namespace, so the tiny SEMMNI and the sets it
// takes touch nothing outside.
func TestSysVSetsExhaustedFallsBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a new IPC namespace and writing /proc/sys/kernel/sem")
	}
	ns, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Skipf("cannot read our IPC namespace: %v", err)
	}
	tc := newTestCounter(t, Auto)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=1", "RC_MODE=enospc", "RC_IMPL=auto",
		"RC_DIR="+tc.opts.Dir.Path(), "RC_NAME="+tc.name, "RC_KEY="+tc.key, "RC_PARENT_IPC_NS="+ns)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWIPC}
	var stderr proctest.SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		t.Skipf("cannot start a process in a new IPC namespace (unshare CLONE_NEWIPC not permitted here): %v", err)
	}
	t.Logf("helper:\n%s", out)
	if s := stderr.String(); s != "" {
		t.Logf("helper stderr:\n%s", s)
	}
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if strings.HasPrefix(last, "skip: ") {
		t.Skip(last)
	}
	if err != nil || last != "ok" {
		t.Fatalf("helper: %v, last line %q; want ok", err, last)
	}
}

// enospcHelper runs in a new IPC namespace (see
// TestSysVSetsExhaustedFallsBack); it prints "ok", "skip: WHY" or
// "error: WHY" as its last line.
func enospcHelper(opts Options, name, key string) int {
	fail := func(format string, args ...any) int {
		fmt.Printf("error: "+format+"\n", args...)
		return 1
	}
	// Never shrink the limits of the namespace the tests run in.
	if ns, err := os.Readlink("/proc/self/ns/ipc"); err != nil || ns == os.Getenv("RC_PARENT_IPC_NS") {
		return fail("not in a new IPC namespace (%q, %v)", ns, err)
	}
	if err := os.WriteFile("/proc/sys/kernel/sem", []byte("250 32000 32 2\n"), 0); err != nil {
		fmt.Printf("skip: cannot set SEMMNI in the new IPC namespace: %v\n", err)
		return 0
	}
	var taken []int
	for len(taken) < 100 {
		id, err := semget(0, 1, ipcCreat|0o600) // IPC_PRIVATE
		if errors.Is(err, unix.ENOSPC) {
			break
		}
		if err != nil {
			return fail("taking sets: %v", err)
		}
		taken = append(taken, id)
	}
	fmt.Printf("took %d sets, then ENOSPC\n", len(taken))
	if len(taken) != 2 {
		return fail("took %d sets with SEMMNI 2", len(taken))
	}
	opts.Impl = SysV
	if _, err := Open(name, key, opts); !errors.Is(err, ErrSetsExhausted) || !strings.Contains(err.Error(), "ipcs -s") {
		return fail("explicit SysV Open = %v, want ErrSetsExhausted naming `ipcs -s`", err)
	}
	var logged []string
	opts.Impl = Auto
	opts.Logf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	c, err := Open(name, key, opts)
	if err != nil {
		return fail("Auto Open with the sets used up = %v, want a FileLock counter", err)
	}
	fmt.Printf("log: %q\n", logged)
	if c.Impl() != FileLock || len(logged) != 1 || !strings.Contains(logged[0], "falling back") || !strings.Contains(logged[0], "used up") {
		return fail("impl %v, log %q; want FileLock and one line saying the sets are used up", c.Impl(), logged)
	}
	rel, err := c.Acquire()
	if err != nil {
		return fail("acquire: %v", err)
	}
	if n, err := c.Count(); n != 1 || err != nil {
		return fail("count = %d, %v; want 1", n, err)
	}
	// A set freed now must not split the service: a second Open still
	// finds the FileLock counter that holds our reference.
	if _, err := semctl(taken[0], 0, ipcRmid, nil); err != nil {
		return fail("freeing a set: %v", err)
	}
	c2, err := Open(name, key, opts)
	if err != nil {
		return fail("second Open: %v", err)
	}
	if n, err := c2.Count(); c2.Impl() != FileLock || n != 1 || err != nil {
		return fail("second Open: impl %v, count %d, %v; want FileLock with our 1 reference", c2.Impl(), n, err)
	}
	if err := rel(); err != nil {
		return fail("release: %v", err)
	}
	c2.Close()
	c.Close()
	fmt.Println("ok")
	return 0
}

// TestOthersSetMessage (issue 22 item 6): a set of another user is named as
// such, and the message does not tell a user who is not root to run an
// ipcrm that cannot work for them; root is told the ipcrm.
func TestOthersSetMessage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a set owned by uid 65534 needs root")
	}
	tc := newTestCounter(t, SysV)
	c := tc.open(t)
	id, _ := strconv.Atoi(c.ID())
	if err := semSetOwner(id, 65534, 0o600); err != nil {
		t.Fatal(err)
	}
	sc := &sysvCounter{name: tc.name, semid: id}
	ipcrm := fmt.Sprintf("`ipcrm -s %d`", id)
	err := sc.verify(1000) // as a user who is neither its owner nor its creator
	if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), "another user's") ||
		strings.Contains(err.Error(), "remove it with") || !strings.Contains(err.Error(), "ask that user or an administrator to run "+ipcrm) {
		t.Errorf("as uid 1000: %v", err)
	}
	if err := sc.verify(0); !strings.Contains(err.Error(), "remove it with "+ipcrm) {
		t.Errorf("as root: %v; want the ipcrm to run", err)
	}
	err = semgetErr(tc.name, 0x1234, 1000, unix.EACCES)
	if !strings.Contains(err.Error(), "belongs to another user") || strings.Contains(err.Error(), "remove it with") ||
		!strings.Contains(err.Error(), "file locks") {
		t.Errorf("semget EACCES as uid 1000: %v", err)
	}
}
