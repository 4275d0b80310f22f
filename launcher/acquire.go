package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/refcount"
)

// verifyTimeout bounds one dial+handshake against a hint. A live host on
// loopback answers in well under a millisecond; a host that does not answer
// in this time is treated as stale (and, under the lock, replaced).
const verifyTimeout = 2 * time.Second

// newSession is a Session on conn, verified against h.
func newSession(h *discovery.Hint, conn net.Conn, started bool, dir *platform.PrivateDir, release func() error) *Session {
	return &Session{Conn: conn, Started: started, Supervisor: h.Host, Log: h.Log, hint: h, dir: dir, release: release}
}

// connect is the acquirer's startup protocol (see the package doc): take a
// reference, then find the live supervisor or start one under the startup
// lock. It returns a Session owning the reference, or releases it.
func (s *Service) connect(ctx context.Context, verb string) (*Session, error) {
	s = s.resolved()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if os.Getenv(s.env("SUPERVISE")) == s.Name {
		return nil, s.forgotMain()
	}
	dir, err := s.dir()
	if err != nil {
		return nil, err
	}
	// Refused before a reference is taken: the counter of our Key would
	// be a second semaphore set under the other service's name.
	if h, err := discovery.Read(dir, s.Name); err == nil && h.Key != s.Key {
		if _, conn, err := s.tryHint(ctx, dir, handshake.VerbPing); errors.Is(err, ErrNameConflict) {
			return nil, err
		} else if conn != nil {
			conn.Close()
		}
	}
	a := &acquirer{s: s, dir: dir, verb: verb}
	if a.counter, a.release, err = s.reference(dir); err != nil {
		return nil, err
	}
	sess, err := a.run(ctx)
	if err != nil {
		a.release()
		if a.counter != nil {
			a.counter.Close()
		}
		return nil, err
	}
	return sess, nil
}

// conflict is the error for a live service h of s's Name but another Key.
// (Race: one that publishes between connect's check and ours leaves the
// semaphore set of our Key behind; its name's files are not ours to remove.)
func (s *Service) conflict(h *discovery.Hint) error {
	return fmt.Errorf("%w: %s runs with another Key or Version (supervisor pid %d); give each service its own Name, e.g. launcher.Name(base, key), or stop it with RequestStop", ErrNameConflict, s.Name, h.Host.PID)
}

// forgotMain is connect's error in a program re-executed as a supervisor
// that did not call Main; it also tells the acquirer that spawned us at
// once, instead of letting it wait for mainTimeout.
func (s *Service) forgotMain() error {
	err := fmt.Errorf("%w: the program was started as the supervisor of %s but did not call launcher.Main(): call it first thing in main", ErrStartFailed, s.Name)
	if ready := readyFile(s.env("READY_FD")); ready != nil {
		io.WriteString(ready, "error: "+strings.TrimPrefix(err.Error(), ErrStartFailed.Error()+": ")+"\n")
		ready.Close()
	}
	return err
}

// acquirer is one connect call: the reference it holds and where it looks.
type acquirer struct {
	s       *Service
	dir     *platform.PrivateDir
	verb    string
	counter *refcount.Counter
	release func() error // gives the reference back
	busyPID int          // a supervisor without a live hint, seen under the lock
}

// session hands the reference over to a Session on conn.
func (a *acquirer) session(h *discovery.Hint, conn net.Conn, started bool) *Session {
	counter, release := a.counter, a.release
	return newSession(h, conn, started, a.dir, func() error {
		err := release()
		counter.Close()
		return err
	})
}

// lost reports whether our reference was lost with a removed counter,
// and if so takes a fresh one.
//
// Race: a draining supervisor removes the counter (under the startup
// lock) when it saw the count at zero. An acquirer that had opened the
// old counter may add its reference between that count and the removal;
// the reference is then lost with the object, and a supervisor started
// later would not see it and could shut down under us. Any service we
// can verify after that removal was started after it, so checking the
// counter after a successful verification (and, under the lock, before
// one) catches every lost reference; we then take a new one and verify
// again, which the new supervisor's drain re-check will see.
func (a *acquirer) lost() (bool, error) {
	if _, cerr := a.counter.Count(); !errors.Is(cerr, refcount.ErrRemoved) {
		return false, nil
	}
	a.release()
	a.counter.Close()
	c, rel, err := a.s.reference(a.dir)
	if err != nil {
		a.counter, a.release = nil, func() error { return nil }
		return true, err
	}
	a.counter, a.release = c, rel
	return true, nil
}

// found turns a verified live supervisor into a Session, unless our
// reference was lost meanwhile (then nil: look again).
func (a *acquirer) found(h *discovery.Hint, conn net.Conn) (*Session, error) {
	relost, err := a.lost()
	if err != nil || relost {
		conn.Close()
		return nil, err
	}
	return a.session(h, conn, false), nil
}

// run looks for a live supervisor, then takes the startup lock (or finds
// one published while waiting for it) until it has a session.
func (a *acquirer) run(ctx context.Context) (*Session, error) {
	for range 3 { // fast path: a live supervisor
		h, conn, err := a.s.tryHint(ctx, a.dir, a.verb)
		if err != nil {
			break
		}
		if sess, err := a.found(h, conn); sess != nil || err != nil {
			return sess, err
		}
	}
	lock, err := refcount.OpenLock(a.dir, a.s.Name)
	if err != nil {
		return nil, fmt.Errorf("opening startup lock: %w", err)
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		unlock, fh, fconn, err := a.s.lockOrFind(ctx, lock, a.dir, a.verb)
		if err != nil {
			if a.busyPID != 0 {
				return nil, fmt.Errorf("%w (supervisor pid %d of %s has published no hint; if it is stuck, kill it)", err, a.busyPID, a.s.Name)
			}
			return nil, err
		}
		if fconn != nil { // found live while waiting: as on the fast path
			if sess, err := a.found(fh, fconn); sess != nil || err != nil {
				return sess, err
			}
			continue
		}
		sess, again, err := a.locked(ctx, attempt)
		unlock()
		if sess != nil || err != nil || !again {
			return sess, err
		}
	}
}

// locked is run's step under the startup lock: join a supervisor started
// meanwhile, wait for one that is draining or busy (again), or start one.
func (a *acquirer) locked(ctx context.Context, attempt int) (sess *Session, again bool, err error) {
	s := a.s
	// Under the lock no counter is removed, so once we hold a reference
	// on the live one it stays counted (see lost).
	if _, err := a.lost(); err != nil {
		return nil, false, err
	}
	h, conn, herr := s.tryHint(ctx, a.dir, a.verb)
	switch {
	case herr == nil: // someone started it while we waited for the lock
		return a.session(h, conn, false), false, nil
	case errors.Is(herr, ErrNameConflict), errors.Is(herr, platform.ErrInsecureDir):
		return nil, false, herr // the runtime dir failed its check: say so, start nothing
	case errors.Is(herr, handshake.ErrDraining):
		// The supervisor is draining but does not hold the lock yet (it
		// takes it to finish). Let it: come round again.
		if attempt > 200 {
			return nil, false, fmt.Errorf("supervisor of %s keeps draining: %w", s.Name, herr)
		}
		time.Sleep(5 * time.Millisecond)
		return nil, true, nil
	}
	// No live hint. A supervisor may still be alive without one: it is
	// starting but the acquirer that spawned it died before it was ready
	// (so the startup lock was let go early), or it is finishing a drain.
	// Starting another now could run two copies of the service; wait
	// (bounded by ctx) for it to publish or to exit.
	if pid, busy := s.supervisorBusy(a.dir); busy {
		if errors.Is(herr, discovery.ErrNotAFile) {
			// A directory (or link, FIFO) at the hint path: the live
			// supervisor cannot publish there, so waiting cannot help.
			return nil, false, fmt.Errorf("%w; the running supervisor of %s (pid %d) cannot publish its hint until then, and rewrites it within a second after", herr, s.Name, pid)
		}
		a.busyPID = pid
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return nil, false, fmt.Errorf("supervisor of %s (pid %d) is starting or stopping and has published no hint; if it is stuck, kill it: %w", s.Name, pid, err)
		}
		return nil, true, nil
	}
	if !errors.Is(herr, discovery.ErrNoHint) {
		s.logger().Info("replacing stale hint", "service", s.Name, "reason", herr)
	}
	discovery.Remove(a.dir, s.Name, "")
	if err := s.spawn(ctx); err != nil {
		a.release()
		s.removeLeftovers(a.dir, a.counter)
		a.counter, a.release = nil, func() error { return nil }
		return nil, false, err
	}
	h, conn, herr = s.tryHint(ctx, a.dir, a.verb)
	if herr != nil {
		return nil, false, fmt.Errorf("connecting to the new supervisor of %s: %w (log: %s)", s.Name, herr, s.LogPath())
	}
	return a.session(h, conn, true), false, nil
}

// lockOrFind takes the startup lock, or finds the service live while it
// waits for the lock (then it returns the verified hint and connection and
// no unlock). Waiters look at the hint between attempts, so that while one
// acquirer starts the service the others connect as soon as it is published,
// instead of passing the lock along one by one (64 racing acquirers took
// seconds that way). Deciding to start a service still needs the lock.
func (s *Service) lockOrFind(ctx context.Context, lock *refcount.Lock, dir *platform.PrivateDir, verb string) (func() error, *discovery.Hint, net.Conn, error) {
	d := time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		unlock, err := lock.TryLock()
		if err == nil {
			return unlock, nil, nil, nil
		}
		if !errors.Is(err, refcount.ErrLocked) {
			return nil, nil, nil, fmt.Errorf("taking the startup lock of %s: %w", s.Name, err)
		}
		if h, conn, err := s.tryHint(ctx, dir, verb); err == nil {
			return nil, h, conn, nil
		}
		select {
		case <-ctx.Done():
			holder := ""
			if pid, _ := lock.Holder(); pid > 0 {
				holder = fmt.Sprintf(" (held by pid %d)", pid)
			}
			return nil, nil, nil, fmt.Errorf("waiting for the startup lock %s%s: %w", lock.Path(), holder, ctx.Err())
		case <-t.C:
		}
		if d < 20*time.Millisecond {
			d *= 2
		}
		t.Reset(d)
	}
}

// supervisorLockSuffix names the lock a supervisor holds for its whole life:
// <name>.supervisor.lock.
const supervisorLockSuffix = ".supervisor"

// supervisorBusy reports whether some supervisor of s is alive (holds the
// supervisor lock), and its pid if known. The caller holds the startup lock,
// so no new supervisor can take the lock meanwhile.
func (s *Service) supervisorBusy(dir *platform.PrivateDir) (int, bool) {
	l, err := refcount.OpenLock(dir, s.Name+supervisorLockSuffix)
	if err != nil {
		return 0, false // the new supervisor will report it
	}
	release, err := l.TryLock()
	if err == nil {
		release()
		return 0, false
	}
	if !errors.Is(err, refcount.ErrLocked) {
		return 0, false
	}
	pid, _ := l.Holder()
	return pid, true
}

// removeLeftovers removes the reference counter, its registry file and the
// lock files of a service whose start failed, so that nothing is left
// behind. The caller holds the startup lock (unlinking a held lock file is
// safe: a locker checks that the path still names the inode it locked) and
// no reference. A reference taken meanwhile or a live supervisor keeps
// everything: the last one to give up cleans up. It closes counter.
func (s *Service) removeLeftovers(dir *platform.PrivateDir, counter *refcount.Counter) {
	defer counter.Close()
	if _, busy := s.supervisorBusy(dir); busy {
		return
	}
	if n, err := counter.Count(); err != nil || n != 0 {
		return
	}
	if err := counter.Remove(); err != nil {
		s.logger().Warn("removing the reference counter of a failed start", "service", s.Name, "err", err)
		return
	}
	dir.Remove(s.Name + supervisorLockSuffix + ".lock")
	dir.Remove(s.Name + ".lock")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reference opens the counter and takes one reference, reopening once if the
// set was removed between open and acquire (a host finishing its drain).
func (s *Service) reference(dir *platform.PrivateDir) (*refcount.Counter, func() error, error) {
	for i := 0; ; i++ {
		c, err := refcount.Open(s.Name, s.Key, refcount.Options{Dir: dir, Impl: s.Impl})
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

func (s *Service) tryHint(ctx context.Context, dir *platform.PrivateDir, verb string) (*discovery.Hint, net.Conn, error) {
	h, err := discovery.Read(dir, s.Name)
	if err != nil {
		return nil, nil, err
	}
	conn, err := discovery.Verify(ctx, h, verb, verifyTimeout)
	if err != nil {
		return nil, nil, err
	}
	if h.Key != s.Key { // a live service of our Name that is not ours
		conn.Close()
		return nil, nil, s.conflict(h)
	}
	return h, conn, nil
}

// spawn starts the supervisor detached and waits for its ready line. The
// caller holds the startup lock.
func (s *Service) spawn(ctx context.Context) error {
	cmd, err := s.supervisorCommand()
	if err != nil {
		return err
	}
	logDir, err := s.logDir()
	if err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	logPath := filepath.Join(logDir, s.Name+".log")
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
	cmd.Env = append(cmd.Env, s.env("READY_FD")+"=3")
	platform.Detach(cmd)
	err = cmd.Start()
	w.Close() // our copy: EOF on r once the supervisor exits or closes its end
	if err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	pid := cmd.Process.Pid
	id, _ := platform.Lookup(pid)
	// Reap the supervisor if it exits while we live; a detached supervisor
	// that outlives us is reparented to init.
	go cmd.Wait()
	return s.awaitReady(ctx, r, pid, id, logPath)
}

// supervisorCommand is the command that runs the supervisor: Spawn's, or
// this program with the supervise variable set.
func (s *Service) supervisorCommand() (*exec.Cmd, error) {
	var cmd *exec.Cmd
	var err error
	if s.Spawn != nil {
		cmd, err = s.Spawn()
	} else {
		var exe string
		exe, err = os.Executable()
		cmd = exec.Command(exe)
		cmd.Env = append(os.Environ(), s.env("SUPERVISE")+"="+s.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("preparing the supervisor command: %w", err)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	return cmd, nil
}

// awaitReady reads the supervisor's ready pipe r: its "started" line, then
// its result (spawnResult), each within its bound, or until ctx ends.
func (s *Service) awaitReady(ctx context.Context, r io.Reader, pid int, id platform.Identity, logPath string) error {
	timeout := durationOr(s.StartTimeout, 30*time.Second)
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 2)
	go func() {
		br := bufio.NewReader(r)
		for range 2 {
			line, err := br.ReadString('\n')
			ch <- result{strings.TrimSpace(line), err}
			if err != nil {
				return
			}
		}
	}()
	t := time.NewTimer(mainTimeout)
	defer t.Stop()
	started := false
	for {
		select {
		case res := <-ch:
			if res.line == readyStarted && !started {
				started = true
				// The supervisor bounds the start itself (StartTimeout,
				// then hookGrace for a hook that ignores its ctx) and
				// says why it failed; wait a little longer than that.
				t.Reset(timeout + hookGrace + 2*time.Second)
				continue
			}
			return s.spawnResult(res.line, id, logPath)
		case <-t.C:
			if id.PID != 0 {
				id.Stop(2 * time.Second)
			}
			if !started {
				return fmt.Errorf("%w: the supervisor (pid %d) did not start within %v: does the program call launcher.Main() first thing in main? (log: %s)", ErrStartFailed, pid, mainTimeout, logPath)
			}
			return fmt.Errorf("%w: supervisor (pid %d) not ready after %v (log: %s)", ErrStartFailed, pid, timeout, logPath)
		case <-ctx.Done():
			// The supervisor goes on starting for the other acquirers that
			// wait for it; with no reference left it stops by itself.
			return fmt.Errorf("waiting for the supervisor (pid %d) of %s: %w", pid, s.Name, ctx.Err())
		}
	}
}

// readyStarted is the first line a supervisor writes on its ready pipe.
const readyStarted = "started"

// mainTimeout bounds the wait for readyStarted from a program that says
// nothing at all. A program that forgot launcher.Main() but acquires the
// service reports that at once (see connect); this is the fallback, long
// enough for a slow exec on a loaded machine (1 s was not, under -race).
const mainTimeout = 10 * time.Second

// spawnResult turns the supervisor's ready line into spawn's result.
func (s *Service) spawnResult(line string, id platform.Identity, logPath string) error {
	switch {
	case line == "ok":
		return nil
	case strings.HasPrefix(line, "error: "):
		wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		id.Wait(wctx)
		cancel()
		sentinel := ErrStartFailed
		if strings.HasPrefix(line, "error: "+ErrNotRegistered.Error()) {
			sentinel = ErrNotRegistered
		}
		msg := strings.TrimPrefix(strings.TrimPrefix(line, "error: "), sentinel.Error()+": ")
		return fmt.Errorf("%w: %s (log: %s)", sentinel, msg, logPath)
	default:
		if id.PID != 0 {
			id.Stop(2 * time.Second)
		}
		return fmt.Errorf("%w: supervisor (pid %d) exited before it was ready (log: %s)", ErrStartFailed, id.PID, logPath)
	}
}

// maxLog is the size past which a host log is truncated when a new host
// starts, so logs cannot grow without bound.
const maxLog = 8 << 20

// openLog opens (creating it 0600) the host log at path for appending. A
// symbolic link or anything but a regular file there is refused, never
// followed (O_NOFOLLOW; the size check and truncation use the opened
// file): a link planted at the log path must not make the host write, or
// truncate, the file it points to.
func openLog(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		what := "not a regular file"
		if fi.Mode()&os.ModeSymlink != 0 {
			what = "a symbolic link, which procref does not follow"
		}
		return nil, fmt.Errorf("the log %s is %s: remove it (`rm %s`)", path, what, path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|platform.ONoFollow, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file: remove it (`rm %s`)", path, path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() > maxLog {
		f.Truncate(0)
	}
	return f, nil
}

// readyFile returns the ready pipe inherited as the descriptor named by the
// environment variable env, or nil.
func readyFile(env string) *os.File {
	v := os.Getenv(env)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	os.Unsetenv(env)
	return os.NewFile(uintptr(fd), "ready")
}
