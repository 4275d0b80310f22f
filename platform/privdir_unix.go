//go:build unix

package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// dirHandle is the held descriptor of a checked private dir; viaProc is
// true where /proc/self/fd/FD names that directory (Linux with /proc
// mounted), so sockets can be reached through it (see socketAddr).
type dirHandle struct {
	fd      int
	viaProc bool
}

func openDirHandle(path string) (dirHandle, error) {
	fd, err := openRetry(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return dirHandle{}, fmt.Errorf("%w: opening %s: %v (it was replaced after its check; check who can write the directories above it)", ErrInsecureDir, path, err)
	}
	h := dirHandle{fd: fd}
	// Race: path may have been swapped between checkPrivateDir and the open
	// (by root or us only, see checkParents); what counts is the directory
	// the handle names, so check that one.
	if err := h.check(path); err != nil {
		unix.Close(fd)
		return dirHandle{}, err
	}
	h.viaProc = procNamesFD(fd)
	return h, nil
}

// check fstats the handle: owned by us, no group/other bits.
func (h dirHandle) check(path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return fmt.Errorf("check private dir %s: %w", path, err)
	}
	uid := os.Getuid()
	switch {
	case int(st.Uid) != uid:
		return fmt.Errorf("%w: %s changed after its check: now owned by uid %d with mode %#o; check who can write the directories above it",
			ErrInsecureDir, path, st.Uid, st.Mode&0o777)
	case st.Mode&0o077 != 0:
		return fmt.Errorf("%w: %s has mode %#o, group/other may access it; run `chmod 700 %s`", ErrInsecureDir, path, st.Mode&0o777, path)
	}
	return nil
}

func (h dirHandle) openFile(path, name string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := openRetry(func() (int, error) {
		return unix.Openat(h.fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("%w: %s is a symbolic link; remove it (`rm %s`)", ErrNotOurs, path, path)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not by us (uid %d); remove it (`rm %s`)", ErrNotOurs, path, st.Uid, uid, path)
	}
	return os.NewFile(uintptr(fd), path), nil
}

func (h dirHandle) rename(path, oldName, newName string) error {
	if err := unix.Renameat(h.fd, oldName, h.fd, newName); err != nil {
		return &os.LinkError{Op: "rename", Old: path, New: newName, Err: err}
	}
	return nil
}

func (h dirHandle) remove(path, name string) error {
	if err := unix.Unlinkat(h.fd, name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

func (h dirHandle) close() error { return unix.Close(h.fd) }

func (h dirHandle) stat(path, name string) (fs.FileInfo, error) {
	fi := &statInfo{name: name}
	if err := unix.Fstatat(h.fd, name, &fi.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return fi, nil
}

// names reads the directory's entries through the handle (a new
// descriptor of ".", relative to it, so the held one keeps its offset).
func (h dirHandle) names(string) ([]string, error) {
	fd, err := openRetry(func() (int, error) {
		return unix.Openat(h.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// chmod sets the mode of name (a socket just bound) relative to the handle.
func (h dirHandle) chmod(name string, mode os.FileMode) {
	unix.Fchmodat(h.fd, name, uint32(mode.Perm()), 0)
}

// socketAddr returns the address at which to bind or dial the socket name
// in the dir at path. Where /proc/self/fd/FD names the handle's directory
// (Linux), that is /proc/self/fd/FD/NAME: the kernel resolves it through
// the held descriptor, so a directory swapped at path after our check is
// never reached. Otherwise (macOS, the BSDs: x/sys has no bindat/connectat
// for them; Linux without /proc, or a name too long for sun_path that way)
// it is the path itself, after comparing the directory now at path with
// the handle (device and inode), refused on a mismatch.
//
// Race: by path, the directory can still be swapped between that
// comparison and the bind or connect. Only root or we can swap it
// (checkParents), and both ends check the other with the kernel before any
// byte (CheckPeer: the host accepts only our uid, a proxy trusts only our
// uid and the hint's host pid), so a socket reached through a swapped
// directory is refused, not trusted.
func (h dirHandle) socketAddr(path, name string) (string, error) {
	if h.viaProc {
		if p := "/proc/self/fd/" + strconv.Itoa(h.fd) + "/" + name; len(p) <= MaxSocketPath() {
			return p, nil
		}
	}
	p := filepath.Join(path, name)
	if len(p) > MaxSocketPath() {
		return "", fmt.Errorf("the socket path %s is %d bytes, more than the %d a unix socket allows", p, len(p), MaxSocketPath())
	}
	if err := h.samePath(path); err != nil {
		return "", err
	}
	return p, nil
}

// samePath returns an error wrapping ErrInsecureDir unless the directory
// now at path is the one the handle holds (device and inode), for the
// calls that can only go by path.
func (h dirHandle) samePath(path string) error {
	var now, held unix.Stat_t
	if err := unix.Stat(path, &now); err != nil {
		return fmt.Errorf("%w: %s: %v (it was replaced after it was opened; check who can write the directories above it)", ErrInsecureDir, path, err)
	}
	if err := unix.Fstat(h.fd, &held); err != nil {
		return fmt.Errorf("check private dir %s: %w", path, err)
	}
	if now.Dev != held.Dev || now.Ino != held.Ino {
		return fmt.Errorf("%w: %s is no longer the directory procref checked and opened (it was replaced); check who can write the directories above it", ErrInsecureDir, path)
	}
	return nil
}

// statInfo is an fs.FileInfo from fstatat; Sys returns *unix.Stat_t.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *statInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

func (fi *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch uint32(fi.st.Mode) & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if uint32(fi.st.Mode)&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// openRetry retries open on EINTR (a FIFO or a slow filesystem).
func openRetry(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
