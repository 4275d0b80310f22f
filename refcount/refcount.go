// Package refcount provides per-service kernel reference counts and a
// crash-safe startup lock.
//
// A reference taken with [Counter.Acquire] is given back by the kernel when
// the taking process dies, however it dies (kill -9 included). Two
// implementations give the same API:
//
//   - [SysV] (Linux, the default there): one System V semaphore set per
//     service, mode 0600, every operation with SEM_UNDO. The IPC key is
//     derived from the uid and the full service key, never the name alone.
//   - [FileLock] (the default on macOS, FreeBSD and Windows, selectable on
//     Linux): the file <dir>/<name>.ref, one exclusive byte-range lock per
//     reference (Linux: open-file-description locks, darwin/freebsd: POSIX
//     fcntl locks, Windows: LockFileEx). The count is found by probing the
//     locks.
//
// The startup lock ([Lock]) is an exclusive lock on <dir>/<name>.lock
// taken with github.com/gofrs/flock (flock on unix, LockFileEx on Windows),
// with our private-file checks around it; the kernel drops it when its
// holder dies. The holder writes its pid into the file so that a waiter that gave up
// can say who holds it.
package refcount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/procref/procref/platform"
)

// ErrRemoved is returned when the kernel object behind a counter was removed
// under us: the semaphore set was deleted (EIDRM/EINVAL, for example by
// systemd-logind's RemoveIPC when the user's last session ends, or by
// `ipcrm`), or the lock file was deleted or replaced. References held on the
// removed object are lost. The caller may [Open] the counter again and
// Acquire anew.
var ErrRemoved = errors.New("reference counter was removed")

// ErrNotPrivate is returned by [Open] and [OpenLock] when the existing
// semaphore set or file is not owned by the current user or is not mode 0600.
// It is wrapped with text that says how to fix it, e.g. "remove it with
// `ipcrm -s ID`" or "remove FILE".
var ErrNotPrivate = errors.New("reference counter is not private")

// ErrSetsExhausted is returned (wrapped) by [Open] with an explicit SysV
// when semget fails with ENOSPC: the system's semaphore sets (SEMMNI, the
// 4th field of /proc/sys/kernel/sem) or semaphores (SEMMNS, the 2nd) are
// used up, by any user. With Auto, Open falls back to FileLock instead and
// logs why.
var ErrSetsExhausted = errors.New("the system's semaphore sets are used up")

// ErrLocked is returned by [Lock.TryLock] when the lock is held, by another
// process or by another caller in this process.
var ErrLocked = errors.New("lock is held by another process")

// Impl selects the kernel mechanism behind a [Counter].
type Impl int

const (
	// Auto is SysV on Linux (but 32-bit MIPS) and FileLock elsewhere.
	Auto Impl = iota
	// SysV is a System V semaphore set with SEM_UNDO (Linux only).
	SysV
	// FileLock is one byte-range lock per reference on <dir>/<name>.ref.
	FileLock
)

// String returns "auto", "sysv" or "filelock".
func (i Impl) String() string {
	switch i {
	case Auto:
		return "auto"
	case SysV:
		return "sysv"
	case FileLock:
		return "filelock"
	}
	return fmt.Sprintf("Impl(%d)", int(i))
}

// ParseImpl parses the output of [Impl.String] ("auto", "sysv", "filelock";
// case-insensitive; "file" and "semaphore" are accepted too).
func ParseImpl(s string) (Impl, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return Auto, nil
	case "sysv", "semaphore", "sem":
		return SysV, nil
	case "filelock", "file", "flock":
		return FileLock, nil
	}
	return Auto, fmt.Errorf("unknown reference counter implementation %q (want auto, sysv or filelock)", s)
}

// resolve maps Auto to the platform default.
func (i Impl) resolve() Impl {
	if i == Auto {
		if sysvAvailable {
			return SysV
		}
		return FileLock
	}
	return i
}

// Options configures [Open] and [List].
type Options struct {
	// Dir is the checked handle on the private runtime directory (see
	// platform.PrivateDir). It holds the key secret, the file-lock files
	// and the registry files that [List] reads, all reached relative to
	// the handle. Required. It stays the caller's: a Counter uses it until
	// Close, so close the Counter first.
	Dir *platform.PrivateDir
	// Impl selects the implementation; the zero value is Auto. With Auto, a
	// SysV key held by a set that is not ours (another user squatting it),
	// or the system's semaphore sets used up (ENOSPC), makes Open fall back
	// to FileLock for that service and log why; an explicit SysV returns
	// the error instead. A service on FileLock stays on it while its .ref
	// file exists.
	Impl Impl
	// Logf receives the reason for such a fallback; nil means log.Printf.
	Logf func(format string, args ...any)
}

// backend is one implementation of a counter.
type backend interface {
	acquire() (release func() error, err error)
	count() (int, error)
	waitZero(ctx context.Context) error
	remove() error
	close() error
	id() string
}

// Counter is an open per-service reference counter. Its methods are safe for
// concurrent use.
type Counter struct {
	name, key string
	dir       *platform.PrivateDir
	impl      Impl
	b         backend

	mu     sync.Mutex
	closed bool
}

// Open opens, creating it if needed, the counter for the service name (file
// name safe, e.g. "gopls-0123456789ab") whose full identity is key (the hex
// sha256 service key). It does not block on other processes.
//
// Several processes may Open the same brand-new counter at the same moment:
// they all get the same kernel object, whose count starts at zero.
//
// Open verifies that the object is owned by the current user and has mode
// 0600; otherwise it returns an error wrapping [ErrNotPrivate] that says how
// to remove the offending object. Open also writes the registry file
// <dir>/<name>.counter that [List] reads.
func Open(name, key string, opts Options) (*Counter, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if key == "" || strings.ContainsAny(key, "\r\n\x00") {
		return nil, fmt.Errorf("refcount: invalid service key %q", key)
	}
	if opts.Dir == nil {
		return nil, errors.New("refcount: Options.Dir is required")
	}
	impl := opts.Impl.resolve()
	var (
		b   backend
		err error
	)
	switch impl {
	case SysV:
		b, impl, err = openSysVOrFallback(name, key, opts)
	case FileLock:
		b, err = openFile(name, opts.Dir)
	default:
		return nil, fmt.Errorf("refcount: unknown implementation %v", opts.Impl)
	}
	if err != nil {
		return nil, err
	}
	if err := writeRegistry(opts.Dir, name, impl, key); err != nil {
		b.close()
		return nil, err
	}
	return &Counter{name: name, key: key, dir: opts.Dir, impl: impl, b: b}, nil
}

// openSysVOrFallback opens the SysV set or, with Auto, falls back to
// FileLock and logs why: when the key is held by a set that is not ours
// (another user squatting it), or when semget fails with ENOSPC because the
// system's semaphore sets are used up (any user can take them all).
//
// Race: neither cause is permanent (the squatter may remove its set, sets
// may be freed), but one service must never be split across two counters,
// since the supervisor drains on the count of only one of them. So with
// Auto a service already on FileLock (its registry says so and its .ref
// file exists) stays on FileLock until the counter is removed, even if
// semget would work again. What remains is two first windows of a service
// opening at the same moment, one just before sets are freed and one just
// after: they may pick different implementations; the registry ends with
// the later one, and the other window's reference is not counted, so the
// supervisor may drain while that window is attached (it then starts a new
// supervisor, as for a lost reference).
func openSysVOrFallback(name, key string, opts Options) (backend, Impl, error) {
	if opts.Impl == Auto && onFileLock(opts.Dir, name, key) {
		b, err := openFile(name, opts.Dir)
		return b, FileLock, err
	}
	b, err := openSysV(name, key, opts.Dir)
	if opts.Impl != Auto || !(errors.Is(err, ErrNotPrivate) || errors.Is(err, ErrSetsExhausted)) {
		return b, SysV, err
	}
	logf := opts.Logf
	if logf == nil {
		logf = log.Printf
	}
	logf("reference counter %s: falling back to file locks: %v", name, err)
	b, err = openFile(name, opts.Dir)
	return b, FileLock, err
}

// onFileLock reports whether the counter of name and key is registered as
// FileLock and its .ref file exists (see openSysVOrFallback).
func onFileLock(d *platform.PrivateDir, name, key string) bool {
	reg, err := readRegistry(d, registryName(name))
	if err != nil || reg.impl != FileLock || reg.Key != key {
		return false
	}
	_, err = d.Stat(name + ".ref")
	return err == nil
}

func (c *Counter) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("reference counter %s: %w", c.name, os.ErrClosed)
	}
	return nil
}

// Acquire adds one reference and returns the function that gives it back.
// It does not block (beyond a few syscalls). The kernel gives the reference
// back if the process dies before calling release. release is idempotent:
// calls after the first return nil. A reference stays held after
// [Counter.Close]; only release or process death gives it back.
//
// With SysV the kernel keeps the undo record per process (the Go runtime
// creates its threads with CLONE_SYSVSEM), so several Acquires in one process
// simply add up, and all of them are undone when the process exits.
//
// Acquire returns an error wrapping [ErrRemoved] when the object was removed.
func (c *Counter) Acquire() (release func() error, err error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	rel, err := c.b.acquire()
	if err != nil {
		return nil, fmt.Errorf("acquire reference %s: %w", c.name, err)
	}
	var once sync.Once
	return func() error {
		var rerr error
		once.Do(func() {
			if e := rel(); e != nil {
				rerr = fmt.Errorf("release reference %s: %w", c.name, e)
			}
		})
		return rerr
	}, nil
}

// Count returns the current number of references held by all processes.
// It does not block. It returns an error wrapping [ErrRemoved] when the
// object was removed.
func (c *Counter) Count() (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	n, err := c.b.count()
	if err != nil {
		return 0, fmt.Errorf("count references %s: %w", c.name, err)
	}
	return n, nil
}

// WaitZero blocks until the count is zero or ctx is done (then it returns
// ctx.Err()). With SysV it sleeps in the kernel (semtimedop wait-for-zero,
// re-armed every 100 ms to notice ctx); with FileLock it polls every 10 ms.
// It returns an error wrapping [ErrRemoved] when the object is removed while
// it waits.
func (c *Counter) WaitZero(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	if err := c.b.waitZero(ctx); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return err
		}
		return fmt.Errorf("wait for zero references %s: %w", c.name, err)
	}
	return nil
}

// Remove deletes the kernel object (semaphore set or .ref file) and the
// registry file, then closes c.
//
// Race: Remove is only safe when the count is zero and the caller holds the
// startup lock. Even then a process that has already Opened the counter may
// Acquire between the caller's last Count and the removal; its reference is
// then lost with the object, and its next Count, WaitZero or Acquire returns
// [ErrRemoved]. Such a process must Open again and Acquire anew after taking
// the startup lock, before trusting a service it found. Processes that Open
// after Remove get a fresh object.
func (c *Counter) Remove() error {
	if err := c.check(); err != nil {
		return err
	}
	err := c.b.remove()
	if rerr := c.dir.Remove(registryName(c.name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	c.Close()
	if err != nil {
		return fmt.Errorf("remove reference counter %s: %w", c.name, err)
	}
	return nil
}

// Close releases the resources of c (file descriptors). References taken
// with Acquire stay held until released. Close is idempotent.
func (c *Counter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.b.close()
}

// Impl returns the implementation in use (never Auto).
func (c *Counter) Impl() Impl { return c.impl }

// ID returns the identity of the kernel object: the semaphore id for SysV,
// the .ref file path for FileLock.
func (c *Counter) ID() string { return c.b.id() }

// Info describes one counter found by [List].
type Info struct {
	Name  string
	Impl  Impl
	Count int
	// ID is the semaphore id (SysV) or the .ref file path (FileLock).
	ID string
	// Err is set when the counter is registered but could not be read
	// (for example it is not private); Count is then 0.
	Err error
}

// List returns the counters registered in opts.Dir (by [Open]) whose kernel
// object still exists, with their current counts, sorted by name. It never
// creates objects. opts.Impl is ignored: each counter is read with the
// implementation it was opened with.
func List(opts Options) ([]Info, error) {
	if opts.Dir == nil {
		return nil, errors.New("refcount: Options.Dir is required")
	}
	files, err := opts.Dir.Glob("*" + registrySuffix)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, file := range files {
		name := strings.TrimSuffix(file, registrySuffix)
		reg, err := readRegistry(opts.Dir, file)
		if err != nil {
			out = append(out, Info{Name: name, Err: err})
			continue
		}
		info := Info{Name: name, Impl: reg.impl}
		var b backend
		switch reg.impl {
		case SysV:
			b, err = lookupSysV(name, reg.Key, opts.Dir)
		case FileLock:
			b, err = lookupFile(name, opts.Dir)
		default:
			err = fmt.Errorf("unknown implementation %q", reg.Impl)
		}
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			info.ID = b.id()
			info.Count, err = b.count()
			b.close()
		}
		if errors.Is(err, ErrRemoved) {
			continue
		}
		info.Err = err
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lock is the per-service startup lock, an exclusive lock on
// <dir>/<name>.lock that the kernel drops when its holder dies. Locks are
// exclusive between processes and between callers in one process. Its
// methods are safe for concurrent use.
type Lock struct {
	d          *platform.PrivateDir
	name, path string
}

// OpenLock prepares the startup lock <dir>/<name>.lock in the checked dir
// d, creating the file with mode 0600 if needed, relative to d's handle. It
// refuses (wrapping [ErrNotPrivate]) a file that is not ours, not 0600 or
// not a regular file. It does not take the lock. d stays the caller's and
// must stay open while the Lock is used.
func OpenLock(d *platform.PrivateDir, name string) (*Lock, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if d == nil {
		return nil, errors.New("refcount: lock directory is required")
	}
	l := &Lock{d: d, name: name + ".lock", path: filepath.Join(d.Path(), name+".lock")}
	f, err := openPrivate(d, l.name, true)
	if err != nil {
		return nil, err
	}
	f.Close()
	return l, nil
}

// Path returns the lock file path.
func (l *Lock) Path() string { return l.path }

// TryLock takes the lock without blocking, or returns an error wrapping
// [ErrLocked]. The returned release is idempotent. After taking the lock,
// TryLock writes the current pid into the lock file (see [Lock.Holder]).
func (l *Lock) TryLock() (release func() error, err error) {
	return l.take(context.Background(), false)
}

// Lock blocks until it takes the lock or ctx is done, trying again every
// 5 ms (gofrs/flock's TryLockContext: flock cannot be cancelled); a dead
// holder's lock is taken within one interval. On ctx expiry the error wraps
// both [ErrLocked] and ctx.Err() and names the holder: "startup lock FILE
// held by pid N".
func (l *Lock) Lock(ctx context.Context) (release func() error, err error) {
	return l.take(ctx, true)
}

func (l *Lock) take(ctx context.Context, wait bool) (func() error, error) {
	rel, err := lockFile(ctx, l.d, l.name, wait)
	switch {
	case err == nil:
		var once sync.Once
		return func() error {
			var rerr error
			once.Do(func() { rerr = rel() })
			return rerr
		}, nil
	case errors.Is(err, ErrLocked) && wait:
		if pid, _ := l.Holder(); pid != 0 {
			return nil, fmt.Errorf("startup lock %s held by pid %d: %w", l.path, pid, err)
		}
		return nil, fmt.Errorf("startup lock %s held by another process (pid unknown): %w", l.path, err)
	case errors.Is(err, ErrLocked):
		return nil, fmt.Errorf("startup lock %s: %w", l.path, err)
	}
	return nil, fmt.Errorf("take startup lock %s: %w", l.path, err)
}

// Holder returns the pid that holds the lock, as written into the lock file
// by the holder, or 0 when the lock looks free or the holder is unknown.
//
// Race: it is a hint. The pid is written just after the lock is taken and
// cleared just before it is released; a holder killed with -9 leaves its pid
// behind, so a pid that is no longer alive reports 0, but a pid reused by an
// unrelated process can be reported until the next holder overwrites it.
func (l *Lock) Holder() (pid int, err error) {
	return readHolder(l.d, l.name)
}

const registrySuffix = ".counter"

func registryName(name string) string { return name + registrySuffix }

type registry struct {
	Impl string `json:"impl"`
	Key  string `json:"key"`
	impl Impl
}

func readRegistry(d *platform.PrivateDir, file string) (registry, error) {
	var r registry
	path := filepath.Join(d.Path(), file)
	data, err := readFileIn(d, file)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("registry file %s: %w", path, err)
	}
	r.impl, err = ParseImpl(r.Impl)
	if err != nil || r.impl == Auto {
		return r, fmt.Errorf("registry file %s: bad implementation %q", path, r.Impl)
	}
	return r, nil
}

// readFileIn reads the small file name in d (at most 64 KiB), opened
// relative to its handle (a file that is not ours is refused).
func readFileIn(d *platform.PrivateDir, name string) ([]byte, error) {
	f, err := d.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// writeRegistry writes <dir>/<name>.counter atomically, relative to d's
// handle ([platform.PrivateDir.WriteFile]), unless it already holds the
// same content.
func writeRegistry(d *platform.PrivateDir, name string, impl Impl, key string) error {
	data, err := json.Marshal(registry{Impl: impl.String(), Key: key})
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if old, err := readFileIn(d, registryName(name)); err == nil && string(old) == string(data) {
		return nil
	}
	if err := d.WriteFile(registryName(name), data); err != nil {
		return fmt.Errorf("write registry file: %w", err)
	}
	return nil
}

// checkName accepts file-name-safe service names.
func checkName(name string) error {
	if name == "" || len(name) > 200 || name[0] == '.' {
		return fmt.Errorf("refcount: invalid service name %q", name)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("refcount: invalid service name %q (want letters, digits, '-', '_', '.')", name)
		}
	}
	return nil
}
