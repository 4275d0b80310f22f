package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/restarts"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/refcount"
)

// handshakeTimeout bounds how long a connection may take to say its
// handshake line before the supervisor drops it.
const handshakeTimeout = 5 * time.Second

// supervisor is the state of one running supervisor.
type supervisor struct {
	s       *Service
	log     *slog.Logger
	dir     *platform.PrivateDir
	counter *refcount.Counter
	lock    *refcount.Lock
	ln      net.Listener
	guard   *handshake.Guard // bounds and summarises unauthenticated connections
	token   string
	nonce   string
	started time.Time

	mu    sync.Mutex
	conns int // live session connections
	// visits counts authenticated handshakes: every Acquire and Attach
	// makes one, so a user that came and went between two looks of the
	// linger still restarts it.
	visits   uint64
	draining bool // set under mu, once
	info     Info
	changed  chan struct{} // closed and replaced whenever conns changes
	stopReq  chan struct{} // closed by a "stop" request
	stopOnce sync.Once
	// hookMu serialises the hooks: they run one at a time.
	hookMu sync.Mutex
	// hintMu makes publishing the hint and giving it up at a drain one
	// step each (publish, drain).
	hintMu sync.Mutex
	// svcCtx is the ctx every start hook gets; see Supervise. svcCancel
	// cancels it.
	svcCtx    context.Context
	svcCancel context.CancelFunc
	// healthBudget bounds health-triggered restarts (under mu).
	healthBudget *restarts.Budget
	// stuck names the hook the supervisor gave up on (set by abandon).
	stuck string
	// term is closed on SIGTERM or SIGINT: a running hook gets hookGrace.
	term     chan struct{}
	termOnce sync.Once
	// releaseSup lets go of the supervisor lock (idempotent).
	releaseSup func() error
	hint       discovery.Hint
	wg         sync.WaitGroup
}

// Supervise runs the supervisor of s in this process and returns when the
// service has been shut down (nil), or failed to start. It is what [Main]
// runs; the procref host calls it directly. If the process was started with
// a ready pipe (PROCREF_READY_FD), Supervise writes "ok" or "error: ..." to
// it once the hint is published or starting failed.
//
// SIGTERM and SIGINT make it shut down as if the count had reached zero.
func Supervise(ctx context.Context, s *Service) (err error) {
	ready := readyFile(s.env("READY_FD"))
	if ready != nil {
		// Tells the acquirer that Main (or Supervise) runs: a program that
		// forgot launcher.Main() never writes it.
		io.WriteString(ready, readyStarted+"\n")
	}
	signalReady := func(line string) {
		if ready != nil {
			io.WriteString(ready, line+"\n") // EPIPE if the acquirer died: fine
			ready.Close()
			ready = nil
		}
	}
	defer func() {
		if err != nil {
			signalReady("error: " + oneLine(err.Error()))
		}
	}()
	s = s.resolved()
	if err := s.Validate(); err != nil {
		return err
	}
	dir, err := s.dir()
	if err != nil {
		return err
	}
	log := s.logger().With("service", s.Name)
	sv := &supervisor{
		s:       s,
		log:     log,
		guard:   handshake.NewGuard(log),
		dir:     dir,
		token:   handshake.NewSecret(),
		nonce:   handshake.NewSecret(),
		started: time.Now(),
		changed: make(chan struct{}),
		stopReq: make(chan struct{}),
		term:    make(chan struct{}),
	}
	// Registered after signalReady's defer, so it runs before it: a stuck
	// supervisor's ready line must be written before endOwnGroup kills it.
	defer sv.finish(&err, signalReady)
	releaseSup, err := sv.lockSupervisor()
	if errors.Is(err, errJoined) {
		signalReady("ok") // our acquirer finds the live one's hint
		return nil
	}
	if err != nil {
		return err
	}
	defer releaseSup()
	sv.releaseSup = releaseSup

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	defer signal.Stop(sigs)

	// The hooks' ctx lives as long as the service: a child started with
	// exec.CommandContext(ctx, ...) must outlive the hook that started it.
	// It is cancelled when the supervisor ends (after OnLastRelease), and
	// by StartTimeout while OnFirstAcquire has not returned.
	svcCtx, svcCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer svcCancel()
	go sv.watchSignals(ctx, sigs)
	setupErr, startErr := sv.start(svcCtx, svcCancel, sigs)
	if err := setupErr; err != nil {
		if startErr == nil {
			sv.stopService(ctx)
		}
		return err
	}
	defer sv.counter.Close()
	defer sv.ln.Close()
	if startErr != nil {
		sv.removeLeftovers()
		return fmt.Errorf("starting service: %w", startErr)
	}
	go sv.stopOn(ctx)
	sv.hint.Mode, sv.hint.Command, sv.hint.Root = s.About.Mode, s.About.Command, s.About.Root
	sv.hint.Dir, sv.hint.Identity = s.About.Dir, s.About.Identity
	if err := sv.publish(); err != nil {
		sv.stopService(ctx)
		return err
	}
	sv.wg.Add(1)
	go sv.acceptLoop(ctx)
	signalReady("ok")
	sv.log.Info("ready", "pid", os.Getpid(), "transport", sv.hint.Transport(), "info", sv.info)
	sv.serve(ctx)
	cancel()
	sv.ln.Close()
	sv.wg.Wait()
	sv.guard.Flush()
	sv.log.Info("stopped")
	return nil
}

// errJoined is lockSupervisor's answer when another supervisor of the
// service published a live hint while we waited for its lock: our acquirer
// joins that one.
var errJoined = errors.New("another supervisor is live: joined it")

// lockSupervisor takes the supervisor lock, held for the supervisor's whole
// life, from before OnFirstAcquire until after OnLastRelease (see
// supervisorBusy). It is the only thing OnFirstAcquire must wait for: the
// service is started only by the one supervisor that holds it.
//
// Race (issue 24 item 5): an acquirer spawns a supervisor and is killed
// before that one took this lock; the startup lock dies with it, the next
// acquirer finds no supervisor busy and spawns a second. Whichever loses
// here waits (bounded by StartTimeout and hookGrace) for the winner: it
// takes over if the winner exits without publishing, and it returns
// errJoined once the winner's hint verifies, so that its acquirer joins
// the winner. Never "another supervisor is running".
func (sv *supervisor) lockSupervisor() (func() error, error) {
	supLock, err := refcount.OpenLock(sv.dir, sv.s.Name+supervisorLockSuffix)
	if err != nil {
		return nil, fmt.Errorf("opening supervisor lock: %w", err)
	}
	deadline := time.Now().Add(durationOr(sv.s.StartTimeout, 30*time.Second) + hookGrace)
	for {
		release, err := supLock.TryLock()
		if err == nil {
			return release, nil
		}
		if !errors.Is(err, refcount.ErrLocked) {
			return nil, fmt.Errorf("taking supervisor lock: %w", err)
		}
		if h, err := discovery.Read(sv.dir, sv.s.Name); err == nil && h.Key == sv.s.Key {
			if conn, err := discovery.Verify(context.Background(), h, handshake.VerbPing, verifyTimeout); err == nil {
				conn.Close()
				return nil, errJoined
			}
		}
		if time.Now().After(deadline) {
			pid, _ := supLock.Holder()
			return nil, fmt.Errorf("another supervisor of %s (pid %d) neither published its hint nor exited: %w", sv.s.Name, pid, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchSignals closes sv.term on the first SIGTERM or SIGINT and asks for
// a shutdown; it runs from the start, so that a signal also ends a hook that
// hangs (runHook) and the start itself. It returns when ctx is done.
func (sv *supervisor) watchSignals(ctx context.Context, sigs <-chan os.Signal) {
	select {
	case sig := <-sigs:
		sv.log.Info("signal: shutting down", "signal", sig.String())
		sv.termOnce.Do(func() { close(sv.term) })
		sv.requestStop()
	case <-ctx.Done():
	}
}

// stopOn asks for a shutdown when the service's Done is closed; it returns
// when ctx is done.
func (sv *supervisor) stopOn(ctx context.Context) {
	select {
	case <-sv.s.Done: // nil: never
		sv.log.Info("service ended: shutting down")
		sv.requestStop()
	case <-ctx.Done():
	}
}

// serve runs the live service's watchers (health, the service's own exit,
// the hint) and returns once it has been shut down.
func (sv *supervisor) serve(ctx context.Context) {
	if sv.s.Hooks.OnHealthCheck != nil && sv.s.HealthInterval >= 0 {
		go sv.healthLoop(ctx, durationOr(sv.s.HealthInterval, 10*time.Second))
	}
	go sv.watchService(ctx)
	go sv.keepHint(ctx, hintCheckInterval)
	sv.waitForShutdown(ctx)
}

// start runs OnFirstAcquire with svcCtx (cancelled by svcCancel on a
// StartTimeout overrun or a failed setup) while a goroutine registers sigs
// and opens the counter, the startup lock and the listener (sv.open). It
// returns the setup's error and the hook's.
func (sv *supervisor) start(svcCtx context.Context, svcCancel context.CancelFunc, sigs chan os.Signal) (setupErr, startErr error) {
	// Start the service first, and open the counter, the startup lock and
	// the listener meanwhile: the service's start is the longest part of a
	// cold attach and needs none of them. The hook runs on this goroutine so
	// that it starts at once; the setup goroutine runs while the hook waits
	// (spawning a process, polling it). Nobody can reach this supervisor
	// before the hint is published below, after both are done.
	sv.svcCtx, sv.svcCancel = svcCtx, svcCancel
	startTimeout := durationOr(sv.s.StartTimeout, 30*time.Second)
	setupDone := make(chan error, 1)
	go func() {
		// signal.Notify costs a millisecond the first time (it starts the
		// signal-handling thread): here, not before the hook. A SIGTERM
		// before it kills the supervisor, and its service with it
		// (platform.BindToParent); the acquirer reports the early exit.
		signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
		err := sv.open()
		if err != nil {
			svcCancel() // no use waiting for the service
		}
		setupDone <- err
	}()
	if sv.s.Hooks.OnFirstAcquire != nil {
		sv.hookMu.Lock()
		var info Info
		var err error
		herr := sv.runHook("OnFirstAcquire", startTimeout, svcCancel, func() {
			info, err = sv.s.Hooks.OnFirstAcquire(svcCtx)
		})
		// info and err are read only once the hook has returned in time
		// (runHook then saw done closed); a stuck hook may still write them.
		if herr == nil {
			sv.mu.Lock()
			sv.info = info
			sv.mu.Unlock()
			startErr = err
		} else if errors.Is(herr, errHookLate) && err != nil {
			// It returned its own error once its ctx was cancelled: that
			// error says what went wrong (e.g. a child that never listened).
			startErr = fmt.Errorf("%w (%v)", err, herr)
		} else {
			startErr = fmt.Errorf("%w; raise Service.StartTimeout or make the hook return when its ctx is done", herr)
		}
		late := errors.Is(herr, errHookLate) && err == nil // returned, so readable
		if late {
			sv.mu.Lock()
			sv.info = info
			sv.mu.Unlock()
		}
		sv.hookMu.Unlock()
		if late {
			// It started the service after all, too late: stop it.
			sv.stopService(context.Background())
		}
	}
	select {
	case <-sv.term:
		if startErr == nil {
			startErr = errors.New("stopped by a signal while starting")
		}
	default:
	}
	return <-setupDone, startErr
}

// removeLeftovers removes the counter and lock files after a failed start
// when no acquirer is left to do it (one that still waits holds the startup
// lock and cleans up itself once we exit; see Service.removeLeftovers).
func (sv *supervisor) removeLeftovers() {
	unlock, err := sv.lock.TryLock()
	if err != nil {
		return
	}
	defer unlock()
	if n, err := sv.counter.Count(); err != nil || n != 0 {
		return
	}
	if err := sv.counter.Remove(); err != nil {
		sv.log.Warn("removing the reference counter of a failed start", "err", err)
		return
	}
	sv.dir.Remove(sv.s.Name + supervisorLockSuffix + ".lock")
	sv.dir.Remove(sv.s.Name + ".lock")
}

// open opens the reference counter, the startup lock and the listener, and
// fills in the hint but for the service's info. On error it closes what it
// opened.
func (sv *supervisor) open() error {
	var err error
	sv.counter, err = refcount.Open(sv.s.Name, sv.s.Key, refcount.Options{Dir: sv.dir, Impl: sv.s.Impl})
	if err != nil {
		return fmt.Errorf("opening reference count: %w", err)
	}
	sv.lock, err = refcount.OpenLock(sv.dir, sv.s.Name)
	if err != nil {
		sv.counter.Close()
		return fmt.Errorf("opening startup lock: %w", err)
	}
	removeDeadSockets(sv.dir, sv.s.Name, sv.log)
	var socket string
	sv.ln, socket, err = listenHost(sv.dir, sv.s.Name, sv.log)
	if err != nil {
		sv.counter.Close()
		return err
	}
	port := 0
	if a, ok := sv.ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	sv.hint = discovery.Hint{
		Name:      sv.s.Name,
		Key:       sv.s.Key,
		Host:      platform.Self(),
		Socket:    socket,
		Port:      port,
		Token:     sv.token,
		Nonce:     sv.nonce,
		Log:       sv.s.LogPath(),
		StartedAt: sv.started.UTC(),
	}
	return nil
}

// MaxInfoSize bounds the JSON of a service's [Info]: it is published in
// the hint file, which discovery.MaxHintSize (64 KiB) bounds with the
// rest of the hint. A start (or recovery) whose Info is larger fails with
// a clear error instead of publishing a hint nobody can read.
const MaxInfoSize = 56 << 10

// The hint's own fields need about 8 KiB beside Info: a compile error here
// means MaxInfoSize no longer fits in a hint.
const _ = uint(discovery.MaxHintSize - 8<<10 - MaxInfoSize)

// publish writes the hint with the current info.
//
// Known race, answered here: a recovery (OnRecover) that ends after a
// drain gave the hint up would publish it again, and the supervisor then
// exits leaving a hint that names it. publish checks draining and writes
// under hintMu, which the drain holds while it removes the hint, so the
// hint is either written before the removal or not at all.
func (sv *supervisor) publish() error {
	sv.hintMu.Lock()
	defer sv.hintMu.Unlock()
	sv.mu.Lock()
	if sv.draining {
		sv.mu.Unlock()
		return nil
	}
	b, _ := json.Marshal(sv.info)
	if len(b) > MaxInfoSize {
		sv.mu.Unlock()
		return fmt.Errorf("the service's Info is %d bytes as JSON, over the limit of %d: keep Info.Data small (put large data in a file and its path in Data)", len(b), MaxInfoSize)
	}
	sv.hint.Info = b
	if sv.info.PID > 0 {
		sv.hint.Backend, _ = serviceIdentity(sv.info)
	}
	h := sv.hint
	sv.mu.Unlock()
	if err := discovery.Write(sv.dir, &h); err != nil {
		return fmt.Errorf("publishing hint: %w", err)
	}
	return nil
}

func (sv *supervisor) requestStop() {
	sv.stopOnce.Do(func() { close(sv.stopReq) })
}

func (sv *supervisor) acceptLoop(ctx context.Context) {
	defer sv.wg.Done()
	for {
		conn, err := sv.guard.Accept(ctx, sv.ln)
		if err != nil {
			return // closed
		}
		sv.wg.Add(1)
		go func() {
			defer sv.wg.Done()
			sv.handle(ctx, conn)
		}()
	}
}

// handle authenticates one connection and serves it.
func (sv *supervisor) handle(ctx context.Context, conn net.Conn) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	var req handshake.Request
	// On the unix socket the kernel says who connected: only our uid gets
	// to say a token (CheckPeer is a no-op on TCP and where the OS has no
	// peer credentials).
	err := platform.CheckPeer(conn, 0)
	if err == nil {
		req, err = handshake.ReadRequest(conn, sv.token)
	}
	sv.guard.Done(conn, err) // a refusal is counted in the guard's summary
	if err != nil {
		// Wrong token or not a handshake: close without a byte.
		conn.Close()
		return
	}
	sv.mu.Lock()
	sv.visits++
	sv.mu.Unlock()
	conn.SetDeadline(time.Time{})
	switch req.Verb {
	case handshake.VerbSession:
		sv.mu.Lock()
		if sv.draining {
			sv.mu.Unlock()
			handshake.Refuse(conn, true)
			conn.Close()
			return
		}
		// Counted before "ok" is sent, under mu: the drain decision (also
		// under mu) can never miss a session that was told "ok".
		sv.conns++
		sv.notifyLocked()
		sv.mu.Unlock()
		defer func() {
			sv.mu.Lock()
			sv.conns--
			sv.notifyLocked()
			sv.mu.Unlock()
		}()
		if err := handshake.Accept(conn, sv.nonce); err != nil {
			conn.Close()
			return
		}
		// A forced shutdown (stop request, signal) must not wait for
		// sessions to end by themselves: Supervise waits for every handler.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		if sv.s.Serve == nil {
			io.Copy(io.Discard, conn)
			conn.Close()
			return
		}
		sv.serveConn(ctx, conn, Peer{PID: req.PID})
	case handshake.VerbPing, handshake.VerbCheck, handshake.VerbStatus, handshake.VerbStop:
		sv.mu.Lock()
		draining := sv.draining
		sv.mu.Unlock()
		if draining {
			handshake.Refuse(conn, true)
			conn.Close()
			return
		}
		if req.Verb == handshake.VerbCheck {
			sv.check(ctx, errors.New("an acquirer's health check failed"))
		}
		if err := handshake.Accept(conn, sv.nonce); err == nil {
			switch req.Verb {
			case handshake.VerbStatus:
				json.NewEncoder(conn).Encode(sv.status())
			case handshake.VerbStop:
				sv.log.Info("stop requested", "by_pid", req.PID)
				sv.requestStop()
			}
		}
		conn.Close()
	default:
		handshake.Refuse(conn, false)
		conn.Close()
	}
}

// serveConn runs Serve for one session. A panic in it ends only this
// connection (logged with its stack), never the supervisor and every other
// session with it.
func (sv *supervisor) serveConn(ctx context.Context, conn net.Conn, peer Peer) {
	defer func() {
		if r := recover(); r != nil {
			sv.log.Error("Serve panicked: closing this connection only", "peer_pid", peer.PID, "value", fmt.Sprint(r), "stack", string(debug.Stack()))
			conn.Close()
		}
	}()
	sv.s.Serve(ctx, conn, peer)
}

// Status is the supervisor's answer to a status request.
type Status struct {
	PID  int `json:"pid"`
	Port int `json:"port"`
	// Transport is how the host is reached: "unix PATH" or
	// "tcp 127.0.0.1:PORT (fallback)".
	Transport string         `json:"transport,omitempty"`
	Clients   int            `json:"clients"`
	Count     int            `json:"count"`
	Uptime    float64        `json:"uptime_seconds"`
	Info      Info           `json:"info"`
	Extra     map[string]any `json:"extra,omitempty"`
}

func (sv *supervisor) status() Status {
	sv.mu.Lock()
	st := Status{PID: os.Getpid(), Port: sv.hint.Port, Transport: sv.hint.Transport(), Clients: sv.conns, Info: sv.info, Uptime: time.Since(sv.started).Seconds()}
	sv.mu.Unlock()
	st.Count, _ = sv.counter.Count()
	if sv.s.Status != nil {
		st.Extra = sv.s.Status()
	}
	return st
}

// QueryStatus asks the running supervisor of s for its status, without
// taking a reference or starting anything. Only Name and Dir of s are used.
// It blocks at most until ctx is done (and 2 s per step). An error wraps
// [ErrNotRunning] when no supervisor runs, and [ErrDraining] when one is
// stopping (also after a stuck hook, see [ErrHookStuck]) or still starting.
func (s *Service) QueryStatus(ctx context.Context) (Status, error) {
	var st Status
	conn, err := s.dialRunning(ctx, handshake.VerbStatus)
	if err != nil {
		return st, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	err = json.NewDecoder(conn).Decode(&st)
	return st, err
}

// RequestStop asks the running supervisor of s to stop the service now,
// whoever holds references (they find it gone: [Handle.Done]), and blocks
// until that supervisor process has exited or ctx is done (the error is
// then ctx's). Only Name and Dir of s are used. An error wrapping
// [ErrDraining] means it is stopping already, one wrapping
// [ErrNotRunning] that none runs.
func (s *Service) RequestStop(ctx context.Context) error {
	conn, host, err := s.dialSupervisor(ctx, handshake.VerbStop)
	if err != nil {
		return err
	}
	conn.Close()
	if err := host.Wait(ctx); err != nil {
		return fmt.Errorf("%s: waiting for supervisor pid %d to stop: %w", s.Name, host.PID, err)
	}
	return nil
}

// dialRunning connects to the live supervisor of s with verb.
func (s *Service) dialRunning(ctx context.Context, verb string) (net.Conn, error) {
	conn, _, err := s.dialSupervisor(ctx, verb)
	return conn, err
}

// dialSupervisor is dialRunning that also returns the supervisor's
// identity.
func (s *Service) dialSupervisor(ctx context.Context, verb string) (net.Conn, platform.Identity, error) {
	s = s.resolved()
	dir, err := s.dir()
	if err != nil {
		return nil, platform.Identity{}, err
	}
	h, err := discovery.Read(dir, s.Name)
	if err != nil {
		// No hint, but a supervisor that holds its lock: one still
		// starting, or one stopping (its drain removes the hint first,
		// and a stuck hook's is a drain too).
		if pid, busy := s.supervisorHeld(dir); busy {
			return nil, platform.Identity{}, fmt.Errorf("%s: %w or starting (supervisor pid %d has no hint published)", s.Name, ErrDraining, pid)
		}
		return nil, platform.Identity{}, fmt.Errorf("%w: %s (%w)", ErrNotRunning, s.Name, err)
	}
	conn, err := discovery.Verify(ctx, h, verb, 2*time.Second)
	if errors.Is(err, handshake.ErrDraining) {
		return nil, platform.Identity{}, fmt.Errorf("%s: %w (%w)", s.Name, ErrDraining, err)
	}
	return conn, h.Host, err
}

// supervisorHeld is supervisorBusy for a probe that holds no startup
// lock: it removes the lock file it finds free (holding it, which is safe,
// see removeCounter), so that a status or stop request never leaves one
// behind a supervisor that has just removed its files.
func (s *Service) supervisorHeld(dir *platform.PrivateDir) (int, bool) {
	file := s.Name + supervisorLockSuffix + ".lock"
	if _, err := dir.Stat(file); err != nil {
		return 0, false
	}
	l, err := refcount.OpenLock(dir, s.Name+supervisorLockSuffix)
	if err != nil {
		return 0, false
	}
	release, err := l.TryLock()
	if err == nil {
		dir.Remove(file)
		release()
		return 0, false
	}
	pid, _ := l.Holder()
	return pid, errors.Is(err, refcount.ErrLocked)
}

func (sv *supervisor) notifyLocked() {
	close(sv.changed)
	sv.changed = make(chan struct{})
}

// waitForShutdown returns once the service has been stopped.
//
// A watcher goroutine blocks in the kernel's wait-for-zero and reports each
// zero it sees, then waits to be re-armed. The loop re-arms it after every
// drain attempt that found a user. (Race: the count can go 0 -> 1 -> 0
// between two looks; a watcher that first waited to see the count non-zero
// again could miss such a blip and the service would never stop. Re-arming
// a wait-for-zero cannot miss it: it returns at once if the count is zero.)
func (sv *supervisor) waitForShutdown(ctx context.Context) {
	zero := make(chan error, 1)
	rearm := make(chan struct{}, 1)
	wctx, wcancel := context.WithCancel(ctx)
	watcherDone := make(chan struct{})
	defer func() {
		wcancel()
		<-watcherDone
	}()
	go func() {
		defer close(watcherDone)
		for {
			err := sv.counter.WaitZero(wctx)
			if wctx.Err() != nil {
				return
			}
			select {
			case zero <- err:
			case <-wctx.Done():
				return
			}
			if err != nil {
				return // no kernel count any more; see below
			}
			select {
			case <-rearm:
			case <-wctx.Done():
				return
			}
		}
	}()
	kernelZero, kernelGone := false, false
	for {
		sv.mu.Lock()
		conns, changed := sv.conns, sv.changed
		sv.mu.Unlock()
		if (kernelZero || kernelGone) && conns == 0 {
			if sv.tryDrain(ctx) {
				return
			}
			if kernelZero {
				kernelZero = false
				select {
				case rearm <- struct{}{}:
				default:
				}
			}
		}
		select {
		case err := <-zero:
			if err != nil {
				// The semaphore set was removed under us (e.g. logind's
				// RemoveIPC at logout) or cannot be waited on. Fall back to
				// the connection count.
				kernelGone = true
				sv.log.Warn("reference counter unusable; falling back to the connection count", "err", err)
			} else {
				kernelZero = true
			}
		case <-changed:
		case <-sv.stopReq:
			sv.drain(ctx, true)
			return
		case <-ctx.Done():
			sv.drain(context.Background(), true)
			return
		}
	}
}

// tryDrain applies the linger and the drain protocol. It returns true if
// the service was stopped, false if a user arrived meanwhile.
//
// The linger is an idle timer: it starts again whenever a user came (a
// handshake), also one that came and went between two looks, so a program
// that calls more often than the linger keeps one service.
func (sv *supervisor) tryDrain(ctx context.Context) bool {
	if sv.s.Linger > 0 {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		seen := sv.visited()
		deadline := time.Now().Add(sv.s.Linger)
		for time.Now().Before(deadline) {
			select {
			case <-t.C:
			case <-sv.stopReq:
				return sv.drain(ctx, true)
			case <-ctx.Done():
				return sv.drain(context.WithoutCancel(ctx), true)
			}
			if !sv.idle() {
				return false
			}
			if v := sv.visited(); v != seen {
				seen, deadline = v, time.Now().Add(sv.s.Linger)
			}
		}
	}
	return sv.drain(ctx, false)
}

func (sv *supervisor) visited() uint64 {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.visits
}

func (sv *supervisor) idle() bool {
	n, err := sv.counter.Count()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if err != nil && !errors.Is(err, refcount.ErrRemoved) {
		return false
	}
	return n == 0 && sv.conns == 0
}

// drain stops the service under the startup lock. Unless force, it first
// re-checks that nobody holds a reference or a session; if someone does it
// returns false and the service keeps running.
//
// Race: an acquirer may take its reference between our zero observation and
// the lock. It then either (a) verifies the hint before we mark draining and
// holds a reference we see on re-check, so we back off, or (b) reaches the
// handshake after we marked draining, gets "draining", and goes round the
// startup path, where it blocks on the lock we hold until the old service is
// fully gone. Either way there are never two live services.
func (sv *supervisor) drain(ctx context.Context, force bool) bool {
	lctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	unlock, err := sv.lock.Lock(lctx)
	cancel()
	if err != nil {
		// Holding the lock is what makes the drain safe; a stuck holder is
		// an acquirer waiting for its own host to start, which cannot take
		// this long. Proceed and say so.
		sv.log.Warn("draining without the startup lock", "err", err)
		unlock = func() error { return nil }
	}
	defer unlock()
	// The count is read under mu, the lock under which handle reads the
	// draining flag before it answers "ok". An acquirer takes its reference
	// before it sends its handshake, so either its handshake was answered
	// before this point and the count below includes it (we back off), or
	// it is answered after and gets "draining".
	sv.mu.Lock()
	n, cerr := sv.counter.Count()
	if !force && ((cerr == nil && n > 0) || sv.conns > 0) {
		sv.mu.Unlock()
		return false
	}
	sv.draining = true
	sv.mu.Unlock()
	sv.log.Info("draining: last user gone", "count", n, "forced", force)
	sv.hintMu.Lock() // see publish
	if err := discovery.Remove(sv.dir, sv.s.Name, sv.nonce); err != nil {
		sv.log.Warn("removing hint", "err", err)
	}
	sv.hintMu.Unlock()
	if sv.s.Overlap {
		// Give the service up before stopping it: with the hint, the
		// counter and the locks gone, a new acquirer starts a fresh
		// supervisor at once, while this one stops the old service and
		// refuses handshakes ("draining").
		sv.removeCounter(n, cerr, force)
		unlock()
		sv.releaseSup()
		sv.stopService(ctx)
		return true
	}
	sv.stopService(ctx)
	sv.removeCounter(n, cerr, force)
	return true
}

// removeCounter removes the counter and the lock files at the end of a
// drain; n and cerr are the count read under the startup lock, which the
// caller still holds.
//
// Only with no references may the set be removed (see refcount.Remove),
// unless the drain is forced: the holders are being sent away, and an
// acquirer that took a reference meanwhile notices the removal under the
// startup lock and takes a new one. A set removed under us (ipcrm) still
// leaves its registry and lock files to clean up. Unlinking a held lock file
// is safe: a locker checks that the path still names the inode it locked.
func (sv *supervisor) removeCounter(n int, cerr error, force bool) {
	if cerr == nil {
		n, cerr = sv.counter.Count()
	}
	if !((cerr == nil && (n == 0 || force)) || errors.Is(cerr, refcount.ErrRemoved)) {
		return
	}
	if err := sv.counter.Remove(); err != nil && !errors.Is(err, refcount.ErrRemoved) {
		sv.log.Warn("removing reference counter", "err", err)
		return
	}
	if errors.Is(cerr, refcount.ErrRemoved) && !sv.removeReplacement() {
		return
	}
	sv.dir.Remove(sv.s.Name + supervisorLockSuffix + ".lock")
	sv.dir.Remove(sv.s.Name + ".lock")
}

// removeReplacement removes the set that now carries our key after ours was
// removed under us (ipcrm, logind's RemoveIPC): every acquirer that came
// later opened a new one (refcount.Open creates it) and took its reference
// there, so without this a set would stay behind once they are gone. The
// caller holds the startup lock; a set someone still holds a reference on
// is theirs (their next supervisor uses it) and stays. It reports whether
// nothing of ours is left.
// replacementGrace bounds the wait for the last references on a
// replacement set at a drain (removeReplacement).
const replacementGrace = 2 * time.Second

func (sv *supervisor) removeReplacement() bool {
	c, err := refcount.Open(sv.s.Name, sv.s.Key, refcount.Options{Dir: sv.dir, Impl: sv.s.Impl})
	if err != nil {
		sv.log.Warn("opening the reference counter that replaced ours", "err", err)
		return false
	}
	// Known race, answered here: the drain runs on the connection count,
	// and a window that closed its session may not have released its
	// reference on the replacement yet (its release, or its SEM_UNDO at
	// exit, comes a moment later). Wait a little for zero; a reference
	// still held after that is a newcomer's, and the set stays for it.
	wctx, cancel := context.WithTimeout(context.Background(), replacementGrace)
	err = c.WaitZero(wctx)
	cancel()
	if err != nil {
		c.Close()
		return false
	}
	if err := c.Remove(); err != nil {
		sv.log.Warn("removing the reference counter that replaced ours", "err", err)
		return false
	}
	sv.log.Info("removed the reference counter that replaced the one removed under us")
	return true
}

// stopService runs OnLastRelease, bounded by StopTimeout (see runHook).
func (sv *supervisor) stopService(ctx context.Context) {
	if sv.s.Hooks.OnLastRelease == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), durationOr(sv.s.StopTimeout, 10*time.Second))
	defer cancel()
	sv.hookMu.Lock()
	defer sv.hookMu.Unlock()
	sv.mu.Lock()
	info := sv.info
	sv.mu.Unlock()
	var err error
	herr := sv.runHook("OnLastRelease", durationOr(sv.s.StopTimeout, 10*time.Second), cancel, func() {
		err = sv.s.Hooks.OnLastRelease(sctx, info)
	})
	if herr == nil && err != nil {
		sv.log.Warn("OnLastRelease", "err", err)
	}
	if herr != nil && !errors.Is(herr, ErrHookStuck) {
		sv.log.Warn("OnLastRelease", "err", herr)
	}
}

func (sv *supervisor) healthLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			sv.check(ctx, nil)
		case <-ctx.Done():
			return
		}
	}
}

// check runs the health check and recovers on failure. cause, if set, is
// why the check was asked for.
func (sv *supervisor) check(ctx context.Context, cause error) {
	if sv.s.Hooks.OnHealthCheck == nil {
		return
	}
	sv.hookMu.Lock()
	sv.mu.Lock()
	info, draining := sv.info, sv.draining
	sv.mu.Unlock()
	if draining {
		sv.hookMu.Unlock()
		return
	}
	timeout := durationOr(sv.s.HealthTimeout, 10*time.Second)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	var err error
	herr := sv.runHook("OnHealthCheck", timeout, cancel, func() {
		err = sv.s.Hooks.OnHealthCheck(cctx, info)
	})
	cancel()
	sv.hookMu.Unlock()
	if errors.Is(herr, ErrHookStuck) {
		return // abandoned: the service is being ended
	}
	if herr != nil {
		err = herr // late: as good as failed
	}
	if err != nil {
		sv.log.Warn("health check failed", "err", err, "cause", cause)
		if !sv.spendHealthRestart() {
			return
		}
		sv.recover(ctx, info, err)
	}
}

// healthRestartWindow is the window of Service.HealthRestarts.
const healthRestartWindow = 10 * time.Minute

// spendHealthRestart takes one restart from the health-restart budget, or
// reports false and asks for the shutdown when it is spent: a service that
// keeps failing its check is not restarted forever.
func (sv *supervisor) spendHealthRestart() bool {
	sv.mu.Lock()
	if sv.healthBudget == nil {
		n := sv.s.HealthRestarts
		if n == 0 {
			n = 5
		}
		sv.healthBudget = &restarts.Budget{Max: n, Window: healthRestartWindow}
	}
	ok, max := sv.healthBudget.Spend(time.Now()), sv.healthBudget.Max
	sv.mu.Unlock()
	if !ok {
		sv.log.Error("health check keeps failing: health restart budget spent; shutting down", "restarts", max, "window", healthRestartWindow.String())
		sv.requestStop()
	}
	return ok
}

// recoverAttempts and recoverBackoff bound a failing OnRecover: it is tried
// this many times, waiting backoff, 2*backoff, ... in between, then the
// supervisor shuts down.
var (
	recoverAttempts = 3
	recoverBackoff  = 500 * time.Millisecond
)

// recover runs OnRecover (or ends the service if there is none), retrying a
// failure with back-off. It returns false when the supervisor gave up and is
// shutting down.
func (sv *supervisor) recover(ctx context.Context, old Info, cause error) bool {
	sv.hookMu.Lock()
	sv.mu.Lock()
	draining, current := sv.draining, sv.info
	sv.mu.Unlock()
	if draining || current.PID != old.PID || current.Port != old.Port {
		sv.hookMu.Unlock()
		return !draining // already recovered or shutting down
	}
	if sv.s.Hooks.OnRecover == nil {
		sv.hookMu.Unlock()
		sv.log.Warn("service failed and there is no OnRecover: shutting down", "cause", cause)
		sv.requestStop()
		return false
	}
	info, err := sv.runRecover(ctx, old, cause)
	if err == nil {
		// Race: the new info must be in place before hookMu is let go. The
		// old process usually dies inside OnRecover (it ends a hung one),
		// which wakes watchService; it then waits on hookMu and, if it
		// still saw the old info, would recover a second time.
		sv.mu.Lock()
		sv.info = info
		sv.mu.Unlock()
	}
	sv.hookMu.Unlock()
	if err != nil {
		sv.log.Error("OnRecover failed: shutting down", "attempts", recoverAttempts, "err", err)
		sv.requestStop()
		return false
	}
	if err := sv.publish(); err != nil {
		sv.log.Error("republishing hint", "err", err)
	}
	sv.log.Info("recovered", "info", info)
	return true
}

// runRecover calls OnRecover up to recoverAttempts times with back-off.
// Each call gets the service-lifetime ctx, cancelled if it overruns
// StartTimeout (then the supervisor gives up: no retry). The caller holds
// hookMu.
func (sv *supervisor) runRecover(ctx context.Context, old Info, cause error) (Info, error) {
	wait := recoverBackoff
	timeout := durationOr(sv.s.StartTimeout, 30*time.Second)
	for attempt := 1; ; attempt++ {
		var info Info
		var err error
		herr := sv.runHook("OnRecover", timeout, sv.svcCancel, func() {
			info, err = sv.s.Hooks.OnRecover(sv.svcCtx, old, cause)
		})
		if herr != nil {
			return Info{}, herr
		}
		if err == nil || attempt >= recoverAttempts {
			return info, err
		}
		sv.log.Warn("OnRecover failed; retrying", "attempt", attempt, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return Info{}, err
		case <-sv.stopReq:
			return Info{}, err
		}
		wait *= 2
	}
}

// watchService runs OnRecover when the service's process dies while in use.
func (sv *supervisor) watchService(ctx context.Context) {
	for ctx.Err() == nil {
		sv.mu.Lock()
		info := sv.info
		sv.mu.Unlock()
		if info.PID <= 0 {
			return
		}
		id, err := serviceIdentity(info)
		if err == nil {
			if err := id.Wait(ctx); err != nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		sv.mu.Lock()
		draining, same := sv.draining, sv.info.PID == info.PID
		sv.mu.Unlock()
		if draining {
			return
		}
		if same && !sv.recover(ctx, info, fmt.Errorf("service process %d exited", info.PID)) {
			return
		}
	}
}

// serviceIdentity is the identity of info's process: exact when the hook
// gave its start time, else looked up now.
func serviceIdentity(info Info) (platform.Identity, error) {
	if info.StartTime != 0 {
		return platform.Identity{PID: info.PID, StartTime: info.StartTime}, nil
	}
	return platform.Lookup(info.PID)
}

func oneLine(s string) string {
	for i, r := range s {
		if r == '\n' || r == '\r' {
			return s[:i]
		}
	}
	return s
}
