package refcount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/platform"
)

// lockRetry is how often Lock tries again while another process holds the
// startup lock.
const lockRetry = 5 * time.Millisecond

// lockFile takes the startup lock on name in d: the exclusive lock
// gofrs/flock takes (flock(2) on unix, LockFileEx on Windows), on a file we
// opened relative to the dir's handle (gofrs/flock only locks by path, so
// tryFlock applies the same call to our descriptor). Before: the file is
// created 0600 if missing, and refused if it is a symbolic link, not a
// regular file, not ours or not 0600 (openPrivate). After: name must still
// name the file we locked (race: it may have been removed, and perhaps
// recreated, in between; a lock on a removed file excludes nobody), else
// we try again. With wait false it does not block (ErrLocked if held); with
// wait true it retries every lockRetry until ctx is done. The holder writes
// its pid into the file, a hint for Holder.
func lockFile(ctx context.Context, d *platform.PrivateDir, name string, wait bool) (func() error, error) {
	path := filepath.Join(d.Path(), name)
	for attempt := 0; ; attempt++ {
		f, err := openPrivate(d, name, true)
		if err != nil {
			return nil, err
		}
		ok, err := tryFlockUntil(ctx, f, wait)
		if err != nil && ctx.Err() == nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !ok {
			f.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w (%w)", ErrLocked, ctx.Err())
			}
			return nil, ErrLocked
		}
		locked, err1 := f.Stat()
		now, err2 := d.Stat(name)
		if err1 != nil || err2 != nil || !platform.SameFile(locked, now) {
			unflock(f)
			f.Close()
			if attempt < 10 {
				continue
			}
			return nil, fmt.Errorf("lock file %s keeps being replaced", path)
		}
		writeHolder(f, strconv.Itoa(os.Getpid())+"\n")
		return func() error {
			writeHolder(f, "") // clear the hint before unlocking
			err := unflock(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}, nil
	}
}

// tryFlockUntil tries tryFlock once, or with wait every lockRetry until it
// succeeds or ctx is done (a flock cannot be cancelled, so it never
// blocks in the kernel).
func tryFlockUntil(ctx context.Context, f *os.File, wait bool) (bool, error) {
	t := time.NewTicker(lockRetry)
	defer t.Stop()
	for {
		ok, err := tryFlock(f)
		if ok || err != nil || !wait {
			return ok, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

// writeHolder replaces the lock file's content through the locked file,
// best effort: it is only a hint for Holder.
func writeHolder(f *os.File, content string) {
	if f.Truncate(0) == nil && content != "" {
		f.WriteAt([]byte(content), 0)
	}
}

// readHolder reads the holder's pid hint from name in d; see Lock.Holder.
func readHolder(d *platform.PrivateDir, name string) (int, error) {
	f, err := openPrivate(d, name, false)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return 0, nil
	}
	return pid, nil
}
