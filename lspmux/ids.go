package lspmux

import (
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/procref/procref/lspframe"
)

// clientRequest forwards a request with a host id (and host progress
// tokens) to the backend.
func (m *Mux) clientRequest(c *client, f *lspframe.Fields, body []byte) error {
	if !m.ready(c) {
		m.log.Warn("request before the initialize result refused (LSP forbids it)", "client", c.id, "method", f.MethodName())
		c.send(msgError(f.ID.Of(body), codeServerNotInitialized, "initialize first"))
		return nil
	}
	var toks []lspframe.Span
	if f.Params.Ok() {
		params := f.Params.Of(body)
		sp, err := lspframe.Members(params, "workDoneToken", "partialResultToken")
		if err == nil {
			for _, s := range sp {
				if s.Ok() {
					toks = append(toks, lspframe.Span{Start: f.Params.Start + s.Start, End: f.Params.Start + s.End})
				}
			}
		}
	}
	return m.forward(c, body, func(hid int64) (item, func()) {
		origID := append([]byte(nil), f.ID.Of(body)...)
		edits := []lspframe.Edit{{At: f.ID, With: idToken(hid)}}
		p := &pending{c: c, origID: origID, method: f.MethodName(), seq: m.activeSeq, size: int64(len(body))}
		var origToks [][]byte
		for _, s := range toks {
			origToks = append(origToks, append([]byte(nil), s.Of(body)...))
		}
		for i, htok := range m.addRequest(hid, p, origToks...) {
			edits = append(edits, lspframe.Edit{At: toks[i], With: []byte(htok)})
		}
		// nothing keeps body (ids and tokens were copied): written with
		// the edits spliced in, then recycled
		return item{body: body, edits: edits, recycle: true}, nil
	})
}

// forward takes c's in-flight quota for body, then (with mu held and the
// backend running) lets build produce the item to send and queues it.
// build may return an item without a body to send nothing.
func (m *Mux) forward(c *client, body []byte, build func(hid int64) (item, func())) error {
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
		if c.out.over(over) {
			m.flushServer(c)
			switch err := c.out.waitRoom(over, m.cfg.ClientQueue/4, c.stop, clientStall); err {
			case errStalled:
				c.log.Warn("lsp client is not reading its messages; disconnecting it", "queued_over", m.cfg.ClientQueue/4)
				c.kill(errSlowClient)
				return errSlowClient
			case errCanceled:
				return c.killErr
			}
		}
		if !c.quota.tryAcquire(n) {
			// what this reader gathered for the backend (flushServer) may
			// be what holds the quota
			m.flushServer(c)
			if !c.quota.acquire(n, c.stop) {
				return c.killErr
			}
		}
		m.mu.Lock()
		if m.phase != phaseRunning {
			m.mu.Unlock()
			c.quota.release(n)
			if !m.waitRunning(c) {
				return nil
			}
			continue
		}
		m.activeSeq++
		c.active = m.activeSeq
		out, after := build(m.nextID.Add(1))
		if out.body != nil {
			out.release = func() { c.quota.release(n) }
			// this reader may write it itself (flushServer); queue order
			// is kept, and a backend that does not read blocks this
			// client's reader only, as its quota would
			m.toServerDirect(c, out)
		} else {
			c.quota.release(n)
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
func (m *Mux) clientResponse(c *client, f *lspframe.Fields, body []byte) {
	hid, ok := parseHostID(f.ID.Of(body))
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sr := m.takeServerRequest(c, hid)
	if sr == nil {
		return
	}
	// Sent without the client's quota: it answers what the backend asked.
	m.toServer(lspframe.Splice(body, f.ID, sr.sid), nil)
}

// pending is a request in flight at the backend.
type pending struct {
	c      *client // nil: the mux's own request, answered on ch
	origID []byte
	method string
	tokens []string // host progress tokens standing for the client's
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

// ctoken is a client's own progress token behind a host token.
type ctoken struct {
	c    *client
	orig []byte
}

// hostCall sends the mux's own request and waits for the answer, the
// session's end, or timeout (0: none).
func (m *Mux) hostCall(s *session, method string, params []byte, timeout time.Duration) ([]byte, error) {
	hid := m.nextID.Add(1)
	ch := make(chan []byte, 1)
	m.mu.Lock()
	m.addRequest(hid, &pending{method: method, ch: ch})
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
	m.takeRequest(hid)
	m.mu.Unlock()
	return nil, fmt.Errorf("no answer to %s from the language server", method)
}

func (m *Mux) serverResponse(s *session, f *lspframe.Fields, body []byte) {
	hid, ok := parseHostID(f.ID.Of(body))
	if !ok {
		m.log.Warn("language server answered an id the mux never sent; dropped", "id", string(f.ID.Of(body)))
		return
	}
	m.mu.Lock()
	p := m.takeRequest(hid)
	m.mu.Unlock()
	if p == nil {
		return // its client has gone, or a duplicate
	}
	if p.ch != nil {
		p.ch <- body
		return
	}
	c := p.c
	// the body goes to this one client and nothing keeps it: written
	// with the client's id spliced in, then recycled
	s.sendDirect(c, item{body: body, edits: []lspframe.Edit{{At: f.ID, With: p.origID}}, recycle: true})
}

// The routing tables: m.pending (host id → request in flight at the
// backend) with each client's c.reqs (its id → host id) and c.awaiting
// (bytes of its unanswered requests); m.ctokens and c.tokens (host
// progress token ⇄ the client's own); m.srvReqs (backend id → backend
// request awaiting a client's answer) with c.outReqs. They change only
// through the four methods below, which keep them in step; with
// Mux.checks set (tests) every change is followed by checkIDs. All are
// called with mu held.

// addRequest records request hid of p.c (nil: the mux's own) and gives
// each of the client's progress tokens a host token, returned in order.
func (m *Mux) addRequest(hid int64, p *pending, clientTokens ...[]byte) []string {
	m.pending[hid] = p
	if c := p.c; c != nil {
		c.reqs[string(p.origID)] = hid
		c.awaiting.Add(p.size)
		for _, orig := range clientTokens {
			htok := string(lspframe.Quote("procref/" + strconv.FormatInt(m.nextID.Add(1), 10)))
			m.ctokens[htok] = &ctoken{c: c, orig: orig}
			c.tokens[string(orig)] = htok
			p.tokens = append(p.tokens, htok)
		}
	}
	m.checkIDs()
	return p.tokens
}

// takeRequest removes request hid (answered, failed or abandoned) with
// its client's entries and tokens, and returns it; nil if there is none.
func (m *Mux) takeRequest(hid int64) *pending {
	p := m.pending[hid]
	if p == nil {
		return nil
	}
	delete(m.pending, hid)
	if c := p.c; c != nil {
		delete(c.reqs, string(p.origID))
		c.awaiting.Add(-p.size)
		for _, t := range p.tokens {
			if ct := m.ctokens[t]; ct != nil && c.tokens[string(ct.orig)] == t {
				delete(c.tokens, string(ct.orig))
			}
			delete(m.ctokens, t)
		}
	}
	m.checkIDs()
	return p
}

// addServerRequest records a backend request forwarded to sr.c. A
// backend that reuses an id still awaiting an answer replaces the older
// request (which then gets no answer from here).
func (m *Mux) addServerRequest(sr *srvReq) {
	if old := m.srvReqs[string(sr.sid)]; old != nil {
		m.log.Warn("language server reused a request id still awaiting an answer", "id", string(sr.sid))
		delete(old.c.outReqs, old.hid)
	}
	m.srvReqs[string(sr.sid)] = sr
	sr.c.outReqs[sr.hid] = sr
	m.checkIDs()
}

// takeServerRequest removes c's backend request hid (answered, or c
// left) and returns it; nil if there is none.
func (m *Mux) takeServerRequest(c *client, hid int64) *srvReq {
	sr := c.outReqs[hid]
	if sr == nil {
		return nil
	}
	delete(c.outReqs, hid)
	delete(m.srvReqs, string(sr.sid))
	m.checkIDs()
	return sr
}

// checkIDs panics if the routing tables disagree (tests only: m.checks).
func (m *Mux) checkIDs() {
	if !m.checks {
		return
	}
	fail := func(format string, a ...any) { panic(fmt.Sprintf("lspmux: routing tables disagree: "+format, a...)) }
	awaiting := map[*client]int64{}
	tokens := 0
	for hid, p := range m.pending {
		if p.c == nil {
			continue
		}
		if got := p.c.reqs[string(p.origID)]; got != hid {
			fail("request %d of client %d is under host id %d in the client's table", hid, p.c.id, got)
		}
		awaiting[p.c] += p.size
		for _, t := range p.tokens {
			if ct := m.ctokens[t]; ct == nil || ct.c != p.c {
				fail("host token %s of request %d is not its client's", t, hid)
			}
		}
		tokens += len(p.tokens)
	}
	if tokens != len(m.ctokens) {
		fail("%d host tokens, %d belong to requests in flight", len(m.ctokens), tokens)
	}
	for c := range m.clients {
		for orig, hid := range c.reqs {
			if p := m.pending[hid]; p == nil || p.c != c {
				fail("client %d's request %s (host id %d) is not in flight", c.id, orig, hid)
			}
		}
		if got := c.awaiting.Load(); got != awaiting[c] {
			fail("client %d awaits %d bytes, its requests in flight are %d", c.id, got, awaiting[c])
		}
		for htok := range maps.Values(c.tokens) {
			if ct := m.ctokens[htok]; ct == nil || ct.c != c {
				fail("client %d's token maps to host token %s, which is not its own", c.id, htok)
			}
		}
		for hid, sr := range c.outReqs {
			if sr.c != c || sr.hid != hid || m.srvReqs[string(sr.sid)] != sr {
				fail("backend request %s asked of client %d is not recorded", sr.sid, c.id)
			}
		}
	}
	for sid, sr := range m.srvReqs {
		if sr.c.outReqs[sr.hid] != sr {
			fail("backend request %s is not in its client's table", sid)
		}
	}
}
