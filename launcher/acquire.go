package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/handshake"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/refcount"
)

// verifyTimeout bounds one dial+handshake against a hint. A live host on
// loopback answers in well under a millisecond; a host that does not answer
// in this time is treated as stale (and, under the lock, replaced).
const verifyTimeout = 2 * time.Second

// connect is the acquirer's startup protocol (see the package doc).
func (s *Service) connect(ctx context.Context, verb string) (*Session, error) {
	dir := s.dir()
	if err := platform.EnsurePrivateDir(dir); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	counter, release, err := s.reference()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			release()
			counter.Close()
		}
	}()
	closeAll := func() error {
		err := release()
		counter.Close()
		return err
	}

	// Fast path: a live host.
	if h, conn, err := s.tryHint(ctx, verb); err == nil {
		ok = true
		return &Session{Hint: h, Conn: conn, release: closeAll}, nil
	}

	lock, err := refcount.OpenLock(dir, s.Name)
	if err != nil {
		return nil, fmt.Errorf("opening startup lock: %w", err)
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		unlock, err := lock.Lock(ctx)
		if err != nil {
			return nil, fmt.Errorf("waiting for the startup lock of %s: %w", s.Name, err)
		}
		// Someone may have started it while we waited for the lock.
		h, conn, herr := s.tryHint(ctx, verb)
		if herr == nil {
			unlock()
			ok = true
			return &Session{Hint: h, Conn: conn, release: closeAll}, nil
		}
		if errors.Is(herr, handshake.ErrDraining) {
			// The host is draining but does not hold the lock yet (it takes
			// it to finish). Let it: release and come round again.
			unlock()
			if attempt > 200 {
				return nil, fmt.Errorf("host of %s keeps draining: %w", s.Name, herr)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		// A draining host that finished may have removed our semaphore set
		// (it does so only when the count was zero, i.e. before our
		// reference landed on it). Take a fresh reference on the new set.
		if _, cerr := counter.Count(); errors.Is(cerr, refcount.ErrRemoved) {
			release()
			counter.Close()
			counter, release, err = s.reference()
			if err != nil {
				unlock()
				return nil, err
			}
		}
		if herr != nil && !errors.Is(herr, discovery.ErrNoHint) {
			s.logger().Info("replacing stale hint", "service", s.Name, "reason", herr)
		}
		discovery.Remove(dir, s.Name, "")
		serr := s.spawn(ctx)
		if serr != nil {
			unlock()
			return nil, serr
		}
		h, conn, herr = s.tryHint(ctx, verb)
		unlock()
		if herr != nil {
			return nil, fmt.Errorf("connecting to the new host of %s: %w (log: %s)", s.Name, herr, s.LogPath())
		}
		ok = true
		return &Session{Hint: h, Conn: conn, Started: true, release: closeAll}, nil
	}
}

// reference opens the counter and takes one reference, reopening once if the
// set was removed between open and acquire (a host finishing its drain).
func (s *Service) reference() (*refcount.Counter, func() error, error) {
	for i := 0; ; i++ {
		c, err := refcount.Open(s.Name, s.Key, refcount.Options{Dir: s.dir(), Impl: s.Impl})
		if err != nil {
			return nil, nil, fmt.Errorf("opening reference count: %w", err)
		}
		rel, err := c.Acquire()
		if err == nil {
			return c, rel, nil
		}
		c.Close()
		if !errors.Is(err, refcount.ErrRemoved) || i >= 3 {
			return nil, nil, fmt.Errorf("taking reference: %w", err)
		}
	}
}

func (s *Service) tryHint(ctx context.Context, verb string) (*discovery.Hint, net.Conn, error) {
	h, err := discovery.Read(s.dir(), s.Name)
	if err != nil {
		return nil, nil, err
	}
	conn, err := discovery.Verify(ctx, h, verb, verifyTimeout)
	if err != nil {
		return nil, nil, err
	}
	return h, conn, nil
}

// spawn starts the supervisor detached and waits for its ready line. The
// caller holds the startup lock.
func (s *Service) spawn(ctx context.Context) error {
	var cmd *exec.Cmd
	var err error
	if s.Spawn != nil {
		cmd, err = s.Spawn()
	} else {
		var exe string
		exe, err = os.Executable()
		cmd = exec.Command(exe)
		cmd.Env = append(os.Environ(), EnvSupervise+"="+s.Name)
	}
	if err != nil {
		return fmt.Errorf("preparing host command: %w", err)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	logPath := s.LogPath()
	logf, err := openLog(logPath)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("creating ready pipe: %w", err)
	}
	defer r.Close()
	cmd.Stdin = devnull
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = append([]*os.File{w}, cmd.ExtraFiles...)
	cmd.Env = append(cmd.Env, EnvReadyFD+"=3")
	platform.Detach(cmd)
	err = cmd.Start()
	w.Close() // our copy: EOF on r once the supervisor exits or closes its end
	if err != nil {
		return fmt.Errorf("starting host: %w", err)
	}
	pid := cmd.Process.Pid
	id, _ := platform.Lookup(pid)
	// Reap the supervisor if it exits while we live; a detached supervisor
	// that outlives us is reparented to init.
	go cmd.Wait()

	timeout := durationOr(s.StartTimeout, 30*time.Second)
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	kill := func() {
		if id.PID != 0 {
			id.Stop(2 * time.Second)
		}
	}
	select {
	case res := <-ch:
		switch {
		case res.line == "ok":
			return nil
		case strings.HasPrefix(res.line, "error: "):
			wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			id.Wait(wctx)
			cancel()
			return fmt.Errorf("%w: %s (log: %s)", ErrStartFailed, strings.TrimPrefix(res.line, "error: "), logPath)
		default:
			kill()
			return fmt.Errorf("%w: host (pid %d) exited before it was ready (log: %s)", ErrStartFailed, pid, logPath)
		}
	case <-t.C:
		kill()
		r.Close()
		return fmt.Errorf("%w: host (pid %d) not ready after %v (log: %s)", ErrStartFailed, pid, timeout, logPath)
	case <-ctx.Done():
		kill()
		r.Close()
		return fmt.Errorf("waiting for host (pid %d): %w", pid, ctx.Err())
	}
}

// maxLog is the size past which a host log is truncated when a new host
// starts, so logs cannot grow without bound.
const maxLog = 8 << 20

func openLog(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLog {
		os.Truncate(path, 0)
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// readyFile returns the inherited ready pipe, or nil.
func readyFile() *os.File {
	v := os.Getenv(EnvReadyFD)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	os.Unsetenv(EnvReadyFD)
	return os.NewFile(uintptr(fd), "ready")
}
