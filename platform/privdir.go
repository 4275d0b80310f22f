package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrNotOurs reports a file inside a private dir that is not owned by us
// (planted, or reached through a swapped directory). It is wrapped with the
// path and how to remove it.
var ErrNotOurs = errors.New("file is not ours")

// PrivateDir is a private directory held open after its check: files in it
// are opened relative to the handle, never through the path again, so a
// directory swapped or renamed after the check cannot redirect them. Its
// methods are safe for concurrent use; the caller owns it and must Close it
// (procref's processes open one per process and keep it for their life, see
// launcher.Service.PrivateDir).
//
// What goes through the handle: OpenFile, Stat, Glob, WriteFile, Rename and
// Remove (unix: openat, fstatat, renameat, unlinkat on the held descriptor,
// never following a symlink); unix sockets (ListenUnix, DialUnix): on Linux
// through /proc/self/fd/N/NAME, which the kernel resolves through the held
// descriptor, elsewhere by path after comparing the directory at the path
// with the handle (see socketAddr). Windows goes by path throughout.
type PrivateDir struct {
	path string
	h    dirHandle
}

// OpenPrivateDir checks path as EnsurePrivateDir does (every directory
// above it, then path itself) without creating anything, opens it without
// following a symlink, and checks the opened directory again (owned by us,
// no group/other bits): what the handle names is the private dir even if
// path was swapped between the check and the open. It does not block.
func OpenPrivateDir(path string) (*PrivateDir, error) {
	if err := checkPrivateDir(path); err != nil {
		return nil, err
	}
	h, err := openDirHandle(path)
	if err != nil {
		return nil, err
	}
	return &PrivateDir{path: path, h: h}, nil
}

// Path returns the path the dir was opened by (for messages).
func (d *PrivateDir) Path() string { return d.path }

// OpenFile opens name, one path component, relative to the handle, never
// following a symlink (unix: openat with O_NOFOLLOW), then checks the opened
// file with fstat: it must be owned by us, or the error wraps ErrNotOurs. A
// missing file is an error wrapping os.ErrNotExist. Windows opens by path
// (reparse points are refused; the profile directory's ACL is relied on).
func (d *PrivateDir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := singleName(name, d.path); err != nil {
		return nil, fmt.Errorf("open %w", err)
	}
	return d.h.openFile(filepath.Join(d.path, name), name, flag, perm)
}

// Rename renames oldName to newName, both single names in the dir,
// relative to the handle (unix: renameat), replacing newName atomically.
func (d *PrivateDir) Rename(oldName, newName string) error {
	for _, n := range []string{oldName, newName} {
		if err := singleName(n, d.path); err != nil {
			return err
		}
	}
	return d.h.rename(filepath.Join(d.path, oldName), oldName, newName)
}

// Link makes newName a hard link to oldName, both single names in the
// dir, relative to the handle (unix: linkat). It never replaces newName:
// an existing one is an error wrapping os.ErrExist (so racing creators of
// a file agree on one winner).
func (d *PrivateDir) Link(oldName, newName string) error {
	for _, n := range []string{oldName, newName} {
		if err := singleName(n, d.path); err != nil {
			return err
		}
	}
	return d.h.link(filepath.Join(d.path, oldName), oldName, newName)
}

// Remove removes the file name (not a directory) relative to the handle
// (unix: unlinkat). A missing file is an error wrapping os.ErrNotExist.
func (d *PrivateDir) Remove(name string) error {
	if err := singleName(name, d.path); err != nil {
		return err
	}
	return d.h.remove(filepath.Join(d.path, name), name)
}

func singleName(name, dir string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("%q in %s: not a single file name", name, dir)
	}
	return nil
}

// Close closes the handle. A UnixListener from ListenUnix must be closed
// first: it removes its socket through the handle.
func (d *PrivateDir) Close() error { return d.h.close() }

// Check re-checks the opened directory (fstat of the handle, not the path):
// still owned by us, no group/other bits, or an error wrapping
// ErrInsecureDir that says how to fix it. It does not block.
func (d *PrivateDir) Check() error { return d.h.check(d.path) }

// Stat describes the file name (one path component) in the dir without
// following a symlink (unix: fstatat with AT_SYMLINK_NOFOLLOW). A missing
// file is an error wrapping os.ErrNotExist. Compare results with SameFile.
func (d *PrivateDir) Stat(name string) (fs.FileInfo, error) {
	if err := singleName(name, d.path); err != nil {
		return nil, fmt.Errorf("stat %w", err)
	}
	return d.h.stat(filepath.Join(d.path, name), name)
}

// Glob returns the names in the dir (read through the handle) that match
// pattern (filepath.Match syntax), sorted.
func (d *PrivateDir) Glob(pattern string) ([]string, error) {
	names, err := d.h.names(d.path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d.path, err)
	}
	var out []string
	for _, n := range names {
		if ok, err := filepath.Match(pattern, n); err != nil {
			return nil, err
		} else if ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// WriteFile atomically replaces name with data, mode 0600 (WriteFrom).
func (d *PrivateDir) WriteFile(name string, data []byte) error {
	return d.WriteFrom(name, bytes.NewReader(data))
}

// WriteFrom atomically replaces name with the bytes of src, mode 0600: a
// new temporary file in the dir (O_EXCL), written, closed, then renamed
// over name, all relative to the handle. A reader sees the old or the new
// content, never a torn one. On error nothing is left but name's old
// content. It does not fsync: it is for runtime state (hints, registries,
// rotated logs) that a power loss may lose but a crash must not tear. It
// is procref's one atomic file writer.
func (d *PrivateDir) WriteFrom(name string, src io.Reader) (err error) {
	f, tmp, err := d.CreateTemp("." + name + ".tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			d.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return d.Rename(tmp, name)
}

// CreateTemp creates a new 0600 file prefix+random in the dir (O_EXCL,
// retried on a name clash, relative to the handle) and returns it, open for
// writing and the caller's to close and remove, with its name.
func (d *PrivateDir) CreateTemp(prefix string) (*os.File, string, error) {
	for range 100 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		f, err := d.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", errors.New("no free temporary name in " + d.Path())
}

// SocketPath returns the path of the unix socket name in the dir, as other
// tools (and the hint) name it.
func (d *PrivateDir) SocketPath(name string) string { return filepath.Join(d.path, name) }

// UnixListener is a unix socket listening in a PrivateDir. Close stops it
// and removes its socket file relative to the handle (never by a path that
// may now name another directory).
type UnixListener struct {
	*net.UnixListener
	d    *PrivateDir
	name string
	once sync.Once
}

// Close closes the listener and removes its socket file.
func (l *UnixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { l.d.Remove(l.name) })
	return err
}

// ListenUnix listens on the unix socket name (one path component) in the
// dir, bound relative to the handle (see PrivateDir), mode 0600. A stale
// socket of that name must be removed first (Remove). It returns an error
// wrapping ErrInsecureDir if the directory at the path is no longer the
// handle's where the OS binds by path, and an error when the path is too
// long for a unix socket. The caller owns the listener and closes it
// before the PrivateDir.
func (d *PrivateDir) ListenUnix(name string) (*UnixListener, error) {
	if err := singleName(name, d.path); err != nil {
		return nil, fmt.Errorf("listen %w", err)
	}
	addr, err := d.h.socketAddr(d.path, name)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", d.SocketPath(name), err)
	}
	ln.SetUnlinkOnClose(false) // Close removes it through the handle
	d.h.chmod(name, 0o600)
	return &UnixListener{UnixListener: ln, d: d, name: name}, nil
}

// DialUnix connects to the unix socket name (one path component) in the
// dir, relative to the handle like ListenUnix, bounded by ctx. The caller
// owns the connection; it still checks the peer (CheckPeer).
func (d *PrivateDir) DialUnix(ctx context.Context, name string) (*net.UnixConn, error) {
	if err := singleName(name, d.path); err != nil {
		return nil, fmt.Errorf("dial %w", err)
	}
	addr, err := d.h.socketAddr(d.path, name)
	if err != nil {
		return nil, err
	}
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.SocketPath(name), err)
	}
	return c.(*net.UnixConn), nil
}
