//go:build unix

package refcount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fileID identifies an inode, to notice a file that was removed or replaced.
type fileID struct{ dev, ino uint64 }

func statID(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), uint64(st.Ino)} }

// pathID returns the identity of the file now at path; ErrRemoved if there
// is none.
func pathID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fileID{}, fmt.Errorf("%s: %w", path, ErrRemoved)
		}
		return fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return statID(&st), nil
}

// openPrivateFD opens path read-write (creating it 0600 if create), never
// following a symlink, and refuses a file that is not a regular file owned
// by us with mode 0600. With create false a missing file is os.ErrNotExist.
func openPrivateFD(path string, create bool) (int, fileID, error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW
	if create {
		flags |= unix.O_CREAT
	}
	var (
		fd  int
		err error
	)
	for {
		fd, err = unix.Open(path, flags, 0o600)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return -1, fileID{}, fmt.Errorf("%s: %w", path, os.ErrNotExist)
		case errors.Is(err, unix.ELOOP):
			return -1, fileID{}, fmt.Errorf("%s is a symbolic link: %w; remove %s", path, ErrNotPrivate, path)
		}
		return -1, fileID{}, fmt.Errorf("open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	uid := os.Geteuid()
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != uint32(uid) || st.Mode&0o777 != 0o600 {
		unix.Close(fd)
		return -1, fileID{}, fmt.Errorf("%s is owned by uid %d with mode %#o (type %#o), want a regular file of uid %d with mode 0600: %w; remove %s",
			path, st.Uid, st.Mode&0o777, st.Mode&unix.S_IFMT, uid, ErrNotPrivate, path)
	}
	return fd, statID(&st), nil
}

func openPrivate(path string, create bool) (*os.File, error) {
	fd, _, err := openPrivateFD(path, create)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// processAlive: signal 0 succeeds, or fails with EPERM (alive, not ours).
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
