package refcount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// lockRetry is how often Lock tries again while another process holds the
// startup lock.
const lockRetry = 5 * time.Millisecond

// lockFile takes the startup lock at path: gofrs/flock's exclusive lock,
// with our checks around it. Before: the file is created 0600 if missing,
// and refused if it is a symbolic link, not a regular file, not ours or not
// 0600 (openPrivate). After: path must still name the file we checked (race:
// it may have been removed, and perhaps recreated, in between; a lock on a
// removed file excludes nobody), else we try again. With wait false it does
// not block (ErrLocked if held); with wait true it retries until ctx is
// done. The holder writes its pid into the file, a hint for Holder.
func lockFile(ctx context.Context, path string, wait bool) (func() error, error) {
	for attempt := 0; ; attempt++ {
		checked, err := privateFileInfo(path)
		if err != nil {
			return nil, err
		}
		fl := flock.New(path, flock.SetPermissions(0o600))
		var ok bool
		if wait {
			ok, err = fl.TryLockContext(ctx, lockRetry)
		} else {
			ok, err = fl.TryLock()
		}
		if err != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !ok {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w (%w)", ErrLocked, ctx.Err())
			}
			return nil, ErrLocked
		}
		if now, err := os.Stat(path); err != nil || !os.SameFile(checked, now) {
			fl.Unlock()
			if attempt < 10 {
				continue
			}
			return nil, fmt.Errorf("lock file %s keeps being replaced", path)
		}
		writeHolder(path, strconv.Itoa(os.Getpid())+"\n")
		return func() error {
			writeHolder(path, "") // clear the hint before unlocking
			return fl.Unlock()
		}, nil
	}
}

// privateFileInfo creates path 0600 if missing and checks it is private.
func privateFileInfo(path string) (os.FileInfo, error) {
	f, err := openPrivate(path, true)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// writeHolder replaces the lock file's content, best effort: it is only a
// hint for Holder (and Windows refuses it where the lock byte is held).
func writeHolder(path, content string) {
	f, err := openPrivate(path, false)
	if err != nil {
		return
	}
	defer f.Close()
	if f.Truncate(0) == nil && content != "" {
		f.WriteAt([]byte(content), 0)
	}
}

// readHolder reads the holder's pid hint; see Lock.Holder.
func readHolder(path string) (int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return 0, nil
	}
	return pid, nil
}
