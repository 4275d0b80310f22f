//go:build linux

package refcount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/procref/procref/platform"
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
	d     *platform.PrivateDir // the .ref file is reached relative to it
	name  string
	path  string   // for messages and ID
	probe *os.File // holds no locks; used only for F_OFD_GETLK
	fid   fileID
}

func openFileCounter(d *platform.PrivateDir, name string, create bool) (*fileCounter, error) {
	f, id, err := openPrivateFile(d, name, create)
	if err != nil {
		return nil, err
	}
	return &fileCounter{d: d, name: name, path: filepath.Join(d.Path(), name), probe: f, fid: id}, nil
}

// current returns ErrRemoved if the name no longer names our inode.
func (c *fileCounter) current() error { return checkCurrent(c.d, c.name, c.fid) }

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
	// Each reference is its own open file description, opened relative to
	// the dir handle: a dir swapped since cannot give us another file.
	f, id, err := openPrivateFile(c.d, c.name, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", c.path, ErrRemoved)
	}
	if err != nil {
		return nil, err
	}
	if id != c.fid {
		f.Close()
		return nil, fmt.Errorf("%s was replaced: %w", c.path, ErrRemoved)
	}
	fd := int(f.Fd())
	// First fit: take the lowest free slot. A slot that is busy (or being
	// probed by a counter right now) fails with EAGAIN; try the next.
	for i := int64(0); i < fileSlots; i++ {
		_, err := ofdLock(fd, unix.F_OFD_SETLK, unix.F_WRLCK, i, 1)
		if err == nil {
			return f.Close, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", c.path, err)
		}
	}
	f.Close()
	return nil, fmt.Errorf("%s: all %d reference slots are in use", c.path, fileSlots)
}

func (c *fileCounter) count() (int, error) {
	if err := c.current(); err != nil {
		return 0, err
	}
	return countLocked(0, fileSlots, func(lo, hi int64) (int64, int64, bool, error) {
		lk, err := ofdLock(int(c.probe.Fd()), unix.F_OFD_GETLK, unix.F_WRLCK, lo, hi-lo)
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
	if err := c.d.Remove(c.name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (c *fileCounter) close() error { return c.probe.Close() }

func (c *fileCounter) id() string { return c.path }
