package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/procref/procref/platform"
)

// MaxLog is the size past which a running host rotates its log.
const MaxLog = 8 << 20

// logCap is the host's stderr (its log file) with a size cap.
type logCap struct {
	f    *os.File // the log, opened O_APPEND; the backend writes to it too
	path string
	max  int64

	mu sync.Mutex
}

// CapLog keeps f, the host's log at path, under max bytes while the host
// runs: once it is larger, its content is copied to path+".1" (replacing an
// older copy) and f is truncated, so a log takes at most about twice max
// on disk. Every writer of f opened it O_APPEND (the proxy that started
// the host did), so writes after the truncation start at offset 0. The
// returned writer writes to f and checks after each write; a goroutine
// checks every interval for what the backend writes directly, until ctx
// ends. If f is not the file at path (a host run by hand on a terminal),
// CapLog returns f unchanged.
func CapLog(ctx context.Context, f *os.File, path string, max int64, every time.Duration) io.Writer {
	fi, err := f.Stat()
	pi, perr := os.Stat(path)
	if err != nil || perr != nil || !fi.Mode().IsRegular() || !os.SameFile(fi, pi) {
		return f
	}
	c := &logCap{f: f, path: path, max: max}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.check()
			case <-ctx.Done():
				return
			}
		}
	}()
	return c
}

func (c *logCap) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	c.check()
	return n, err
}

// check rotates the log if it is over the cap. Bytes the backend writes
// between the copy and the truncation are lost (a few at most).
func (c *logCap) check() {
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := c.f.Stat()
	if err != nil || fi.Size() <= c.max {
		return
	}
	if err := copyLog(c.path, fi, c.path+".1"); err != nil {
		fmt.Fprintf(c.f, "procref: could not keep the old log in %s.1: %v\n", c.path, err)
	}
	if err := c.f.Truncate(0); err != nil {
		return
	}
	fmt.Fprintf(c.f, "procref: log rotated at %d bytes; the previous part is in %s.1\n", fi.Size(), c.path)
}

// copyLog copies the log at path, which must still be the file whose
// Stat is fi (the host's own, opened write-only), to to (0600, in the
// same dir), atomically, relative to the log dir's checked handle: the log
// is not opened through a symbolic link, and the rename replaces a link at
// to rather than its target.
func copyLog(path string, fi os.FileInfo, to string) error {
	d, err := platform.OpenPrivateDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	in, err := d.OpenFile(filepath.Base(path), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if ii, err := in.Stat(); err != nil || !os.SameFile(ii, fi) {
		return fmt.Errorf("%s is no longer the host's log", path)
	}
	return d.WriteFrom(filepath.Base(to), io.LimitReader(in, fi.Size()))
}
