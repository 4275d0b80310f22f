//go:build unix && !linux

package refcount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/procref/procref/platform"
	"golang.org/x/sys/unix"
)

// fileCounter on darwin and FreeBSD uses POSIX fcntl record locks, the only
// byte-range locks there. They belong to the process, not to the open file:
//
//   - F_GETLK never reports the process's own locks, and a second lock on
//     the same byte by the same process succeeds. So the process keeps a
//     table of the slots it holds: Acquire skips them, Count adds them.
//   - Closing ANY descriptor of the file drops ALL the process's locks on
//     it. So the process opens each .ref inode once (sharedFiles) and keeps
//     that descriptor open while any Counter or reference uses it; nothing
//     else in this package opens .ref files.
type fileCounter struct {
	d    *platform.PrivateDir // the .ref file is reached relative to it
	name string
	path string // for messages and ID
	sf   *sharedFile
	once sync.Once
}

// sharedFile is the one descriptor this process holds for a .ref inode.
type sharedFile struct {
	f    *os.File
	fid  fileID
	refs int            // Counters and held references using fd; guarded by sharedMu
	held map[int64]bool // slots locked by this process; guarded by sharedMu
}

var (
	sharedMu    sync.Mutex
	sharedFiles = map[fileID]*sharedFile{}
	// strayFiles keeps descriptors that must not be closed (see
	// openFileCounter).
	strayFiles []*os.File
)

func openFileCounter(d *platform.PrivateDir, name string, create bool) (*fileCounter, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	c := &fileCounter{d: d, name: name, path: filepath.Join(d.Path(), name)}
	if id, err := pathID(d, name); err == nil {
		if sf := sharedFiles[id]; sf != nil {
			sf.refs++
			c.sf = sf
			return c, nil
		}
	}
	f, id, err := openPrivateFile(d, name, create)
	if err != nil {
		return nil, err
	}
	if sf := sharedFiles[id]; sf != nil {
		// Race: the file changed between stat and open and we opened an
		// inode this process already holds. Closing f would drop our
		// locks on it, so keep it open for the life of the process.
		strayFiles = append(strayFiles, f)
		sf.refs++
		c.sf = sf
		return c, nil
	}
	c.sf = &sharedFile{f: f, fid: id, refs: 1, held: map[int64]bool{}}
	sharedFiles[id] = c.sf
	return c, nil
}

// unref drops one use of sf; the last closes the descriptor. Call with
// sharedMu held.
func (sf *sharedFile) unref() error {
	sf.refs--
	if sf.refs > 0 {
		return nil
	}
	delete(sharedFiles, sf.fid)
	return sf.f.Close()
}

func (c *fileCounter) current() error { return checkCurrent(c.d, c.name, c.sf.fid) }

func posixLock(fd int, cmd int, typ int16, start, length int64) (*unix.Flock_t, error) {
	lk := &unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: length}
	for {
		err := unix.FcntlFlock(uintptr(fd), cmd, lk)
		if err != unix.EINTR {
			return lk, err
		}
	}
}

func (c *fileCounter) acquire() (func() error, error) {
	if err := c.current(); err != nil {
		return nil, err
	}
	sf := c.sf
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for i := int64(0); i < fileSlots; i++ {
		if sf.held[i] {
			continue
		}
		_, err := posixLock(int(sf.f.Fd()), unix.F_SETLK, unix.F_WRLCK, i, 1)
		if err == nil {
			sf.held[i] = true
			sf.refs++
			slot := i
			return func() error {
				sharedMu.Lock()
				defer sharedMu.Unlock()
				_, err := posixLock(int(sf.f.Fd()), unix.F_SETLK, unix.F_UNLCK, slot, 1)
				delete(sf.held, slot)
				if cerr := sf.unref(); err == nil {
					err = cerr
				}
				return err
			}, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("lock %s: %w", c.path, err)
		}
	}
	return nil, fmt.Errorf("%s: all %d reference slots are in use", c.path, fileSlots)
}

func (c *fileCounter) count() (int, error) {
	if err := c.current(); err != nil {
		return 0, err
	}
	sf := c.sf
	// Hold sharedMu so our own table and locks do not change mid-count.
	sharedMu.Lock()
	defer sharedMu.Unlock()
	others, err := countLocked(0, fileSlots, func(lo, hi int64) (int64, int64, bool, error) {
		lk, err := posixLock(int(sf.f.Fd()), unix.F_GETLK, unix.F_WRLCK, lo, hi-lo)
		if err != nil {
			return 0, 0, false, fmt.Errorf("probe locks on %s: %w", c.path, err)
		}
		if lk.Type == unix.F_UNLCK {
			return 0, 0, false, nil
		}
		return lk.Start, lk.Len, true, nil
	})
	if err != nil {
		return 0, err
	}
	return others + len(sf.held), nil
}

func (c *fileCounter) waitZero(ctx context.Context) error { return pollZero(ctx, c.count) }

func (c *fileCounter) remove() error {
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

func (c *fileCounter) close() error {
	var err error
	c.once.Do(func() {
		sharedMu.Lock()
		defer sharedMu.Unlock()
		err = c.sf.unref()
	})
	return err
}

func (c *fileCounter) id() string { return c.path }
