package lspmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/procref/procref/internal/pipeio"
	"github.com/procref/procref/internal/wire"
	"github.com/procref/procref/platform"
)

type procBackend struct {
	cmd    *exec.Cmd
	stdin  *pipeio.File // our write end of the server's stdin
	stdout *pipeio.File // our read end of the server's stdout

	closeOnce sync.Once
	waitOnce  sync.Once
	waited    chan struct{}
	waitErr   error
}

// ExecBackend starts cmd with its stdin and stdout connected to fresh
// pipes and returns it as a Backend. The caller sets everything else on
// cmd first (SysProcAttr, Stderr, Env, Dir); cmd.Stdin and cmd.Stdout must
// be nil. Wait may be called at any time (the pipes are not closed by it).
// The server leads its own process group; Kill ends the whole group, so
// nothing it started (npx, uvx, `sh -c` children) outlives it, and Wait
// does not wait on a pipe a leftover child holds open.
func ExecBackend(cmd *exec.Cmd) (Backend, error) {
	if cmd.Stdin != nil || cmd.Stdout != nil {
		return nil, errors.New("lspmux: ExecBackend needs cmd.Stdin and cmd.Stdout unset")
	}
	platform.SetProcessGroup(cmd)
	if cmd.WaitDelay == 0 {
		// A stderr copy held open by a process that escaped the group
		// must not block Wait for ever.
		cmd.WaitDelay = 2 * time.Second
	}
	// Plain os.Pipe rather than cmd.StdoutPipe: exec closes its own pipes
	// in Wait, which would race with our reader draining the last output.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("lspmux: stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("lspmux: stdout pipe: %w", err)
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	err = cmd.Start()
	inR.Close() // the child has its copies
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("lspmux: start %s: %w", cmd.Path, err)
	}
	b := &procBackend{cmd: cmd, stdin: pipeio.New(inW), stdout: pipeio.New(outR), waited: make(chan struct{})}
	go b.wait() // reap promptly so Wait can be called by anyone, any time
	return b, nil
}

func (b *procBackend) wait() {
	b.waitOnce.Do(func() {
		b.waitErr = b.cmd.Wait()
		close(b.waited)
	})
}

func (b *procBackend) Read(p []byte) (int, error)  { return b.stdout.Read(p) }
func (b *procBackend) Write(p []byte) (int, error) { return b.stdin.Write(p) }

func (b *procBackend) Close() error {
	b.closeOnce.Do(func() {
		b.stdin.Close()
		b.stdout.Close()
	})
	return nil
}

// Kill ends the server's whole process group, even after the server
// itself has exited (its children may not have).
func (b *procBackend) Kill() error {
	gerr := platform.KillProcessGroup(b.cmd.Process.Pid)
	select {
	case <-b.waited:
		return gerr
	default:
	}
	if err := b.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("lspmux: kill backend pid %d: %w", b.cmd.Process.Pid, err)
	}
	return gerr
}

func (b *procBackend) Wait() error {
	<-b.waited
	return b.waitErr
}

// Pid returns the backend's process id (tests and logs use it).
func (b *procBackend) Pid() int { return b.cmd.Process.Pid }

// session is one backend incarnation.
type session struct {
	n          int
	be         Backend
	q          *queue
	readerDone chan struct{}
	writerDone chan struct{}
	exited     chan struct{}
	waitErr    error
	downOnce   sync.Once
	direct     []*client // clients the reader has taken over (sendDirect); reader only
}

// drain writes what is queued for the backend in the calling goroutine
// (see mux.toServerDirect). Called without m.mu held.
func (m *Mux) drainTo(s *session) {
	var buf []byte
	err := s.q.drain(func(items []item) ([]item, error) {
		var err error
		buf, err = writeBatch(s.be, items, buf)
		for _, it := range items {
			if it.release != nil {
				it.release()
			}
		}
		return nil, err
	})
	if err != nil {
		m.log.Warn("writing to language server failed", "err", err)
		s.q.close(true) // the writer goroutine then ends, as after its own failure
	}
}

// teardown stops a session for good and waits for its goroutines.
func (s *session) teardown() {
	s.downOnce.Do(func() {
		s.q.close(true)
		s.be.Close()
		s.be.Kill()
	})
	<-s.exited
	<-s.readerDone
	<-s.writerDone
}

func (m *Mux) startSession() (*session, error) {
	be, err := m.cfg.Start(m.ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.sessions++
	s := &session{
		n:          m.sessions,
		be:         be,
		q:          newQueue(),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		exited:     make(chan struct{}),
	}
	m.mu.Unlock()
	m.wg.Add(3)
	go func() { // writer
		defer m.wg.Done()
		defer close(s.writerDone)
		var batch []item
		var buf []byte
		for {
			var ok bool
			batch, ok = s.q.popBatch(nil, batch)
			if !ok {
				return
			}
			var err error
			buf, err = writeBatch(be, batch, buf)
			for _, it := range batch {
				if it.release != nil {
					it.release()
				}
			}
			clear(batch)
			if err != nil {
				m.log.Warn("writing to language server failed", "err", err)
				s.q.close(true)
				// drain what is left so pushes' releases run
				for {
					if _, ok := s.q.pop(nil); !ok {
						return
					}
				}
			}
		}
	}()
	go func() { // reader
		defer m.wg.Done()
		defer close(s.readerDone)
		r := wire.NewReader(be, m.cfg.MaxMessage)
		defer s.flushClients()
		for {
			if !r.Ready() {
				s.flushClients() // Read may block: never while holding clients
			}
			body, err := r.Read()
			if err != nil {
				if errors.Is(err, wire.ErrTooLarge) {
					m.log.Error("language server sent a message over the size limit; dropped it (raise the limit)", "err", err)
					continue
				}
				return
			}
			m.fromServer(s, body)
		}
	}()
	go func() { // reaper
		defer m.wg.Done()
		s.waitErr = be.Wait()
		close(s.exited)
	}()
	return s, nil
}

// supervise runs the backend from the first initialize until the mux stops
// or that initialize fails: start, initialize, wait for the end, restart.
func (m *Mux) supervise() {
	defer m.wg.Done()
	restart := false
	for {
		s, err := m.startSession()
		if err != nil {
			if m.ctx.Err() != nil {
				return // Close is under way and finishes the stop
			}
			m.log.Error("starting language server failed", "err", err)
			if !restart {
				m.failInit(fmt.Sprintf("cannot start the language server: %v", err))
				return
			}
			if !m.crashed(nil, err) {
				return
			}
			continue
		}
		m.mu.Lock()
		if m.closing {
			m.mu.Unlock()
			s.teardown()
			return
		}
		m.sess = s
		m.mu.Unlock()

		ok, initErr := m.initialize(s)
		if ok {
			select {
			case <-s.readerDone:
			case <-s.exited:
			}
		}
		m.mu.Lock()
		closing := m.closing
		neverUp := m.initResult == nil
		m.mu.Unlock()
		if closing {
			return // shutdown owns the session
		}
		if neverUp {
			// The backend refused the first initialize or died before
			// answering: give that to the waiters and start afresh next
			// time (a restart would only fail the same way).
			s.teardown()
			msg := fmt.Sprintf("the language server exited before answering initialize (%v)", s.waitErr)
			if s.waitErr == nil {
				msg = "the language server exited before answering initialize"
			}
			if initErr != nil {
				msg = initErr.Error()
			}
			m.failInit(m.withOutput(msg))
			return
		}
		s.teardown()
		cause := s.waitErr
		if cause == nil {
			cause = errors.New("language server exited")
		}
		if initErr != nil {
			cause = initErr
		}
		if !m.crashed(s, cause) {
			return
		}
		restart = true // from now on a failed start counts as a crash
		if !m.backoff() {
			return
		}
	}
}

// backoff waits before a restart when the backend has already been
// restarted within the window (100ms, 200ms, 400ms... at most 2s), so a
// server that dies at once does not burn the restart budget in a blink.
// The first restart is immediate. It reports false if the mux closed.
func (m *Mux) backoff() bool {
	m.mu.Lock()
	d := m.restarts.Backoff()
	m.mu.Unlock()
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.ctx.Done(): // Close is under way and finishes the stop
		return false
	}
}

// crashed handles the end of a session that nobody asked for: every
// request in flight gets an error answer, the backend's pending requests
// and registrations are forgotten (clients are told to drop the
// registrations), and unless the restart limit is reached the caller
// restarts (true).
func (m *Mux) crashed(s *session, cause error) bool {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return false
	}
	m.log.Error("language server ended unexpectedly", "err", cause)
	// Known race: between the session's death and this point the phase
	// was still running, so clients may have pushed into the dead
	// session's (closed) queue. Those pushes were dropped: requests among
	// them are in pending and get their error answer below; document
	// changes were applied to the mux's copies and reach the new backend
	// with the replay.
	m.sess = nil
	m.setPhase(phaseRestarting)
	for _, hid := range m.calls.All() {
		if p, _ := m.takeRequest(hid); p.Client != nil && !p.Client.gone {
			p.Client.send(msgError(p.ID, codeRequestFailed, "the language server crashed; procref is restarting it"))
		}
	}
	for hid, c := range m.asks.All() {
		m.takeServerRequest(c, hid)
	}
	clear(m.stokens)
	if len(m.regs) > 0 {
		var un []json.RawMessage
		for _, r := range m.regs {
			var reg struct {
				ID     string `json:"id"`
				Method string `json:"method"`
			}
			json.Unmarshal(r.raw, &reg)
			un = append(un, mustJSON(map[string]string{"id": reg.ID, "method": reg.Method}))
		}
		for c := range m.clients {
			if p := c.registrationsFor("unregisterations", un); c.ready && p != nil {
				m.requestClient(c, "client/unregisterCapability", p)
			}
		}
		m.regs = nil
	}
	if !m.restarts.Spend(time.Now()) {
		m.mu.Unlock()
		why := m.withOutput(fmt.Sprintf("%d restarts within %v, last: %v", m.restarts.Recent(), m.cfg.RestartWindow, cause))
		m.stopFor(fmt.Errorf("%w (%s); fix the server's command, arguments or configuration, then restart the editor's language client", ErrBackendFailed, why),
			m.withHint(fmt.Sprintf("The language server keeps crashing (%s); procref stopped it. Fix the server's command, arguments or configuration, then restart your editor's language client.", why)))
		return false
	}
	m.mu.Unlock()
	return true
}

// stopFor stops the mux for good: clients are told (if msg is set) and
// disconnected, and Done is closed.
func (m *Mux) stopFor(err error, msg string) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	if m.phase != phaseStopped {
		m.setPhase(phaseStopped)
	}
	var cs []*client
	for c := range m.clients {
		cs = append(cs, c)
	}
	for _, w := range m.initWaiters {
		w.c.send(msgError(w.id, codeRequestFailed, m.withHint("language server unavailable: "+err.Error())))
	}
	m.initWaiters = nil
	m.mu.Unlock()
	if msg != "" {
		m.log.Error("lsp multiplexer stopped", "err", err)
	}
	for _, c := range cs {
		if msg != "" && c.sentInit {
			c.send(msgNotification("window/showMessage", mustJSON(map[string]any{"type": 1, "message": msg})))
		}
		c.endWith(err) // the writer flushes before the disconnect
	}
	m.finish()
}

// shutdown is Close: disconnect clients, then shutdown, exit, kill.
func (m *Mux) shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	if m.err == nil {
		m.err = ErrClosed
	}
	if m.phase != phaseStopped {
		m.setPhase(phaseStopped)
	}
	s := m.sess
	var cs []*client
	for c := range m.clients {
		cs = append(cs, c)
	}
	for _, w := range m.initWaiters {
		w.c.send(msgError(w.id, codeRequestFailed, "language server is shutting down"))
	}
	m.initWaiters = nil
	m.mu.Unlock()
	for _, c := range cs {
		c.endWith(ErrClosed)
	}
	var err error
	if s != nil {
		err = m.stopSession(ctx, s)
	}
	m.cancel()
	m.wg.Wait()
	m.finish()
	return err
}

// stopSession asks the backend to leave (shutdown, exit, stdin EOF) and
// kills it if it does not within the timeouts.
func (m *Mux) stopSession(ctx context.Context, s *session) error {
	step := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, m.cfg.ShutdownTimeout)
	}
	sctx, cancel := step()
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		m.hostCall(s, "shutdown", nil, m.cfg.ShutdownTimeout)
	}()
	select {
	case <-answered:
	case <-sctx.Done():
	}
	cancel()
	s.q.push(msgNotification("exit", nil), 0, nil)
	s.q.close(false) // the writer sends what is queued, then stops
	sctx, cancel = step()
	defer cancel()
	select {
	case <-s.writerDone:
	case <-sctx.Done():
	}
	s.be.Close()
	var err error
	select {
	case <-s.exited:
	case <-sctx.Done():
		m.log.Warn("language server did not exit after shutdown/exit; killing it")
		err = s.be.Kill()
	}
	s.teardown()
	<-answered
	return err
}

// fromServer routes one message from the backend.
func (m *Mux) fromServer(s *session, body []byte) {
	// The backend is trusted to send valid JSON: find the spans without
	// validating string contents (clients get what it sent, as they
	// would without the mux).
	f, err := wire.ScanTrusted(body)
	if err != nil {
		m.log.Warn("language server sent invalid json; dropped", "err", err)
		return
	}
	if f.Method.Ok() && f.MethodName() == "" {
		// Clients would take it for a response (and never answer it).
		m.log.Warn("language server sent a message with an empty method name; refused")
		if f.Kind() == wire.Request {
			m.mu.Lock()
			m.toServer(msgError(f.ID.Of(body), codeInvalidRequest, "empty method name"), nil)
			m.mu.Unlock()
		}
		return
	}
	switch f.Kind() {
	case wire.Response:
		m.serverResponse(s, &f, body)
	case wire.Request:
		m.serverRequest(s, &f, body)
	case wire.Notification:
		m.serverNotification(&f, body)
	default:
		m.log.Warn("language server sent a message that is neither request, response nor notification; dropped")
	}
}
