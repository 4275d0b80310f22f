package lspmux

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/lspframe"
)

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

// write writes one item to the backend and releases its quota.
func (s *session) write(it item) error {
	err := it.write(s.be)
	if it.release != nil {
		it.release()
	}
	return err
}

// drain writes what is queued for the backend in the calling goroutine
// (see mux.toServerDirect). Called without m.mu held.
func (m *mux) drainTo(s *session) {
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

func (m *mux) startSession() (*session, error) {
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
		r := lspframe.NewReader(be, m.cfg.MaxMessage)
		defer s.flushClients()
		for {
			if !r.Ready() {
				s.flushClients() // Read may block: never while holding clients
			}
			body, err := r.Read()
			if err != nil {
				if errors.Is(err, lspframe.ErrTooLarge) {
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
func (m *mux) supervise() {
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
func (m *mux) backoff() bool {
	m.mu.Lock()
	n := len(m.restarts) - 1
	m.mu.Unlock()
	if n <= 0 {
		return true
	}
	d := min(100*time.Millisecond<<(n-1), 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.ctx.Done(): // Close is under way and finishes the stop
		return false
	}
}

// initialize sends the first client's initialize to a fresh backend and,
// on success, initialized, the workspace folders and (after a restart)
// every open document; then admits the waiting clients. It reports false
// if the session died, with an error if the backend refused.
func (m *mux) initialize(s *session) (bool, error) {
	m.mu.Lock()
	params := m.initParams
	m.backendFold = map[string]bool{}
	for _, f := range initFolders(params) {
		m.backendFold[strings.TrimSuffix(f.URI, "/")] = true
	}
	m.mu.Unlock()
	resp, err := m.hostCall(s, "initialize", params, 0)
	if err != nil {
		return false, nil
	}
	f, err := lspframe.Scan(resp)
	if err != nil || !f.Result.Ok() {
		msg := "initialize failed"
		if f.Error.Ok() {
			var e struct {
				Message string `json:"message"`
			}
			json.Unmarshal(f.Error.Of(resp), &e)
			msg = "language server refused initialize: " + e.Message
		}
		return false, errors.New(msg)
	}
	result := f.Result.Of(resp)
	var caps struct {
		Capabilities struct {
			Workspace struct {
				WorkspaceFolders struct {
					Supported           bool            `json:"supported"`
					ChangeNotifications json.RawMessage `json:"changeNotifications"`
				} `json:"workspaceFolders"`
			} `json:"workspace"`
		} `json:"capabilities"`
	}
	if sp, ok, _ := lspframe.Lookup(result, "capabilities"); ok {
		json.Unmarshal(result[sp.Start:sp.End], &caps.Capabilities)
	}
	wf := caps.Capabilities.Workspace.WorkspaceFolders
	cn := bytes.TrimSpace(wf.ChangeNotifications)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return true, nil
	}
	first := m.initResult == nil
	restart := !first
	if first {
		var name string
		m.initResult, m.enc, name = resultEncoding(append([]byte(nil), result...))
		if m.enc != encUTF16 {
			m.log.Warn("language server uses a position encoding other than the utf-16 procref asked for; windows that did not offer it get wrong columns",
				"encoding", name)
		}
		m.folderCaps = wf.Supported && len(cn) > 0 && !bytes.Equal(cn, []byte("false")) && !bytes.Equal(cn, null)
	}
	m.toServer(msgNotification("initialized", []byte("{}")), nil)
	// folders of clients beyond the initializing one (global scope)
	var added []folder
	for uri, ref := range m.folders {
		if !m.backendFold[uri] {
			added = append(added, folder{URI: uri, Name: ref.name})
		}
	}
	var removed []folder
	for uri := range m.backendFold {
		if m.folders[uri] == nil && len(m.folders) > 0 {
			removed = append(removed, folder{URI: uri, Name: uri[strings.LastIndexByte(uri, '/')+1:]})
		}
	}
	m.tellFolders(added, removed)
	if restart {
		m.replayDocs()
	}
	m.setPhase(phaseRunning)
	for _, w := range m.initWaiters {
		if !w.c.gone {
			m.admit(w.c, w.id)
		}
	}
	m.initWaiters = nil
	if restart {
		note := msgNotification("window/showMessage", mustJSON(map[string]any{
			"type":    2, // warning
			"message": fmt.Sprintf("The language server crashed and was restarted by procref (restart %d); open documents were restored.", len(m.restarts)),
		}))
		for c := range m.clients {
			if c.inited {
				c.send(note)
			}
		}
	}
	return true, nil
}

// hostCall sends the mux's own request and waits for the answer, the
// session's end, or timeout (0: none).
func (m *mux) hostCall(s *session, method string, params []byte, timeout time.Duration) ([]byte, error) {
	hid := m.nextID.Add(1)
	ch := make(chan []byte, 1)
	m.mu.Lock()
	m.pending[hid] = &pending{method: method, ch: ch}
	s.q.push(msgRequest(hid, method, params), 0, nil)
	m.mu.Unlock()
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-s.readerDone:
	case <-s.exited:
	case <-tc:
	}
	m.mu.Lock()
	delete(m.pending, hid)
	m.mu.Unlock()
	return nil, fmt.Errorf("no answer to %s from the language server", method)
}

// failInit answers every initialize waiter with an error and returns to
// idle, so the next initialize tries a new backend.
// The waiters are disconnected: an editor does not retry initialize on
// the same connection, and its proxy then says why and exits 1.
func (m *mux) failInit(msg string) {
	m.log.Error("language server did not start", "err", msg)
	m.mu.Lock()
	defer m.mu.Unlock()
	err := fmt.Errorf("%w: %s", ErrInitFailed, msg)
	for _, w := range m.initWaiters {
		w.c.send(msgError(w.id, codeRequestFailed, m.withHint(msg)))
		w.c.endWith(err)
	}
	m.initWaiters = nil
	m.sess = nil
	m.initParams = nil
	if m.phase != phaseStopped {
		m.setPhase(phaseIdle)
	}
}

// crashed handles the end of a session that nobody asked for: every
// request in flight gets an error answer, the backend's pending requests
// and registrations are forgotten (clients are told to drop the
// registrations), and unless the restart limit is reached the caller
// restarts (true).
func (m *mux) crashed(s *session, cause error) bool {
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
	for hid, p := range m.pending {
		delete(m.pending, hid)
		if p.c != nil {
			p.c.awaiting.Add(-p.size)
		}
		if p.c != nil && !p.c.gone {
			delete(p.c.reqs, string(p.origID))
			p.c.send(msgError(p.origID, codeRequestFailed, "the language server crashed; procref is restarting it"))
		}
	}
	for _, sr := range m.srvReqs {
		delete(sr.c.outReqs, sr.hid)
	}
	clear(m.srvReqs)
	clear(m.ctokens)
	for c := range m.clients {
		clear(c.tokens)
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
	now := time.Now()
	m.restarts = slices.DeleteFunc(m.restarts, func(t time.Time) bool { return now.Sub(t) > m.cfg.RestartWindow })
	if m.cfg.MaxRestarts < 0 || len(m.restarts) >= m.cfg.MaxRestarts {
		m.mu.Unlock()
		why := m.withOutput(fmt.Sprintf("%d restarts within %v, last: %v", len(m.restarts), m.cfg.RestartWindow, cause))
		m.stopFor(fmt.Errorf("%w (%s); fix the server's command, arguments or configuration, then restart the editor's language client", ErrBackendFailed, why),
			m.withHint(fmt.Sprintf("The language server keeps crashing (%s); procref stopped it. Fix the server's command, arguments or configuration, then restart your editor's language client.", why)))
		return false
	}
	m.restarts = append(m.restarts, now)
	m.mu.Unlock()
	return true
}

// stopFor stops the mux for good: clients are told (if msg is set) and
// disconnected, and Done is closed.
func (m *mux) stopFor(err error, msg string) {
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
func (m *mux) shutdown(ctx context.Context) error {
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
func (m *mux) stopSession(ctx context.Context, s *session) error {
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
func (m *mux) fromServer(s *session, body []byte) {
	// The backend is trusted to send valid JSON: find the spans without
	// validating string contents (clients get what it sent, as they
	// would without the mux).
	f, err := lspframe.ScanTrusted(body)
	if err != nil {
		m.log.Warn("language server sent invalid json; dropped", "err", err)
		return
	}
	if f.Method.Ok() && f.MethodName() == "" {
		// Clients would take it for a response (and never answer it).
		m.log.Warn("language server sent a message with an empty method name; refused")
		if f.Kind() == lspframe.Request {
			m.mu.Lock()
			m.toServer(msgError(f.ID.Of(body), codeInvalidRequest, "empty method name"), nil)
			m.mu.Unlock()
		}
		return
	}
	switch f.Kind() {
	case lspframe.Response:
		m.serverResponse(s, &f, body)
	case lspframe.Request:
		m.serverRequest(s, &f, body)
	case lspframe.Notification:
		m.serverNotification(&f, body)
	default:
		m.log.Warn("language server sent a message that is neither request, response nor notification; dropped")
	}
}

func (m *mux) serverResponse(s *session, f *lspframe.Fields, body []byte) {
	hid, ok := parseHostID(f.ID.Of(body))
	if !ok {
		m.log.Warn("language server answered an id the mux never sent; dropped", "id", string(f.ID.Of(body)))
		return
	}
	m.mu.Lock()
	p := m.pending[hid]
	if p == nil {
		m.mu.Unlock()
		return // its client has gone, or a duplicate
	}
	delete(m.pending, hid)
	if p.c != nil {
		p.c.awaiting.Add(-p.size)
	}
	if p.ch != nil {
		m.mu.Unlock()
		p.ch <- body
		return
	}
	c := p.c
	delete(c.reqs, string(p.origID))
	for _, t := range p.tokens {
		if ct := m.ctokens[t]; ct != nil {
			delete(c.tokens, string(ct.orig))
		}
		delete(m.ctokens, t)
	}
	m.mu.Unlock()
	// the body goes to this one client and nothing keeps it: written
	// with the client's id spliced in, then recycled
	s.sendDirect(c, item{body: body, edits: []lspframe.Edit{{At: f.ID, With: p.origID}}, recycle: true})
}

// broadcastMethods are backend requests the mux answers itself and passes
// on to every ready client.
func hostAnswered(method string) bool {
	switch method {
	case "window/workDoneProgress/create", "client/registerCapability", "client/unregisterCapability":
		return true
	}
	return strings.HasSuffix(method, "/refresh")
}

func (m *mux) serverRequest(s *session, f *lspframe.Fields, body []byte) {
	sid := append([]byte(nil), f.ID.Of(body)...)
	method := f.MethodName()
	params := f.Params.Of(body)
	m.mu.Lock()
	defer m.mu.Unlock()
	answer := func(b []byte) { s.q.push(b, 0, nil) }
	if method == "workspace/workspaceFolders" {
		list := m.folderList()
		slices.SortFunc(list, func(a, b folder) int { return strings.Compare(a.URI, b.URI) })
		if len(list) == 0 {
			answer(msgResult(sid, nil))
		} else {
			answer(msgResult(sid, mustJSON(list)))
		}
		return
	}
	if hostAnswered(method) {
		answer(msgResult(sid, nil))
		var told map[*client]bool
		switch method {
		case "client/registerCapability":
			m.register(params)
		case "client/unregisterCapability":
			m.unregister(params)
		case "window/workDoneProgress/create":
			told = map[*client]bool{}
			if sp, ok, _ := lspframe.Lookup(params, "token"); ok {
				m.stokens[string(sp.Of(params))] = told
			}
		}
		m.passOn(method, params, told)
		return
	}
	c := m.pickClient(method)
	if c == nil && method == "window/showMessageRequest" {
		// Every client handles it (LSP 1.0); window.showMessage (3.16)
		// only refines it, and clients such as eglot 1.9 do not declare it.
		c = m.pickClient("")
	}
	if c == nil {
		if _, gated := capPaths[method]; gated {
			// no window declared what it needs: answer as such a client would
			answer(msgResult(sid, answerUndeclared(method, params)))
			return
		}
		answer(msgError(sid, codeRequestFailed, "no editor is connected to answer "+method))
		return
	}
	hid := m.nextID.Add(1)
	sr := &srvReq{sid: sid, c: c, hid: hid}
	if old := m.srvReqs[string(sid)]; old != nil {
		m.log.Warn("language server reused a request id still awaiting an answer", "id", string(sid))
		delete(old.c.outReqs, old.hid)
	}
	m.srvReqs[string(sid)] = sr
	c.outReqs[hid] = sr
	c.send(lspframe.Splice(body, f.ID, idToken(hid)))
}

// passOn sends a request the mux has answered itself to every ready
// client that can take it: registrations filtered to what each client
// registers dynamically, the rest only to clients that declared the
// capability (capabilities.go). told, if set, records who got it.
// Called with mu held.
func (m *mux) passOn(method string, params []byte, told map[*client]bool) {
	var list []json.RawMessage
	key := map[string]string{"client/registerCapability": "registrations", "client/unregisterCapability": "unregisterations"}[method]
	if key != "" {
		var p map[string][]json.RawMessage
		json.Unmarshal(params, &p)
		list = p[key]
	}
	for c := range m.clients {
		if !c.ready {
			continue
		}
		p := params
		if key != "" {
			p = c.registrationsFor(key, list)
		} else if !c.wants(method) {
			p = nil
		}
		if p == nil {
			continue
		}
		if told != nil {
			told[c] = true
		}
		m.requestClient(c, method, p)
	}
}

// pickClient chooses the client for a backend request that one client
// must answer, among those that declared what method needs: the one with
// the newest workspace/executeCommand in flight (edits and prompts usually
// come from a command), else the most recently active ready client, else
// any client that has sent initialize.
func (m *mux) pickClient(method string) *client {
	var best *client
	var bestSeq int64 = -1
	for _, p := range m.pending {
		if p.c != nil && p.method == "workspace/executeCommand" && p.seq > bestSeq && !p.c.gone && p.c.wants(method) {
			best, bestSeq = p.c, p.seq
		}
	}
	if best != nil {
		return best
	}
	for c := range m.clients {
		if c.ready && c.wants(method) && (best == nil || c.active > best.active) {
			best = c
		}
	}
	if best != nil {
		return best
	}
	for c := range m.clients {
		if c.sentInit && c.wants(method) && (best == nil || c.id > best.id) {
			best = c
		}
	}
	return best
}

func (m *mux) register(params []byte) {
	var p struct {
		Registrations []json.RawMessage `json:"registrations"`
	}
	json.Unmarshal(params, &p)
	for _, raw := range p.Registrations {
		var r struct {
			ID string `json:"id"`
		}
		json.Unmarshal(raw, &r)
		m.regs = slices.DeleteFunc(m.regs, func(x registration) bool { return x.id == r.ID })
		m.regs = append(m.regs, registration{id: r.ID, raw: raw})
	}
}

func (m *mux) unregister(params []byte) {
	var p struct {
		Unregisterations []struct {
			ID string `json:"id"`
		} `json:"unregisterations"` // sic: the LSP spelling
	}
	json.Unmarshal(params, &p)
	for _, u := range p.Unregisterations {
		m.regs = slices.DeleteFunc(m.regs, func(x registration) bool { return x.id == u.ID })
	}
}

func (m *mux) serverNotification(f *lspframe.Fields, body []byte) {
	params := f.Params.Of(body)
	abs := func(sp lspframe.Span) lspframe.Span { return inParams(f, sp) }
	m.mu.Lock()
	defer m.mu.Unlock()
	switch f.MethodName() {
	case "$/progress":
		sp, ok, _ := lspframe.Lookup(params, "token")
		if !ok {
			return
		}
		tok := string(sp.Of(params))
		if ct := m.ctokens[tok]; ct != nil {
			ct.c.send(lspframe.Splice(body, abs(sp), ct.orig))
			return
		}
		if told := m.stokens[tok]; told != nil {
			for c := range told {
				if !c.gone {
					c.send(body)
				}
			}
			if k, ok, _ := lspframe.Lookup(params, "value", "kind"); ok && string(k.Of(params)) == `"end"` {
				delete(m.stokens, tok)
			}
			return
		}
		m.log.Debug("progress for an unknown token; dropped", "token", tok)
		return
	case "$/cancelRequest":
		sp, ok, _ := lspframe.Lookup(params, "id")
		if !ok {
			return
		}
		if sr := m.srvReqs[string(sp.Of(params))]; sr != nil {
			sr.c.send(lspframe.Splice(body, abs(sp), idToken(sr.hid)))
		}
		return
	}
	// URI-scoped: params.uri or params.textDocument.uri
	uriSp, ok, _ := lspframe.Lookup(params, "uri")
	if !ok {
		uriSp, ok, _ = lspframe.Lookup(params, "textDocument", "uri")
	}
	if !ok {
		m.broadcast(body)
		return
	}
	uri, err := lspframe.Unquote(uriSp.Of(params))
	if err != nil {
		return
	}
	if d := m.docs[uri]; d != nil {
		m.toOpeners(d, f, body)
		return
	}
	// Nobody has it open: the clients whose folders contain it.
	for c := range m.clients {
		if !c.inited {
			continue
		}
		for _, fo := range c.folders {
			root := strings.TrimSuffix(fo.URI, "/")
			if strings.HasPrefix(uri, root+"/") || uri == root {
				c.send(body)
				break
			}
		}
	}
}

// inParams is sp, a span within f's params, as a span of the whole body.
func inParams(f *lspframe.Fields, sp lspframe.Span) lspframe.Span {
	return lspframe.Span{Start: f.Params.Start + sp.Start, End: f.Params.Start + sp.End}
}

// toOpeners sends a server notification about d's document to the clients
// that have it open; publishDiagnostics carries the backend's version,
// which each client gets as the version it knows (or none).
func (m *mux) toOpeners(d *doc, f *lspframe.Fields, body []byte) {
	params := f.Params.Of(body)
	abs := func(sp lspframe.Span) lspframe.Span { return inParams(f, sp) }
	var verSp lspframe.Span
	var server int64
	if f.MethodName() == "textDocument/publishDiagnostics" {
		if sp, ok, _ := lspframe.Lookup(params, "version"); ok {
			if v, ok := parseHostID(sp.Of(params)); ok {
				verSp, server = abs(sp), v
			}
		}
	}
	var stripped []byte
	strip := func() []byte {
		if stripped == nil {
			np, _, _ := lspframe.DeleteMember(params, "version")
			stripped = lspframe.Splice(body, f.Params, np)
		}
		return stripped
	}
	if f.MethodName() == "textDocument/publishDiagnostics" {
		d.lastDiag = body
		if verSp.Ok() {
			d.lastDiag = strip()
		}
	}
	for c := range d.openers {
		if !verSp.Ok() {
			c.send(body)
			continue
		}
		if cv, ok := d.clientVersion(c, server); ok {
			c.send(lspframe.Splice(body, verSp, idToken(cv)))
			continue
		}
		c.send(strip())
	}
}
