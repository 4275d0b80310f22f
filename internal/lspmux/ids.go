package lspmux

import (
	"fmt"
	"strconv"
	"time"

	"github.com/procref/procref/internal/idroute"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// clientRequest forwards a request with a host id (and host progress
// tokens) to the backend.
func (m *Mux) clientRequest(c *client, f *wire.Fields, body []byte) error {
	if !m.ready(c) {
		m.log.Warn("request before the initialize result refused (LSP forbids it)", "client", c.id, "method", f.MethodName())
		c.send(msgError(f.ID.Of(body), codeServerNotInitialized, "initialize first"))
		return nil
	}
	if !m.waitRequestSlot(c) {
		return c.Err()
	}
	var toks []wire.Span
	if f.Params.Ok() {
		params := f.Params.Of(body)
		sp, err := wire.Members(params, "workDoneToken", "partialResultToken")
		if err == nil {
			for _, s := range sp {
				if s.Ok() {
					toks = append(toks, wire.Span{Start: f.Params.Start + s.Start, End: f.Params.Start + s.End})
				}
			}
		}
	}
	return m.forward(c, body, func(hid int64) (mux.Item, func()) {
		origID := append([]byte(nil), f.ID.Of(body)...)
		edits := []wire.Edit{{At: f.ID, With: idToken(hid)}}
		var uri string
		if f.Params.Ok() { // positions in c's text to the backend's (textview.go)
			vedits, u, err := m.viewRequest(c, f, body)
			if err != nil {
				c.send(msgError(origID, codeContentModified, err.Error()))
				return mux.Item{}, nil
			}
			edits, uri = append(edits, vedits...), u
		}
		var origToks [][]byte
		for _, s := range toks {
			origToks = append(origToks, append([]byte(nil), s.Of(body)...))
		}
		data := call{method: f.MethodName(), seq: m.activeSeq, size: int64(len(body)), uri: uri}
		for i, htok := range m.addRequest(hid, c, origID, data, origToks...) {
			edits = append(edits, wire.Edit{At: toks[i], With: []byte(htok)})
		}
		// nothing keeps body (ids and tokens were copied): written with
		// the edits spliced in, then recycled; in c's turn (mux.Queue:
		// clients' requests round-robin, notifications in push order)
		return mux.Item{Body: body, Edits: edits, Recycle: true, Turn: c}, nil
	})
}

// forward takes c's in-flight quota for body, then (with mu held and the
// backend running) lets build produce the item to send and queues it.
// build may return an item without a body to send nothing.
func (m *Mux) forward(c *client, body []byte, build func(hid int64) (mux.Item, func())) error {
	n := int64(len(body))
	for {
		// The client is not keeping up with what is sent to it (mostly
		// the answers to what it asked, counted by request size while the
		// backend works on them): stop reading its requests until it
		// catches up, rather than let its queue reach ClientQueue and
		// disconnect a client that reads, only slowly. A client that does
		// not read at all (its queue over a quarter of the bound, nothing
		// taken for clientStall) is disconnected.
		over := func(queued int64) bool { return queued+c.awaiting.Load() > m.cfg.ClientQueue/2 }
		if c.Queue().Over(over) {
			c.FlushServer()
			switch err := c.Queue().WaitRoom(over, m.cfg.ClientQueue/4, c.Ending(), clientStall); err {
			case mux.ErrStalled:
				c.log.Warn("lsp client is not reading its messages; disconnecting it", "queued_over", m.cfg.ClientQueue/4)
				err := fmt.Errorf("%w (nothing taken for %v)", mux.ErrClientStalled, clientStall)
				c.End(err)
				return err
			case mux.ErrCanceled:
				return c.Err()
			}
		}
		if !c.quota.TryAcquire(n) {
			// what this reader gathered for the backend (FlushServer) may
			// be what holds the quota
			c.FlushServer()
			if !c.quota.Acquire(n, c.Ending()) {
				return c.Err()
			}
		}
		m.mu.Lock()
		if m.core.Phase() != mux.Running {
			m.mu.Unlock()
			c.quota.Release(n)
			if !c.WaitRunning(m.core) {
				return nil
			}
			continue
		}
		m.activeSeq++
		c.active = m.activeSeq
		out, after := build(m.nextID.Add(1))
		if out.Body != nil {
			out.Release = func() { c.quota.Release(n) }
			// this reader may write it itself (FlushServer); queue order
			// is kept, and a backend that does not read blocks this
			// client's reader only, as its quota would
			c.ToServer(m.core.Current(), out)
		} else {
			c.quota.Release(n)
		}
		m.mu.Unlock()
		if after != nil {
			after()
		}
		return nil
	}
}

// clientResponse maps a client's answer to a backend request back to the
// backend's id; answers to requests the mux made up are dropped.
func (m *Mux) clientResponse(c *client, f *wire.Fields, body []byte) {
	hid, ok := parseHostID(f.ID.Of(body))
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sid, ok := m.takeServerRequest(c, hid)
	if !ok {
		return
	}
	// Sent without the client's quota: it answers what the backend asked.
	m.toServer(wire.Splice(body, f.ID, sid), nil)
}

// call is the mux's part of a request in flight at the backend (the
// routing table's Data).
type call struct {
	method string
	seq    int64       // m.activeSeq when it was sent (pickClient)
	size   int64       // request bytes, counted in c.awaiting until answered
	ch     chan []byte // the mux's own request: where its answer goes
	uri    string      // the request's textDocument (textview.go)
}

// hostCall sends the mux's own request and waits for the answer, the
// backend's end, or timeout (0: none).
func (m *Mux) hostCall(s *mux.Instance, method string, params []byte, timeout time.Duration) ([]byte, error) {
	hid := m.nextID.Add(1)
	ch := make(chan []byte, 1)
	m.mu.Lock()
	m.addRequest(hid, nil, nil, call{method: method, ch: ch})
	s.Push(msgRequest(hid, method, params))
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
	case <-s.Ended():
	case <-tc:
	}
	m.mu.Lock()
	m.takeRequest(hid)
	m.mu.Unlock()
	return nil, fmt.Errorf("no answer to %s from the language server", method)
}

func (m *Mux) serverResponse(s *mux.Instance, f *wire.Fields, body []byte) {
	hid, ok := parseHostID(f.ID.Of(body))
	if !ok {
		m.log.Warn("language server answered an id the mux never sent; dropped", "id", string(f.ID.Of(body)))
		return
	}
	m.mu.Lock()
	p, ok := m.takeRequest(hid)
	m.mu.Unlock()
	if !ok {
		return // its client has gone, or a duplicate
	}
	if p.Data.ch != nil {
		p.Data.ch <- body
		return
	}
	c := p.Client
	if out, ok := m.viewResult(c, f, body, p.ID, p.Data.uri); ok {
		wire.Recycle(body)
		c.SendFrom(s, mux.Item{Body: out})
		return
	}
	// the body goes to this one client and nothing keeps it: written
	// with the client's id spliced in, then recycled
	c.SendFrom(s, mux.Item{Body: body, Edits: []wire.Edit{{At: f.ID, With: p.ID}}, Recycle: true})
}

// The routing tables (package idroute): m.calls, the requests in flight
// at the backend with their progress tokens, and m.asks, the backend's
// requests in flight at clients. Every change goes through the four
// methods below, which also keep each client's c.awaiting (the bytes of
// its unanswered requests) in step; with m.checks set (tests) the tables
// verify themselves after every change and checkAwaiting the bytes. All
// are called with mu held.

// addRequest records request hid of client c (nil: the mux's own) with
// its own id, and gives each of its progress tokens a host token, returned
// in order.
func (m *Mux) addRequest(hid int64, c *client, id []byte, data call, clientTokens ...[]byte) []string {
	var toks []idroute.Token
	var hosts []string
	for _, orig := range clientTokens {
		htok := string(wire.Quote("procref/" + strconv.FormatInt(m.nextID.Add(1), 10)))
		toks = append(toks, idroute.Token{Host: htok, Client: orig})
		hosts = append(hosts, htok)
	}
	m.calls.Add(hid, idroute.Call[*client, call]{Client: c, ID: id, Tokens: toks, Data: data})
	if c != nil {
		c.Bound().Add()
		c.awaiting.Add(data.size)
		m.checkAwaiting(c)
	}
	return hosts
}

// takeRequest removes request hid (answered, failed or abandoned) with
// its tokens and returns it; false if there is none.
func (m *Mux) takeRequest(hid int64) (idroute.Call[*client, call], bool) {
	p, ok := m.calls.Take(hid)
	if ok && p.Client != nil {
		p.Client.Bound().Done()
		p.Client.awaiting.Add(-p.Data.size)
		m.checkAwaiting(p.Client)
	}
	return p, ok
}

// addServerRequest records backend request sid forwarded to c under host
// id hid. A backend that reuses an id still awaiting an answer replaces
// the older request (which then gets no answer from here).
func (m *Mux) addServerRequest(c *client, sid []byte, hid int64) {
	c.Bound().Wake() // it may wait for a slot that only its answer frees
	if m.asks.Add(hid, idroute.Ask[*client, struct{}]{Client: c, ServerID: sid}) {
		m.log.Warn("language server reused a request id still awaiting an answer", "id", string(sid))
	}
}

// takeServerRequest removes c's backend request hid (answered, or c
// left) and returns the backend's id for it; false if there is none.
func (m *Mux) takeServerRequest(c *client, hid int64) ([]byte, bool) {
	a, ok := m.asks.Take(c, hid)
	return a.ServerID, ok
}

// checkAwaiting panics if c.awaiting is not the size of c's requests in
// flight (tests only: m.checks).
func (m *Mux) checkAwaiting(c *client) {
	if !m.checks {
		return
	}
	var sum int64
	m.calls.Each(func(_ int64, p idroute.Call[*client, call]) {
		if p.Client == c {
			sum += p.Data.size
		}
	})
	if got := c.awaiting.Load(); got != sum {
		panic(fmt.Sprintf("lspmux: client %d awaits %d bytes, its requests in flight are %d", c.id, got, sum))
	}
}
