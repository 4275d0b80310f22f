package lspmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// The language server runs in the core (mux.Core: start, supervision,
// bounded restart, stop); this file is the LSP policy's part of it.
// policy is the Mux seen as the core's mux.Policy.
type policy Mux

var _ mux.Policy = (*policy)(nil)

// Started initializes a fresh backend (initialize.go).
func (p *policy) Started(inst *mux.Instance) error { return (*Mux)(p).initialize(inst) }

// FromServer routes one message from the backend.
func (p *policy) FromServer(inst *mux.Instance, body []byte) { (*Mux)(p).fromServer(inst, body) }

// Crashed answers what was in flight at the backend that ended (crash.go).
func (p *policy) Crashed(inst *mux.Instance, cause error) { (*Mux)(p).crashed() }

// NeverUp tells the initialize waiters why the backend did not come up,
// and the next initialize tries a new one.
func (p *policy) NeverUp(inst *mux.Instance, cause error) {
	m := (*Mux)(p)
	msg := cause.Error()
	if errors.Is(cause, errNoInitAnswer) && inst != nil {
		msg = "the language server exited before answering initialize"
		if err := inst.ExitErr(); err != nil {
			msg += fmt.Sprintf(" (%v)", err)
		}
	}
	m.failInit(m.withOutput(msg))
}

// GaveUp stops the mux for good: the backend crashed more often than the
// restart budget allows.
func (p *policy) GaveUp(cause error, restarts int, window time.Duration) {
	m := (*Mux)(p)
	why := m.withOutput(fmt.Sprintf("%d restarts within %v, last: %v", restarts, window, cause))
	m.stopFor(fmt.Errorf("%w (%s); fix the server's command, arguments or configuration, then restart the editor's language client", ErrBackendFailed, why),
		m.withHint(fmt.Sprintf("The language server keeps crashing (%s); procref stopped it. Fix the server's command, arguments or configuration, then restart your editor's language client.", why)))
}

// errNoInitAnswer: the backend ended before answering initialize.
var errNoInitAnswer = errors.New("no answer to initialize")

// stopFor stops the mux for good: clients are told (if msg is set) and
// disconnected, and Done is closed.
func (m *Mux) stopFor(err error, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
	}
	m.core.Shut()
	last := map[*client][][]byte{}
	for _, w := range m.initWaiters {
		last[w.c] = append(last[w.c], msgError(w.id, codeRequestFailed, m.withHint("language server unavailable: "+err.Error())))
	}
	m.initWaiters = nil
	if msg != "" {
		m.log.Error("lsp multiplexer stopped", "err", err)
	}
	for c := range m.clients {
		if msg != "" && c.sentInit {
			last[c] = append(last[c], msgNotification("window/showMessage", mustJSON(map[string]any{"type": 1, "message": msg})))
		}
		c.End(err, last[c]...) // the writer flushes before the disconnect
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
	inst := m.core.Shut()
	last := map[*client][][]byte{}
	for _, w := range m.initWaiters {
		last[w.c] = append(last[w.c], msgError(w.id, codeRequestFailed, "language server is shutting down"))
	}
	m.initWaiters = nil
	for c := range m.clients {
		c.End(ErrClosed, last[c]...)
	}
	m.mu.Unlock()
	err := m.core.Stop(ctx, inst, m.cfg.ShutdownTimeout, m.goodbye)
	m.wg.Wait()
	m.finish()
	return err
}

// goodbye asks the backend to leave: shutdown (its answer awaited at most
// ShutdownTimeout), then exit; the core then closes its stdin and kills
// it if it does not leave.
func (m *Mux) goodbye(inst *mux.Instance) {
	m.hostCall(inst, "shutdown", nil, m.cfg.ShutdownTimeout)
	inst.Push(msgNotification("exit", nil))
}

// fromServer routes one message from the backend.
func (m *Mux) fromServer(s *mux.Instance, body []byte) {
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

// crashed handles the end of a backend that nobody asked for (called by
// the core with mu held): every request in flight gets an error answer,
// the backend's pending requests and registrations are forgotten (clients
// are told to drop the registrations). Requests the clients sent into the
// dead backend's queue are among those answered (the core's known race);
// document changes were applied to the mux's copies and reach the new
// backend with the replay.
// The core has logged the end and its cause.
func (m *Mux) crashed() {
	for _, hid := range m.calls.All() {
		if p, _ := m.takeRequest(hid); p.Client != nil && !p.Client.left {
			p.Client.send(msgError(p.ID, codeRequestFailed, "the language server crashed; procref is restarting it"))
		}
	}
	for hid, c := range m.asks.All() {
		m.takeServerRequest(c, hid)
	}
	clear(m.stokens)
	if len(m.regs) == 0 {
		return
	}
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
