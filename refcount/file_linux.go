//go:build linux

package refcount

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fileCounter on Linux uses open-file-description (OFD) locks: each
// reference is an exclusive lock on one byte of <dir>/<name>.ref, held
// through its own open file description. OFD locks belong to the open file,
// not to the process, so several references in one process each count, and
// closing an unrelated descriptor of the file drops nothing. The kernel
// drops the lock when the last descriptor of that open file is closed,
// including at process death.
type fileCounter struct {
	path  string
	probe int // holds no locks; used only for F_OFD_GETLK
	fid   fileID
}

func openFileCounter(path string, create bool) (*fileCounter, error) {
	fd, id, err := openPrivateFD(path, create)
	if err != nil {
		return nil, err
	}
	return &fileCounter{path: path, probe: fd, fid: id}, nil
}

// current returns ErrRemoved if path no longer names our inode.
func (c *fileCounter) current() error { return checkCurrent(c.path, c.fid) }

func ofdLock(fd int, cmd int, typ int16, start, length int64) (*unix.Flock_t, error) {
	lk := &unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: length}
	for {
		err := unix.FcntlFlock(uintptr(fd), cmd, lk)
		if err != unix.EINTR {
			return lk, err
		}
	}
}

func (c *fileCounter) acquire() (func() error, error) {
	fd, err := unix.Open(c.path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w", c.path, ErrRemoved)
		}
		return nil, fmt.Errorf("open %s: %w", c.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || statID(&st) != c.fid {
		unix.Close(fd)
		return nil, fmt.Errorf("%s was replaced: %w", c.path, ErrRemoved)
	}
	// First fit: take the lowest free slot. A slot that is busy (or being
	// probed by a counter right now) fails with EAGAIN; try the next.
	for i := int64(0); i < fileSlots; i++ {
		_, err := ofdLock(fd, unix.F_OFD_SETLK, unix.F_WRLCK, i, 1)
		if err == nil {
			return func() error { return unix.Close(fd) }, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", c.path, err)
		}
	}
	unix.Close(fd)
	return nil, fmt.Errorf("%s: all %d reference slots are in use", c.path, fileSlots)
}

func (c *fileCounter) count() (int, error) {
	if err := c.current(); err != nil {
		return 0, err
	}
	return countLocked(0, fileSlots, func(lo, hi int64) (int64, int64, bool, error) {
		lk, err := ofdLock(c.probe, unix.F_OFD_GETLK, unix.F_WRLCK, lo, hi-lo)
		if err != nil {
			return 0, 0, false, fmt.Errorf("probe locks on %s: %w", c.path, err)
		}
		if lk.Type == unix.F_UNLCK {
			return 0, 0, false, nil
		}
		return lk.Start, lk.Len, true, nil
	})
}

func (c *fileCounter) waitZero(ctx context.Context) error { return pollZero(ctx, c.count) }

func (c *fileCounter) remove() error {
	// Race: only unlink the file if it is still ours; a file created after
	// an earlier removal belongs to its new users.
	if err := c.current(); err != nil {
		if errors.Is(err, ErrRemoved) {
			return nil
		}
		return err
	}
	if err := os.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (c *fileCounter) close() error { return unix.Close(c.probe) }

func (c *fileCounter) id() string { return c.path }
