//go:build unix

package refcount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/procref/procref/platform"
	"golang.org/x/sys/unix"
)

// fileID identifies an inode, to notice a file that was removed or replaced.
type fileID struct{ dev, ino uint64 }

func statID(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), uint64(st.Ino)} }

// pathID returns the identity of the file now at name in d (fstatat
// relative to the handle); ErrRemoved if there is none.
func pathID(d *platform.PrivateDir, name string) (fileID, error) {
	fi, err := d.Stat(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fileID{}, fmt.Errorf("%s: %w", filepath.Join(d.Path(), name), ErrRemoved)
		}
		return fileID{}, err
	}
	st, ok := fi.Sys().(*unix.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("stat %s: no inode", filepath.Join(d.Path(), name))
	}
	return statID(st), nil
}

// checkCurrent returns ErrRemoved if name in d no longer names the file fid.
func checkCurrent(d *platform.PrivateDir, name string, fid fileID) error {
	id, err := pathID(d, name)
	if err != nil {
		return err
	}
	if id != fid {
		return fmt.Errorf("%s was replaced: %w", filepath.Join(d.Path(), name), ErrRemoved)
	}
	return nil
}

// openPrivateFile opens name in d read-write (creating it 0600 if create),
// relative to the dir's handle and never following a symlink, and refuses
// a file that is not a regular file owned by us with mode 0600. With create
// false a missing file is os.ErrNotExist. The caller owns the file; its
// descriptor stays valid while the *os.File is reachable.
func openPrivateFile(d *platform.PrivateDir, name string, create bool) (*os.File, fileID, error) {
	path := filepath.Join(d.Path(), name)
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := d.OpenFile(name, flags, 0o600)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fileID{}, fmt.Errorf("%s: %w", path, os.ErrNotExist)
	case errors.Is(err, platform.ErrNotOurs):
		return nil, fileID{}, fmt.Errorf("%w: %w", ErrNotPrivate, err)
	case err != nil:
		return nil, fileID{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	uid := os.Geteuid()
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != uint32(uid) || st.Mode&0o777 != 0o600 {
		f.Close()
		return nil, fileID{}, fmt.Errorf("%s is owned by uid %d with mode %#o (type %#o), want a regular file of uid %d with mode 0600: %w; remove %s",
			path, st.Uid, st.Mode&0o777, st.Mode&unix.S_IFMT, uid, ErrNotPrivate, path)
	}
	return f, statID(&st), nil
}

func openPrivate(d *platform.PrivateDir, name string, create bool) (*os.File, error) {
	f, _, err := openPrivateFile(d, name, create)
	return f, err
}

// processAlive: signal 0 succeeds, or fails with EPERM (alive, not ours).
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// tryFlock takes flock(2)'s exclusive lock on f without blocking (the lock
// gofrs/flock takes; it cannot lock a file opened relative to a directory
// handle): false, nil when another open file holds it.
func tryFlock(f *os.File) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case err != unix.EINTR:
			return false, err
		}
	}
}

func unflock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_UN) }
