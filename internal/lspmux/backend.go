package lspmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// session is one backend incarnation.
type session struct {
	n          int
	be         Backend
	q          *mux.Queue
	readerDone chan struct{}
	writerDone chan struct{}
	exited     chan struct{}
	waitErr    error
	downOnce   sync.Once
	direct     mux.Direct // clients the reader has taken over (sendDirect); reader only
}

// drain writes what is queued for the backend in the calling goroutine
// (see mux.toServerDirect). Called without m.mu held.
func (m *Mux) drainTo(s *session) {
	if err := s.q.DrainTo(s.be); err != nil {
		m.log.Warn("writing to language server failed", "err", err)
		s.q.Close(true) // the writer goroutine then ends, as after its own failure
	}
}

// teardown stops a session for good and waits for its goroutines.
func (s *session) teardown() {
	s.downOnce.Do(func() {
		s.q.Close(true)
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
		q:          mux.NewQueue(lspFraming{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		exited:     make(chan struct{}),
	}
	m.mu.Unlock()
	m.wg.Add(3)
	go func() { // writer
		defer m.wg.Done()
		defer close(s.writerDone)
		if err := s.q.Run(be, nil); err != nil {
			m.log.Warn("writing to language server failed", "err", err)
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
	m.life.Set(mux.Restarting)
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
	if m.life.Phase() != mux.Stopped {
		m.life.Set(mux.Stopped)
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
	if m.life.Phase() != mux.Stopped {
		m.life.Set(mux.Stopped)
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
	s.q.Push(msgNotification("exit", nil), 0, nil)
	s.q.Close(false) // the writer sends what is queued, then stops
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
