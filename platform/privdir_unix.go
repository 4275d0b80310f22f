//go:build unix

package platform

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

type dirHandle struct{ fd int }

func openDirHandle(path string) (dirHandle, error) {
	fd, err := openRetry(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return dirHandle{}, fmt.Errorf("%w: opening %s: %v (it was replaced after its check; check who can write the directories above it)", ErrInsecureDir, path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return dirHandle{}, fmt.Errorf("check private dir %s: %w", path, err)
	}
	// Race: path may have been swapped between checkPrivateDir and the open
	// (by root or us only, see checkParents); what counts is the directory
	// the handle names, so check that one.
	if uid := os.Getuid(); int(st.Uid) != uid || st.Mode&0o077 != 0 {
		unix.Close(fd)
		return dirHandle{}, fmt.Errorf("%w: %s changed after its check: now owned by uid %d with mode %#o; check who can write the directories above it",
			ErrInsecureDir, path, st.Uid, st.Mode&0o777)
	}
	return dirHandle{fd: fd}, nil
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

// openRetry retries open on EINTR (a FIFO or a slow filesystem).
func openRetry(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
