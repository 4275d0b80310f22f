package lspmux

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// fromClient routes one message from c. A non-nil error ends the session.
func (m *Mux) fromClient(c *client, body []byte) error {
	f, err := wire.Scan(body)
	if err != nil {
		c.log.Warn("lsp client sent invalid json; answered with a parse error", "err", err)
		c.send(msgError(nil, codeParseError, err.Error()))
		return nil
	}
	if f.Method.Ok() && f.MethodName() == "" {
		var id []byte
		if f.ID.Ok() && validID(f.ID.Of(body)) {
			id = f.ID.Of(body)
		}
		c.send(msgError(id, codeInvalidRequest, "empty method name"))
		return nil
	}
	if k := f.Kind(); (k == wire.Request && notificationOnly[f.MethodName()]) ||
		(k == wire.Notification && requestOnly[f.MethodName()]) {
		// A lifecycle or document message of the wrong kind would reach
		// the backend untracked (an exit request would stop it for all).
		c.log.Warn("lsp client sent a message of the wrong kind; refused", "method", f.MethodName(), "kind", k)
		if k == wire.Request {
			c.send(msgError(f.ID.Of(body), codeInvalidRequest, f.MethodName()+" is a notification"))
		}
		return nil
	}
	if k := f.Kind(); (k == wire.Request && f.MethodName() != "initialize") ||
		(k == wire.Notification && f.MethodName() != "exit") {
		// A client that sends on right after its initialize (before the
		// result: LSP forbids it, but servers on stdio just read on, and
		// some clients rely on that) gets its messages handled in order
		// once it is answered, not refused.
		m.awaitInit(c)
	}
	switch f.Kind() {
	case wire.Response:
		m.clientResponse(c, &f, body)
		return nil
	case wire.Request:
		id := f.ID.Of(body)
		if !validID(id) {
			c.send(msgError(nil, codeInvalidRequest, "request id must be a number or a string"))
			return nil
		}
		switch f.MethodName() {
		case "initialize":
			m.clientInitialize(c, &f, body)
			return nil
		case "shutdown":
			// The backend stays up for the others; the client's exit
			// will end only its session.
			c.send(msgResult(id, nil))
			return nil
		}
		return m.clientRequest(c, &f, body)
	case wire.Notification:
		switch f.MethodName() {
		case "exit":
			return errExit
		case "initialized":
			m.clientInitialized(c)
			return nil
		}
		return m.clientNotification(c, &f, body)
	}
	var id []byte
	if f.ID.Ok() && validID(f.ID.Of(body)) {
		id = f.ID.Of(body)
	}
	c.send(msgError(id, codeInvalidRequest, "not a json-rpc request, notification or response"))
	return nil
}

// notificationOnly and requestOnly are the methods the mux tracks or that
// end the backend's conversation; they are refused in the other kind.
var (
	notificationOnly = map[string]bool{
		"initialized": true, "exit": true, "$/cancelRequest": true, "$/progress": true,
		"textDocument/didOpen": true, "textDocument/didChange": true, "textDocument/didClose": true,
		"workspace/didChangeWorkspaceFolders": true, "window/workDoneProgress/cancel": true,
	}
	requestOnly = map[string]bool{"initialize": true, "shutdown": true}
)

// ready reports whether c may talk to the backend, waiting while the
// backend restarts.
func (m *Mux) ready(c *client) bool {
	m.mu.Lock()
	inited := c.inited
	m.mu.Unlock()
	return inited && c.WaitRunning(m.core)
}

// clientStall is how long a client whose queue is over a quarter of its
// bound may go without taking a message before it counts as not reading.
const clientStall = 2 * time.Second

// client is one client: the core's client (its queue, direct writes,
// claim on the backend's queue, bound and end) and the LSP state.
type client struct {
	*mux.Client
	m     *Mux
	id    int
	quota *mux.Quota // this client's bytes queued toward the backend (ids.go)
	log   *slog.Logger

	awaiting atomic.Int64 // bytes of this client's requests the backend has not answered yet

	// guarded by m.mu
	sentInit bool // has sent initialize
	inited   bool // has been answered initialize (successfully)
	ready    bool // has sent initialized
	left     bool // forgotten by the router (Left)
	active   int64
	docs     map[string]*cdoc
	folders  []folder
	caps     []byte // its initialize capabilities (capabilities.go)
}

var errExit = mux.NewError("client sent exit", mux.ErrClientDone)

// ServeClient serves one client session on conn, whose first message is
// expected to be initialize. It blocks until the session ends: the client
// sent exit, hit EOF, sent a malformed frame, fell too far behind reading,
// ctx ended, or the Mux stopped. It always closes conn, and closes the
// client's documents for it before returning. It returns nil for a clean
// end (exit or EOF) and the cause otherwise.
func (m *Mux) ServeClient(ctx context.Context, conn io.ReadWriteCloser) error {
	m.mu.Lock()
	if m.core.Phase() == mux.Stopped {
		err := m.err
		m.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		m.refuseStopped(conn, err)
		return err
	}
	m.nextClient++
	c := &client{m: m, id: m.nextClient, quota: mux.NewQuota(m.cfg.ClientInflight), docs: map[string]*cdoc{}}
	c.log = m.log.With("client", c.id)
	c.Client = mux.NewClient(conn, mux.ClientConfig{
		Framing: lspFraming{}, MaxQueue: m.cfg.ClientQueue, Frozen: m.cfg.ClientFrozen,
		MaxInflight: m.cfg.MaxRequests, Logger: c.log,
	})
	c.OnDirectRest(func() { m.event("direct-rest") })
	m.clients[c] = struct{}{}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()
	c.log.Debug("lsp client connected")

	err := c.Serve(ctx, wire.NewReader(conn, m.cfg.MaxMessage), c)
	if err == nil || errors.Is(err, errExit) || errors.Is(err, io.EOF) {
		c.log.Debug("lsp client left", "why", err)
		return nil
	}
	c.log.Info("lsp client disconnected", "why", err)
	return err
}

// FromClient routes one message from c (mux.ClientPolicy).
func (c *client) FromClient(body []byte) error { return c.m.fromClient(c, body) }

// ReadFailed says why reading c stopped (mux.ClientPolicy).
func (c *client) ReadFailed(err error) error {
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		// Skipping the body would read all of it (10 GB for a
		// Content-Length of 10000000000) while the window waits: end this
		// window's session, after the error answer.
		c.log.Warn("lsp client sent a message over the size limit; ending its session", "err", err)
		c.send(msgError(nil, codeInvalidRequest, "procref: "+err.Error()+"; this session ends (raise --max-message if the message was real)"))
	case errors.Is(err, wire.ErrBadHeader):
		c.log.Warn("lsp client sent a malformed frame; disconnecting it", "err", err)
	}
	return err
}

// Left forgets c (mux.ClientPolicy; see removeClient).
func (c *client) Left(error) { c.m.removeClient(c) }

// removeClient forgets c: closes its documents at the backend, answers the
// backend requests it held with an error, cancels its requests in flight,
// and drops its workspace folders.
func (m *Mux) removeClient(c *client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.left {
		return
	}
	c.left = true
	delete(m.clients, c)
	for i := 0; i < len(m.initWaiters); i++ {
		if m.initWaiters[i].c == c {
			m.initWaiters = append(m.initWaiters[:i], m.initWaiters[i+1:]...)
			i--
		}
	}
	live := m.core.Phase() == mux.Running && !m.closing
	for _, hid := range m.asks.OfClient(c) {
		sid, _ := m.takeServerRequest(c, hid)
		if live {
			// Known race: the client may have answered an instant before
			// leaving; its answer was then routed already and the entry gone.
			m.toServer(msgError(sid, codeRequestFailed, "the editor that was asked has disconnected"), nil)
		}
	}
	for _, hid := range m.calls.OfClient(c) {
		m.takeRequest(hid)
		if live {
			m.toServer(msgNotification("$/cancelRequest", mustJSON(map[string]int64{"id": hid})), nil)
		}
	}
	for _, set := range m.stokens {
		delete(set, c)
	}
	for uri := range c.docs {
		m.closeDoc(c, uri, live)
	}
	m.dropFolders(c, live)
}
