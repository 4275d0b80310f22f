//go:build windows

package refcount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/procref/procref/platform"
	"golang.org/x/sys/windows"
)

// fileCounter on Windows: each reference is an exclusive LockFileEx lock on
// one byte of <dir>/<name>.ref, held through its own handle (Windows locks
// belong to the handle, so references in one process each count). Windows
// drops the locks when the handle is closed, also at process death.
type fileCounter struct {
	path  string
	probe windows.Handle // holds locks only for a moment while counting
	fid   fileID
}

// openFileCounter opens name in d by path: Windows has no handle-relative
// open here (the directory's ACL is relied on, see package platform).
func openFileCounter(d *platform.PrivateDir, name string, create bool) (*fileCounter, error) {
	path := filepath.Join(d.Path(), name)
	h, id, err := openPrivateHandle(path, create)
	if err != nil {
		return nil, err
	}
	return &fileCounter{path: path, probe: h, fid: id}, nil
}

func (c *fileCounter) current() error { return checkCurrent(c.path, c.fid) }

func (c *fileCounter) acquire() (func() error, error) {
	h, id, err := openPrivateHandle(c.path, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", c.path, ErrRemoved)
	}
	if err != nil {
		return nil, err
	}
	if id != c.fid {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("%s was replaced: %w", c.path, ErrRemoved)
	}
	for i := int64(0); i < fileSlots; i++ {
		err := lockRange(h, i, 1)
		if err == nil {
			slot := i
			return func() error {
				unlockRange(h, slot, 1)
				return windows.CloseHandle(h)
			}, nil
		}
		if !isLockViolation(err) {
			windows.CloseHandle(h)
			return nil, fmt.Errorf("lock %s: %w", c.path, err)
		}
	}
	windows.CloseHandle(h)
	return nil, fmt.Errorf("%s: all %d reference slots are in use", c.path, fileSlots)
}

// count probes with try-lock/unlock of whole ranges, halving the ranges
// that are not free: about 2k·log2(fileSlots) calls for k references.
// Race: while a probe holds a range for a moment, an Acquire elsewhere skips
// the slots in it and takes a higher one, and a concurrent count may see the
// probe as one extra reference; both are harmless.
func (c *fileCounter) count() (int, error) {
	if err := c.current(); err != nil {
		return 0, err
	}
	var walk func(lo, hi int64) (int, error)
	walk = func(lo, hi int64) (int, error) {
		err := lockRange(c.probe, lo, hi-lo)
		if err == nil {
			unlockRange(c.probe, lo, hi-lo)
			return 0, nil
		}
		if !isLockViolation(err) {
			return 0, fmt.Errorf("probe locks on %s: %w", c.path, err)
		}
		if hi-lo == 1 {
			return 1, nil
		}
		mid := lo + (hi-lo)/2
		a, err := walk(lo, mid)
		if err != nil {
			return 0, err
		}
		b, err := walk(mid, hi)
		return a + b, err
	}
	return walk(0, fileSlots)
}

func (c *fileCounter) waitZero(ctx context.Context) error { return pollZero(ctx, c.count) }

func (c *fileCounter) remove() error {
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

func (c *fileCounter) close() error { return windows.CloseHandle(c.probe) }

func (c *fileCounter) id() string { return c.path }
