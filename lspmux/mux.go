package lspmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procref/procref/internal/pipeio"
	"github.com/procref/procref/lspframe"
)

type phase int

const (
	phaseIdle       phase = iota // no initialized backend; the next initialize starts one
	phaseStarting                // first initialize in flight
	phaseRunning                 // backend initialized
	phaseRestarting              // backend crashed; restarting and replaying
	phaseStopped                 // for good
)

// mux is the state behind Mux. Lock order: mux.mu, then queue/quota locks.
// Nothing blocks while holding mu: pushes never block (bounds are applied
// before taking it), and client disconnects only close a connection.
type mux struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // ends at Close; passed to Start
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // supervisor, session goroutines, client sessions

	nextID     atomic.Int64 // host ids toward the backend and toward clients; host progress tokens
	closeOnce  sync.Once
	closeErr   error
	doneOnce   sync.Once
	nextClient int

	mu          sync.Mutex
	phase       phase
	phaseCh     chan struct{} // closed and replaced at every phase change
	closing     bool
	err         error
	sess        *session
	sessions    int
	initParams  []byte // first client's initialize params (for restarts)
	initResult  []byte // cached initialize result
	initWaiters []initWaiter
	enc         posEncoding
	folderCaps  bool // backend supports workspace folder change notifications
	clients     map[*client]struct{}
	activeSeq   int64
	pending     map[int64]*pending // host id → request in flight at the backend
	srvReqs     map[string]*srvReq // backend's raw id → its request awaiting a client's answer
	docs        map[string]*doc
	verSeq      map[string]int64 // last version the backend saw per URI (survives close)
	regs        []registration
	ctokens     map[string]*ctoken          // host token (raw JSON) → client's own token
	stokens     map[string]map[*client]bool // backend-created progress token → clients told of it
	folders     map[string]*folderRef       // union of the clients' workspace folders
	backendFold map[string]bool             // folders the backend has been told about
	restarts    []time.Time

	testHook func(event string) // tests only: called at notable points (with mu held, except "direct-rest")
}

func (m *mux) event(ev string) {
	if m.testHook != nil {
		m.testHook(ev)
	}
}

type initWaiter struct {
	c  *client
	id []byte
}

// pending is a request in flight at the backend.
type pending struct {
	c      *client // nil: the mux's own request, answered on ch
	origID []byte
	method string
	tokens []string
	ch     chan []byte
	seq    int64
	size   int64 // request bytes, counted in c.awaiting until answered
}

// srvReq is a backend request forwarded to one client.
type srvReq struct {
	sid []byte
	c   *client
	hid int64
}

type registration struct {
	id  string
	raw json.RawMessage
}

type ctoken struct {
	c    *client
	orig []byte
}

type folderRef struct {
	name string
	n    int
}

type folder struct {
	URI  string `json:"uri"`
	Name string `json:"name"`
}

func newMux(cfg Config) (*mux, error) {
	if cfg.Start == nil {
		return nil, errors.New("lspmux: Config.Start is required")
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = lspframe.DefaultMaxMessage
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.ClientQueue <= 0 {
		cfg.ClientQueue = 32 << 20
	}
	if cfg.ClientInflight <= 0 {
		cfg.ClientInflight = 4 << 20
	}
	if cfg.MaxRestarts == 0 {
		cfg.MaxRestarts = 3
	}
	if cfg.RestartWindow <= 0 {
		cfg.RestartWindow = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &mux{
		cfg:         cfg,
		log:         cfg.Logger,
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
		phaseCh:     make(chan struct{}),
		clients:     map[*client]struct{}{},
		pending:     map[int64]*pending{},
		srvReqs:     map[string]*srvReq{},
		docs:        map[string]*doc{},
		verSeq:      map[string]int64{},
		ctokens:     map[string]*ctoken{},
		stokens:     map[string]map[*client]bool{},
		folders:     map[string]*folderRef{},
		backendFold: map[string]bool{},
	}, nil
}

// setPhase changes the phase and wakes everyone waiting for a change.
// Called with mu held.
func (m *mux) setPhase(p phase) {
	m.phase = p
	close(m.phaseCh)
	m.phaseCh = make(chan struct{})
}

func (m *mux) clientCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.clients)
}

func (m *mux) backendCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions
}

func (m *mux) stopErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// client is one client session.
type client struct {
	m     *mux
	id    int
	conn  io.ReadWriteCloser
	out   *queue
	quota *quota
	log   *slog.Logger

	deadline interface{ SetWriteDeadline(time.Time) error } // conn's, if it has one (sendDirect)
	try      interface{ TryWrite([]byte) (int, error) }     // conn's non-blocking write, if it has one (sendDirect)
	dbuf     []byte                                         // writeDirect's frame buffer (owned by whoever is writing)
	claimed  *session                                       // the client reader is the writer of this session's queue (forward)
	awaiting atomic.Int64                                   // bytes of this client's requests the backend has not answered yet
	stop     chan struct{}                                  // closed by kill
	killOnce sync.Once
	endOnce  sync.Once // endWith
	killErr  error
	flushErr error // guarded by out.mu

	// guarded by m.mu
	sentInit bool // has sent initialize
	inited   bool // has been answered initialize (successfully)
	ready    bool // has sent initialized
	gone     bool
	active   int64
	reqs     map[string]int64  // client's raw request id → host id
	outReqs  map[int64]*srvReq // host id of a backend request forwarded to this client
	docs     map[string]*cdoc
	tokens   map[string]string // client's raw token → host token
	folders  []folder
	caps     []byte // its initialize capabilities (capabilities.go)
}

// kill disconnects the client; its ServeClient then cleans up.
func (c *client) kill(err error) {
	c.killOnce.Do(func() {
		c.killErr = err
		close(c.stop)
		c.conn.Close()
	})
}

// flushThenKill disconnects c once what is queued for it has been written
// (or after a second, for a client that does not read).
func (c *client) flushThenKill(err error) {
	c.out.mu.Lock()
	c.flushErr = err
	c.out.mu.Unlock()
	time.AfterFunc(time.Second, func() { c.kill(err) }) // harmless if already gone
	c.out.close(false)
}

// send queues body toward the client. A client whose queue is over its
// bound is not reading: it is disconnected (never block the router).
// Called with or without m.mu held.
func (c *client) send(body []byte) {
	c.sendItem(item{body: body})
}

// sendItem is send for an item with edits.
func (c *client) sendItem(it item) {
	c.push(it, nil)
}

// sendDirect is sendItem from the session reader, which may write to the
// client itself: when nothing is queued for the client and its writer is
// idle, the reader takes the client over, keeps adding what it routes
// there, and writes it all at once before it next waits for the backend
// (flushClients), saving the hand-off to the writer goroutine on the
// round-trip path and batching a burst into one write. That write is
// never waits where the connection has a non-blocking write (TryWrite: the
// editor's pipes after a handoff), else is bounded by a deadline of
// directWait, so a client that does not read costs the reader at most
// that once: what did not fit goes back to the queue for the writer
// goroutine, which then owns the client. Called without m.mu held.
func (s *session) sendDirect(c *client, it item) {
	if c.deadline == nil && c.try == nil {
		c.push(it, nil)
		return
	}
	if c.push(it, s) {
		s.direct = append(s.direct, c)
	}
}

// flushClients writes what the session reader gathered for the clients it
// took over (sendDirect). Called by the session reader before it blocks.
func (s *session) flushClients() {
	for i, c := range s.direct {
		if err := c.out.drain(c.writeDirect); err != nil {
			c.kill(fmt.Errorf("write to client: %w", err))
		}
		s.direct[i] = nil
	}
	s.direct = s.direct[:0]
}

// directWait bounds a direct write to a client (see sendDirect).
const directWait = 200 * time.Microsecond

// writeDirect writes a batch to the client for flushClients: the small
// messages at its head in one write, without waiting (TryWrite) or under a
// deadline; it hands back what it did not write.
func (c *client) writeDirect(items []item) ([]item, error) {
	frame := c.dbuf[:0]
	i := 0
	for ; i < len(items); i++ {
		it := &items[i]
		if it.framed || len(it.body) > directMax {
			break // large or partly written: the writer goroutine's
		}
		frame = appendEdited(frame, it.body, it.edits)
		if it.recycle {
			lspframe.Recycle(it.body)
		}
	}
	c.dbuf = frame
	if len(frame) == 0 {
		return items, nil
	}
	var rest []item
	if c.try != nil {
		n, err := c.try.TryWrite(frame)
		if err == nil {
			if n < len(frame) {
				// The editor's pipe is full: the rest is the writer
				// goroutine's, which waits for room.
				rest = append(rest, item{body: append([]byte(nil), frame[n:]...), framed: true})
				c.m.event("direct-rest")
			}
			return append(rest, items[i:]...), nil
		}
		if !errors.Is(err, pipeio.ErrWouldBlock) {
			return nil, err
		}
	}
	if c.deadline == nil {
		rest = append(rest, item{body: append([]byte(nil), frame...), framed: true})
		return append(rest, items[i:]...), nil
	}
	if err := c.deadline.SetWriteDeadline(time.Now().Add(directWait)); err != nil {
		rest = append(rest, item{body: append([]byte(nil), frame...), framed: true})
		return append(rest, items[i:]...), nil
	}
	n, err := c.conn.Write(frame)
	if derr := c.deadline.SetWriteDeadline(time.Time{}); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		rest = append(rest, item{body: append([]byte(nil), frame[n:]...), framed: true})
	}
	return append(rest, items[i:]...), nil
}

// directMax is the largest body written directly (sendDirect, toServer
// with direct): larger ones are left to the writer goroutines, where their
// time on the wire blocks nobody else.
const directMax = 64 << 10

// appendEdited appends the framed message of body with edits applied.
func appendEdited(dst, body []byte, edits []lspframe.Edit) []byte {
	n := len(body)
	for _, e := range edits {
		n += len(e.With) - (e.At.End - e.At.Start)
	}
	dst = lspframe.AppendHeader(dst, n)
	at := 0
	for _, e := range edits { // in order: see the callers
		dst = append(dst, body[at:e.At.Start]...)
		dst = append(dst, e.With...)
		at = e.At.End
	}
	return append(dst, body[at:]...)
}

// push queues it (for owner, see queue.pushItem; the result is then
// whether the caller has taken the client's queue over and must drain
// it). A client over its bound is disconnected.
func (c *client) push(it item, owner any) bool {
	ok, drain := c.out.pushItem(it, c.m.cfg.ClientQueue, owner)
	if !ok {
		select {
		case <-c.stop:
		default:
			c.log.Warn("lsp client is not reading its messages; disconnecting it", "queued_limit", c.m.cfg.ClientQueue)
			go c.kill(errSlowClient)
		}
	}
	return drain
}

var (
	errSlowClient = errors.New("client stopped reading (outgoing queue full)")
	errExit       = errors.New("client sent exit")
)

func (m *mux) serveClient(ctx context.Context, conn io.ReadWriteCloser) error {
	m.mu.Lock()
	if m.phase == phaseStopped {
		err := m.err
		m.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		m.refuseStopped(conn, err)
		return err
	}
	m.nextClient++
	c := &client{
		m:    m,
		id:   m.nextClient,
		conn: conn,
		out:  newQueue(),
		deadline: func() interface{ SetWriteDeadline(time.Time) error } {
			d, _ := conn.(interface{ SetWriteDeadline(time.Time) error })
			return d
		}(),
		try: func() interface{ TryWrite([]byte) (int, error) } {
			t, _ := conn.(interface{ TryWrite([]byte) (int, error) })
			return t
		}(),
		quota:   newQuota(m.cfg.ClientInflight),
		stop:    make(chan struct{}),
		reqs:    map[string]int64{},
		outReqs: map[int64]*srvReq{},
		docs:    map[string]*cdoc{},
		tokens:  map[string]string{},
	}
	c.log = m.log.With("client", c.id)
	m.clients[c] = struct{}{}
	m.wg.Add(2)
	m.mu.Unlock()
	defer m.wg.Done()
	c.log.Debug("lsp client connected")

	go func() { // writer
		defer m.wg.Done()
		var batch []item
		var buf []byte
		for {
			var ok bool
			batch, ok = c.out.popBatch(c.stop, batch)
			if !ok {
				c.out.mu.Lock()
				err := c.flushErr
				c.out.mu.Unlock()
				c.kill(err) // after flushThenKill, or already killed
				return
			}
			var err error
			if buf, err = writeBatch(conn, batch, buf); err != nil {
				c.kill(fmt.Errorf("write to client: %w", err))
				return
			}
			clear(batch)
		}
	}()
	stopCtx := context.AfterFunc(ctx, func() { c.kill(ctx.Err()) })
	defer stopCtx()

	err := m.readClient(c)
	m.removeClient(c)
	c.out.mu.Lock()
	ending := c.flushErr
	c.out.mu.Unlock()
	switch {
	case ending != nil:
		// the mux was ending the session (endWith) when the client left:
		// its reason, not the client's EOF, is why the session ended
		err = ending
		<-c.stop // flushed (bounded, see flushThenKill)
	case EndReason(err) != "":
		select {
		case <-c.stop: // killed, or the client's connection failed
		default: // dropped for its input: tell it why
			c.endWith(err)
			<-c.stop
		}
	}
	c.kill(err)
	c.out.close(true)
	switch {
	case errors.Is(err, errExit), errors.Is(err, io.EOF):
		c.log.Debug("lsp client left", "why", err)
		return nil
	case c.killErr != nil && c.killErr != err:
		err = c.killErr
	}
	c.log.Info("lsp client disconnected", "why", err)
	return err
}

// readClient reads and routes the client's messages until the session
// ends, and returns why.
func (m *mux) readClient(c *client) error {
	r := lspframe.NewReader(c.conn, m.cfg.MaxMessage)
	defer m.flushServer(c)
	for {
		if !r.Ready() {
			m.flushServer(c) // Read may block: never while holding the backend
		}
		body, err := r.Read()
		if err != nil {
			if errors.Is(err, lspframe.ErrTooLarge) {
				// Skipping the body would read all of it (10 GB for a
				// Content-Length of 10000000000) while the window waits:
				// end this window's session, after the error answer.
				c.log.Warn("lsp client sent a message over the size limit; ending its session", "err", err)
				c.send(msgError(nil, codeInvalidRequest, "procref: "+err.Error()+"; this session ends (raise --max-message if the message was real)"))
				c.flushThenKill(err)
				<-c.stop
				return err
			}
			select {
			case <-c.stop: // killed: report the kill reason
				if c.killErr != nil {
					return c.killErr
				}
			default:
			}
			if errors.Is(err, lspframe.ErrBadHeader) {
				c.log.Warn("lsp client sent a malformed frame; disconnecting it", "err", err)
			}
			return err
		}
		if err := m.fromClient(c, body); err != nil {
			return err
		}
	}
}

// removeClient forgets c: closes its documents at the backend, answers the
// backend requests it held with an error, cancels its requests in flight,
// and drops its workspace folders.
func (m *mux) removeClient(c *client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.gone {
		return
	}
	c.gone = true
	delete(m.clients, c)
	for i := 0; i < len(m.initWaiters); i++ {
		if m.initWaiters[i].c == c {
			m.initWaiters = append(m.initWaiters[:i], m.initWaiters[i+1:]...)
			i--
		}
	}
	live := m.phase == phaseRunning && !m.closing
	for hid := range c.outReqs {
		sr := c.outReqs[hid]
		delete(m.srvReqs, string(sr.sid))
		if live {
			// Known race: the client may have answered an instant before
			// leaving; its answer was then routed already and the entry gone.
			m.toServer(msgError(sr.sid, codeRequestFailed, "the editor that was asked has disconnected"), nil)
		}
	}
	c.outReqs = nil
	for _, hid := range c.reqs {
		delete(m.pending, hid)
		if live {
			m.toServer(msgNotification("$/cancelRequest", mustJSON(map[string]int64{"id": hid})), nil)
		}
	}
	c.reqs = nil
	for htok, ct := range m.ctokens {
		if ct.c == c {
			delete(m.ctokens, htok)
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

// toServer queues body for the current backend. release (if set) is called
// once it has been written or dropped. Called with mu held; never blocks.
func (m *mux) toServer(body []byte, release func()) bool {
	return m.toServerItem(item{body: body, release: release})
}

// toServerItem is toServer for an item with edits.
func (m *mux) toServerItem(it item) bool {
	if m.sess == nil {
		if it.release != nil {
			it.release()
		}
		return false
	}
	ok, _ := m.sess.q.pushItem(it, 0, nil)
	return ok
}

// toServerDirect is toServerItem for c's reader: when the backend's queue
// is empty and idle, or already c's, c's reader becomes (or stays) its
// writer and writes what gathered before it next blocks (flushServer):
// no hand-off to the session writer goroutine on the round-trip path, and
// a burst of small messages leaves in one write. Large items always go to
// the writer goroutine. Called with mu held, from c's reader.
func (m *mux) toServerDirect(c *client, it item) {
	if m.sess == nil {
		if it.release != nil {
			it.release()
		}
		return
	}
	if len(it.body) > directMax || (c.claimed != nil && c.claimed != m.sess) {
		m.sess.q.pushItem(it, 0, nil)
		return
	}
	if _, claimed := m.sess.q.pushItem(it, 0, c); claimed {
		c.claimed = m.sess
	}
}

// flushServer writes what c's reader gathered for the backend (see
// toServerDirect). c's reader calls it before anything that may block:
// reading the client, waiting for quota or for the backend to run.
// Called without m.mu held.
func (m *mux) flushServer(c *client) {
	if s := c.claimed; s != nil {
		c.claimed = nil
		m.drainTo(s)
	}
}

// broadcast sends body to every client that has sent initialize (used for
// notifications that concern all of them). Called with mu held.
func (m *mux) broadcast(body []byte) {
	for c := range m.clients {
		if c.sentInit {
			c.send(body)
		}
	}
}

// waitRunning blocks until the backend is running (true), or the client or
// mux stops (false). Messages that need the backend wait here while it
// restarts.
func (m *mux) waitRunning(c *client) bool {
	for {
		m.mu.Lock()
		p, ch := m.phase, m.phaseCh
		m.mu.Unlock()
		switch p {
		case phaseRunning:
			return true
		case phaseStopped:
			return false
		}
		m.flushServer(c) // never wait while holding the backend
		select {
		case <-ch:
		case <-c.stop:
			return false
		}
	}
}

func (m *mux) close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		m.closeErr = m.shutdown(ctx)
	})
	return m.closeErr
}

func (m *mux) finish() {
	m.doneOnce.Do(func() { close(m.done) })
}
