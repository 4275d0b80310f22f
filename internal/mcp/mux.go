// Package mcp shares one stdio JSON-RPC server among many client sessions:
// the host side of procref's mux mode for MCP servers (policy [MCP]) and
// for any other JSON-RPC server (policy [Plain]). Like LSP's (lspmux) it
// is a policy on the core (internal/mux: mux.Core runs the server, starts
// and restarts it within its budget, and stops it), with its id and token
// routing in internal/idroute.
//
// The parts: framing (internal/wire: NDJSON or Content-Length, bounded),
// sessions and the server (this file: a session is the core's mux.Client
// with its hooks, FromClient, ReadFailed and Left; request ids rewritten
// and mapped back; the policy's hooks on the core), what is sent on the
// core's queues (queues.go), and the MCP policy (policy.go:
// initialize caching, cancel and progress routing, logging levels,
// resource subscriptions, server→client requests, roots).
//
// Plain policy: request ids are rewritten and mapped back; notifications
// from a client go to the server; the server's notifications go to every
// session; its requests go to the most recently active session.
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/procref/procref/internal/idroute"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// Policy selects the protocol rules.
type Policy string

// Policies.
const (
	MCP   Policy = "mcp"
	Plain Policy = "jsonrpc"
)

// Config configures a Mux. Start is required.
type Config struct {
	// Start starts the server process; called for the first session and
	// again after a crash. ctx ends when the Mux closes.
	Start func(ctx context.Context) (mux.Server, error)
	// Policy is MCP or Plain (default MCP); Framing the wire framing of
	// both the sessions and the server (default NDJSON).
	Policy  Policy
	Framing wire.Framing
	// MaxMessage bounds one message (default wire.DefaultMaxMessage);
	// a session that sends a larger one is ended with an error.
	MaxMessage int64
	Logger     *slog.Logger
	// ShutdownTimeout is how long Close lets the server exit after its
	// stdin is closed before killing it (default 300ms: MCP servers are
	// stopped by closing stdin, and many never exit on their own).
	ShutdownTimeout time.Duration
	// MaxRestarts crashes are restarted within RestartWindow (defaults 3,
	// one minute); one more stops the Mux.
	MaxRestarts   int
	RestartWindow time.Duration
	// StallTimeout and MaxQueueBytes bound a session that stopped reading
	// (defaults 30s and 64 MiB).
	StallTimeout  time.Duration
	MaxQueueBytes int
}

// ErrBackendFailed is recorded when the server failed more often than the
// restart limit allows.
var ErrBackendFailed = mux.ErrServerFailing

// A session is disconnected only when it has stopped reading: its oldest
// queued message has waited StallTimeout (default 30s) while more arrive,
// or its queue holds more than MaxQueueBytes (default 64 MiB). A burst it
// is reading, however long, never ends it.
const (
	defaultStallTimeout  = 30 * time.Second
	defaultMaxQueueBytes = 64 << 20
)

// MaxInflight is how many requests one session may have in flight at the
// shared server (subscriptions/listen streams not counted). While a
// session has that many outstanding, the mux stops reading its input, so
// one session pipelining a flood holds at most MaxInflight (32) places in
// the server's queue, and the sessions' requests are written to the server
// round-robin (one session at a time in turn, one request per turn:
// mux.Queue, sendServerFrom), instead of every other session's waiting
// behind the whole flood.
const MaxInflight = mux.DefaultMaxInflight

// Mux multiplexes sessions onto one server. Methods are safe for
// concurrent use.
type Mux struct {
	cfg  Config
	log  *slog.Logger
	core *mux.Core // the server: start, supervision, restart, stop; its state is under mu

	mu      sync.Mutex
	clients map[*client]bool
	nextID  int64
	tick    int64
	calls   idroute.Calls[*client, call] // requests in flight at the server, by host id
	asks    idroute.Asks[*client, ask]   // server requests in flight at sessions, by host id
	policy  mcpState
	done    chan struct{}
	err     error
}

// call is the mux's part of a request in flight at the server (the
// routing table's Data).
type call struct {
	srv      *mux.Instance  // the server it was sent to
	onDone   func(res *msg) // the mux's own requests
	listen   bool           // a subscriptions/listen stream
	interest []string       // a listen's notifications ([listenInterest])
	logLevel int            // its _meta logLevel (modern era); -1 none
	discover string         // server/discover: the protocol version to cache
}

// ask is the mux's part of a server request in flight at a session.
type ask struct {
	srv   *mux.Instance
	roots *rootsGather // roots/list fan-out, else nil
}

// client is one session: the core's client (its queue, direct writes,
// claim on the server's queue, bound and end) and the MCP state.
type client struct {
	*mux.Client
	m      *Mux
	active int64 // m.tick at its last request
	mcpClient
}

// New returns a Mux. It starts no server: the first session does.
func New(cfg Config) (*Mux, error) {
	if cfg.Start == nil {
		return nil, errors.New("mcp: Config.Start is required")
	}
	if cfg.Policy == "" {
		cfg.Policy = MCP
	}
	if cfg.Framing == "" {
		cfg.Framing = wire.NDJSON
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 300 * time.Millisecond
	}
	if cfg.MaxRestarts == 0 {
		cfg.MaxRestarts = 3
	}
	if cfg.RestartWindow <= 0 {
		cfg.RestartWindow = time.Minute
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = defaultStallTimeout
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = defaultMaxQueueBytes
	}
	m := &Mux{cfg: cfg, log: cfg.Logger, clients: map[*client]bool{}, policy: newMCPState(), done: make(chan struct{})}
	f := cfg.Framing
	m.core = mux.NewCore(mux.Config{
		Start: cfg.Start, Framing: queueFraming{f}, Lock: &m.mu,
		NewReader:   func(r io.Reader) wire.MessageReader { return f.NewReader(r, cfg.MaxMessage) },
		MaxRestarts: cfg.MaxRestarts, RestartWindow: cfg.RestartWindow, Logger: cfg.Logger,
	}, (*policy)(m))
	return m, nil
}

// Clients returns the number of connected sessions.
func (m *Mux) Clients() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.clients)
}

// Backends returns how many server processes the Mux has started.
func (m *Mux) Backends() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.Starts()
}

// Done is closed when the Mux has stopped: Close, or the server failed
// beyond the restart limit.
func (m *Mux) Done() <-chan struct{} { return m.done }

// ServeClient serves one session on conn. It blocks until the session
// ends (EOF, a bad frame, the client fell behind, ctx, or the Mux
// stopped), closes conn, and returns nil for a clean end (EOF).
func (m *Mux) ServeClient(ctx context.Context, conn io.ReadWriteCloser) error {
	c := &client{m: m, mcpClient: newMCPClient()}
	c.Client = mux.NewClient(conn, mux.ClientConfig{
		Framing: queueFraming{m.cfg.Framing}, MaxQueue: int64(m.cfg.MaxQueueBytes),
		Frozen: m.cfg.StallTimeout, MaxInflight: MaxInflight, Logger: m.log,
	})
	m.mu.Lock()
	if m.err != nil {
		c.End(m.err) // it gets the end notice, then its connection closes
	} else {
		m.clients[c] = true
		if m.cfg.Policy == Plain {
			m.core.Start()
		}
	}
	m.mu.Unlock()
	err := c.Serve(ctx, m.cfg.Framing.NewReader(conn, m.cfg.MaxMessage), c)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// FromClient routes one message from c (mux.ClientPolicy); an error ends
// the session after an error answer. Then c's reader waits while the
// server's queue is full or c has MaxInflight requests outstanding.
func (c *client) FromClient(body []byte) error {
	m := c.m
	if err := m.fromClient(c, body); err != nil {
		c.send(errorMsg(nil, codeParseError, "procref: "+err.Error()))
		return err
	}
	m.waitServerRoom(c)
	// what this reader gathered may be those requests
	c.Bound().Wait(c.Ending(), nil, c.FlushServer)
	return nil
}

// ReadFailed says why reading c stopped (mux.ClientPolicy): a clean EOF,
// or a framing error, answered before the session ends.
func (c *client) ReadFailed(err error) error {
	if !errors.Is(err, io.EOF) {
		c.send(errorMsg(nil, codeInvalidRequest, "procref: "+err.Error()))
	}
	return err
}

// Left forgets c (mux.ClientPolicy; see removeClient).
func (c *client) Left(error) { c.m.removeClient(c) }

// fromClient routes one message from c. An error ends the session.
func (m *Mux) fromClient(c *client, body []byte) error {
	if len(body) > 0 && body[0] == '[' {
		return errors.New("the client sent a JSON-RPC batch, which MCP does not allow (since 2025-06-18)")
	}
	in, err := parseMsg(body)
	if err != nil {
		return fmt.Errorf("the client sent invalid JSON: %w", err)
	}
	switch {
	case in.isResponse():
		return m.clientResponse(c, in)
	case in.Method == "":
		return errors.New("the client sent a message that is neither a request, a response nor a notification")
	}
	if m.cfg.Policy == MCP {
		return m.mcpFromClient(c, in)
	}
	if !c.WaitRunning(m.core) {
		return nil
	}
	if in.isRequest() {
		m.forward(c, in)
		return nil
	}
	m.toServer(body)
	return nil
}

// msgServerExited answers a request the server will not answer: it was in
// flight when the server exited, or came while none ran.
const msgServerExited = "procref: the server exited before answering; it is being restarted"

// forward sends c's request to the server under a fresh host id (and
// progress token rewritten to a host token if it has one).
func (m *Mux) forward(c *client, in *msg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.core.Current()
	if s == nil {
		// The server exited after c's WaitRunning: answer as a request in
		// flight at the crash is answered (the client may ask again),
		// rather than queue it for a server that no longer runs.
		if in.isRequest() {
			c.send(errorMsg(in.ID, codeInternal, msgServerExited))
		}
		return
	}
	m.nextID++
	hid := m.nextID
	m.tick++
	c.active = m.tick
	cl := idroute.Call[*client, call]{Client: c, ID: in.ID, Data: call{srv: s, logLevel: -1}}
	if v := metaVersion(in.Params); v != "" {
		cl.Data.logLevel = levelOf(getString(in.Params, "_meta", MetaLogLevel))
		if in.Method == "server/discover" {
			cl.Data.discover = v
		}
	}
	if in.Method == "subscriptions/listen" {
		cl.Data.listen, cl.Data.interest = true, listenInterest(in.Params)
	}
	if tok := getParam(in.Params, "_meta", "progressToken"); tok != nil {
		host := mustJSON(fmt.Sprintf("procref-%d", hid))
		in.Params, _ = setParam(in.Params, host, "_meta", "progressToken")
		cl.Tokens = []idroute.Token{{Host: string(host), Client: tok}}
	}
	m.addCall(hid, cl)
	out := *in
	out.ID = hostID(hid)
	m.sendServerFrom(c, in, out.encode())
}

// hostRequest sends the mux's own request; done gets the answer (nil if
// the server went away first). Callers hold m.mu.
func (m *Mux) hostRequest(method string, params json.RawMessage, done func(*msg)) {
	m.nextID++
	m.addCall(m.nextID, idroute.Call[*client, call]{Data: call{srv: m.core.Current(), onDone: done}})
	m.sendServerLocked((&msg{ID: hostID(m.nextID), Method: method, Params: params}).encode())
}

// addCall and takeCall are the only changes of m.calls; they keep each
// session's bound in step (a subscriptions/listen stream is not counted:
// it stays open for the session's life). Callers hold m.mu.
func (m *Mux) addCall(hid int64, cl idroute.Call[*client, call]) {
	m.calls.Add(hid, cl)
	if c := cl.Client; c != nil && !cl.Data.listen {
		c.Bound().Add()
	}
}

func (m *Mux) takeCall(hid int64) (idroute.Call[*client, call], bool) {
	cl, ok := m.calls.Take(hid)
	if c := cl.Client; ok && c != nil && !cl.Data.listen {
		c.Bound().Done()
	}
	return cl, ok
}

// toServer queues body toward the current server (dropped if none).
func (m *Mux) toServer(body []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sendServerLocked(body)
}

func (m *Mux) sendServerLocked(body []byte) {
	// A closed queue (the writer failed) drops it: the core reports the
	// crash.
	if s := m.core.Current(); s != nil {
		s.Push(body)
	}
}

// clientResponse maps a session's answer to a server request back. An
// answer with an id the mux never sent is an error that ends the session;
// one to a request answered or cancelled already is dropped.
func (m *Mux) clientResponse(c *client, in *msg) error {
	var hid int64
	m.mu.Lock()
	defer m.mu.Unlock()
	if json.Unmarshal(in.ID, &hid) != nil || hid <= 0 || hid > m.nextID {
		return fmt.Errorf("the client sent an answer with id %s, which matches no request sent to it", in.ID)
	}
	a, ok := m.asks.Take(c, hid)
	if !ok {
		return nil // answered already, or for a server that is gone
	}
	if a.Data.roots != nil {
		a.Data.roots.add(m, in)
		return nil
	}
	if a.Data.srv != m.core.Current() {
		return nil
	}
	out := *in
	out.ID = a.ServerID
	m.sendServerLocked(out.encode())
	return nil
}

// removeClient forgets a session: its pending requests are cancelled at
// the server, server requests it held are answered with an error, and the
// policy drops its state.
func (m *Mux) removeClient(c *client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.clients, c)
	for _, hid := range m.calls.OfClient(c) {
		cl, _ := m.takeCall(hid)
		if m.cfg.Policy == MCP && m.keepListen(hid, cl) {
			continue
		}
		if m.cfg.Policy == MCP && cl.Data.srv == m.core.Current() {
			m.sendServerLocked(notification("notifications/cancelled", map[string]any{
				"requestId": hid, "reason": "procref: the client session ended"}))
		}
	}
	for _, hid := range m.asks.OfClient(c) {
		a, _ := m.asks.Take(c, hid)
		if a.Data.roots != nil {
			a.Data.roots.add(m, nil)
		} else if a.Data.srv == m.core.Current() {
			m.sendServerLocked(errorMsg(a.ServerID, codeInternal, "procref: the client session that was asked ended"))
		}
	}
	if m.cfg.Policy == MCP {
		m.endKeptListens()
		m.mcpRemove(c)
	}
}

// ensureServer starts the first server if none runs or is starting
// (phase Idle). It does not block.
func (m *Mux) ensureServer() {
	m.mu.Lock()
	m.core.Start()
	m.mu.Unlock()
}

// policy is the Mux seen as the core's mux.Policy.
type policy Mux

var _ mux.Policy = (*policy)(nil)

// Started initializes a fresh server (MCP: with the first session's
// initialize, replayed after a restart; it does not wait for the answer).
func (p *policy) Started(s *mux.Instance) error {
	if m := (*Mux)(p); m.cfg.Policy == MCP {
		// Queued before anything a waiting session sends: the (replayed)
		// initialize comes first on the server's stdin.
		m.mcpStarted(s)
	}
	return nil
}

// FromServer routes one message from the server.
func (p *policy) FromServer(s *mux.Instance, body []byte) {
	m := (*Mux)(p)
	in, err := parseServerMsg(body)
	if err != nil {
		m.log.Warn("the server sent invalid JSON; dropped", "err", err)
		return
	}
	m.fromServer(s, in)
}

// Crashed answers what was in flight at the server that ended.
func (p *policy) Crashed(s *mux.Instance, cause error) { (*Mux)(p).crashed() }

// NeverUp: the first server did not start; the Mux stops with why (the
// host then ends, and the next session starts afresh).
func (p *policy) NeverUp(s *mux.Instance, cause error) {
	(*Mux)(p).stop(mux.NewError(cause.Error(), mux.ErrNotStarted))
}

// GaveUp: the server crashed more often than the restart budget allows.
func (p *policy) GaveUp(cause error, restarts int, window time.Duration) {
	(*Mux)(p).stop(fmt.Errorf("%w (%d restarts within %v): %v", ErrBackendFailed, restarts, window, cause))
}

// fromServer routes one message from the server.
func (m *Mux) fromServer(s *mux.Instance, in *msg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s != m.core.Current() {
		return
	}
	switch {
	case in.isResponse():
		m.serverResponse(s, in)
	case in.isRequest():
		m.serverRequest(s, in)
	case in.isNotification():
		if m.cfg.Policy == MCP {
			if !m.taggedNotification(in) {
				m.mcpNotification(in)
			}
			return
		}
		b := in.encode()
		for c := range m.clients {
			c.send(b)
		}
	}
}

func (m *Mux) serverResponse(s *mux.Instance, in *msg) {
	var hid int64
	if json.Unmarshal(in.ID, &hid) != nil {
		return
	}
	cl, ok := m.takeCall(hid)
	if !ok {
		return
	}
	if cl.Data.onDone != nil {
		cl.Data.onDone(in)
		return
	}
	if cl.Client == nil {
		return
	}
	if m.cfg.Policy == MCP {
		m.noteResult(cl.Data.srv, cl.Data, in.Result)
	}
	out := *in
	out.ID = cl.ID
	m.sendResponse(s, cl.Client, out.encode())
}

// serverRequest forwards a server request to the session chosen by the
// policy under a host id; with none, the server gets an error answer.
func (m *Mux) serverRequest(s *mux.Instance, in *msg) {
	var c *client
	if m.cfg.Policy == MCP {
		if m.mcpServerRequest(s, in) {
			return
		}
		c = m.pickClient(capabilityFor(in.Method), in.Method)
	} else {
		c = m.pickClient("", in.Method)
	}
	if c == nil {
		m.sendServerLocked(errorMsg(in.ID, codeInternal, "procref: no client session can answer "+in.Method))
		return
	}
	m.sendToClient(c, s, in, nil)
}

// sendToClient forwards server request in to c under a host id. A
// roots/list fan-out (g) is answered by the mux, so the server's cancel
// does not look for it.
func (m *Mux) sendToClient(c *client, s *mux.Instance, in *msg, g *rootsGather) {
	m.nextID++
	sid := in.ID
	if g != nil {
		sid = nil
	}
	m.asks.Add(m.nextID, idroute.Ask[*client, ask]{Client: c, ServerID: sid, Data: ask{srv: s, roots: g}})
	out := *in
	out.ID = hostID(m.nextID)
	c.send(out.encode())
}

// pickClient returns the session that could have caused a server
// request: a session that declared capability (any, if "") and has a
// request in flight (subscriptions/listen streams aside). With exactly one
// such session it is that one. With several the request is ambiguous
// (stdio carries no tag of the request that caused it): the rule is the
// most recently active of them, and the ambiguity is logged. With none in
// flight, the most recently active capable session (a request of the
// server's own); nil if no session declared the capability.
func (m *Mux) pickClient(capability, method string) *client {
	var busy, idle *client
	candidates := 0
	for c := range m.clients {
		if capability != "" && !c.caps[capability] {
			continue
		}
		if c.Bound().Count() > 0 {
			candidates++
			if busy == nil || c.active > busy.active {
				busy = c
			}
		} else if idle == nil || c.active > idle.active {
			idle = c
		}
	}
	if candidates > 1 {
		m.log.Info("a server request could come from several sessions; sent to the most recently active", "method", method, "sessions", candidates)
	}
	if busy != nil {
		return busy
	}
	return idle
}

// crashed answers what was in flight at the server that ended (called
// by the core with m.mu held): pending requests get an error; server
// requests in flight at sessions are forgotten, except a roots/list
// fan-out, which still answers the (new) server once.
func (m *Mux) crashed() {
	for _, hid := range m.calls.All() {
		if cl, _ := m.takeCall(hid); cl.Client != nil {
			cl.Client.send(errorMsg(cl.ID, codeInternal, msgServerExited))
		}
	}
	type asked struct {
		c   *client
		hid int64
	}
	var dead []asked
	m.asks.Each(func(hid int64, a idroute.Ask[*client, ask]) {
		if a.Data.roots == nil {
			dead = append(dead, asked{a.Client, hid})
		}
	})
	for _, a := range dead {
		m.asks.Take(a.c, a.hid)
	}
}

// stop ends the Mux for good with err (the first err wins) and returns
// the server instance to stop, nil if none runs.
func (m *Mux) stop(err error) *mux.Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil
	}
	m.err = err
	inst := m.core.Shut()
	for c := range m.clients {
		var last [][]byte
		if c.initID != nil {
			last = append(last, errorMsg(c.initID, codeInternal, fmt.Sprintf("procref: %v", err)))
		}
		c.End(err, last...) // its end notice says why
	}
	close(m.done)
	return inst
}

// Close stops the Mux: every session is disconnected, what is queued for
// the server is written, its stdin closed, and it is killed if it has not
// exited within ShutdownTimeout. It blocks until the server process has
// exited.
func (m *Mux) Close(ctx context.Context) error {
	inst := m.stop(mux.ErrClosed)
	return m.core.Stop(ctx, inst, m.cfg.ShutdownTimeout, nil)
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
