// Package idroute is the id bookkeeping of a JSON-RPC multiplexer — many
// clients, one server — shared by the LSP (lspmux) and the MCP and plain
// JSON-RPC (mcp) multiplexers. Each side's request ids are replaced by the
// host's own on the way in and mapped back on the way out:
//
//   - [Calls]: clients' requests in flight at the server, under host ids,
//     with their progress tokens (also replaced by host tokens, so progress
//     reaches only the token's owner); a client's cancel finds the host id
//     by the client's own id.
//   - [Asks]: the server's requests in flight at a client, under host ids
//     sent to that client; a server's cancel finds them by the server's id.
//
// Both change only through their methods, which keep every index in step;
// with Check set each change is followed by a full consistency check that
// panics on a broken invariant (tests). Neither is safe for concurrent use:
// the multiplexer holds its lock around every call.
package idroute

import "fmt"

// Token is a progress token of a client's request: Host stands for the
// client's own (raw JSON) on the way to the server.
type Token struct {
	Host   string
	Client []byte
}

// Call is a request in flight at the server.
type Call[C comparable, V any] struct {
	Client C      // the zero C: the multiplexer's own request
	ID     []byte // the client's own id (raw JSON)
	Tokens []Token
	Data   V // the multiplexer's own fields
}

// Calls is the table of requests in flight at the server, by host id.
type Calls[C comparable, V any] struct {
	Check bool

	calls    map[int64]*Call[C, V]
	byClient map[C]map[string]int64  // the client's id → host id
	tokens   map[string]*Call[C, V]  // host token → its request
	byToken  map[C]map[string]string // the client's token → host token
}

func (t *Calls[C, V]) init() {
	if t.calls == nil {
		t.calls = map[int64]*Call[C, V]{}
		t.byClient = map[C]map[string]int64{}
		t.tokens = map[string]*Call[C, V]{}
		t.byToken = map[C]map[string]string{}
	}
}

// Add records call under host id hid. A client that reuses an id (or a
// token) still in flight gets the newer one routed; the older stays in
// flight under its host id and is answered by it.
func (t *Calls[C, V]) Add(hid int64, call Call[C, V]) {
	t.init()
	c := &call
	t.calls[hid] = c
	var zero C
	if c.Client != zero {
		index(t.byClient, c.Client)[string(c.ID)] = hid
		for _, tok := range c.Tokens {
			t.tokens[tok.Host] = c
			index(t.byToken, c.Client)[string(tok.Client)] = tok.Host
		}
	}
	t.check()
}

// Take removes the request hid (answered, failed, or abandoned) with its
// tokens and returns it; false if there is none.
func (t *Calls[C, V]) Take(hid int64) (Call[C, V], bool) {
	c, ok := t.calls[hid]
	if !ok {
		return Call[C, V]{}, false
	}
	delete(t.calls, hid)
	var zero C
	if c.Client != zero {
		if ids := t.byClient[c.Client]; ids[string(c.ID)] == hid {
			delete(ids, string(c.ID))
			if len(ids) == 0 {
				delete(t.byClient, c.Client)
			}
		}
		for _, tok := range c.Tokens {
			delete(t.tokens, tok.Host)
			if toks := t.byToken[c.Client]; toks[string(tok.Client)] == tok.Host {
				delete(toks, string(tok.Client))
				if len(toks) == 0 {
					delete(t.byToken, c.Client)
				}
			}
		}
	}
	t.check()
	return *c, true
}

// Get returns the request hid without removing it.
func (t *Calls[C, V]) Get(hid int64) (Call[C, V], bool) {
	c, ok := t.calls[hid]
	if !ok {
		return Call[C, V]{}, false
	}
	return *c, true
}

// HostID returns the host id of client c's request with its own id.
func (t *Calls[C, V]) HostID(c C, id []byte) (int64, bool) {
	hid, ok := t.byClient[c][string(id)]
	return hid, ok
}

// HostToken returns the host token standing for client c's token.
func (t *Calls[C, V]) HostToken(c C, token []byte) (string, bool) {
	h, ok := t.byToken[c][string(token)]
	return h, ok
}

// Token returns the client and its own token behind a host token.
func (t *Calls[C, V]) Token(host string) (C, []byte, bool) {
	c, ok := t.tokens[host]
	if !ok {
		var zero C
		return zero, nil, false
	}
	for _, tok := range c.Tokens {
		if tok.Host == host {
			return c.Client, tok.Client, true
		}
	}
	panic("idroute: a host token without its request")
}

// OfClient returns the host ids of client c's requests in flight.
func (t *Calls[C, V]) OfClient(c C) []int64 {
	var hids []int64
	for hid, call := range t.calls {
		if call.Client == c {
			hids = append(hids, hid)
		}
	}
	return hids
}

// Each calls f with every request in flight; f must not change t.
func (t *Calls[C, V]) Each(f func(hid int64, call Call[C, V])) {
	for hid, c := range t.calls {
		f(hid, *c)
	}
}

// All returns every host id in flight.
func (t *Calls[C, V]) All() []int64 {
	hids := make([]int64, 0, len(t.calls))
	for hid := range t.calls {
		hids = append(hids, hid)
	}
	return hids
}

// Len returns the number of requests in flight.
func (t *Calls[C, V]) Len() int { return len(t.calls) }

func (t *Calls[C, V]) check() {
	if !t.Check {
		return
	}
	var zero C
	tokens := 0
	for hid, c := range t.calls {
		if c.Client == zero {
			continue
		}
		if got, ok := t.byClient[c.Client][string(c.ID)]; ok && got != hid {
			if other := t.calls[got]; other == nil || other.Client != c.Client {
				fail("request %d: the client's id %s maps to %d, not a request of its", hid, c.ID, got)
			}
		}
		for _, tok := range c.Tokens {
			if t.tokens[tok.Host] != c {
				fail("request %d: host token %s is not its own", hid, tok.Host)
			}
		}
		tokens += len(c.Tokens)
	}
	if tokens != len(t.tokens) {
		fail("%d host tokens, %d belong to requests in flight", len(t.tokens), tokens)
	}
	for client, ids := range t.byClient {
		for id, hid := range ids {
			if c := t.calls[hid]; c == nil || c.Client != client || string(c.ID) != id {
				fail("client id %s maps to host id %d, which is not its request", id, hid)
			}
		}
	}
	for client, toks := range t.byToken {
		for tok, host := range toks {
			if c := t.tokens[host]; c == nil || c.Client != client {
				fail("client token %s maps to host token %s, which is not its own", tok, host)
			}
		}
	}
}

// Ask is a server request in flight at a client.
type Ask[C comparable, V any] struct {
	Client   C
	ServerID []byte // the server's own id (raw JSON)
	Data     V
}

// Asks is the table of the server's requests in flight at clients, by the
// host id each was sent to its client under.
type Asks[C comparable, V any] struct {
	Check bool

	asks     map[int64]*Ask[C, V]
	byServer map[string]int64 // the server's id → host id
}

// Add records a server request sent to a client under host id hid. If
// the server reused an id still awaiting an answer, the older request is
// dropped (its answer will not reach the server) and Add reports it. An
// ask without a ServerID (one server request fanned out to several
// clients, answered by the multiplexer) is not found by ByServerID.
func (t *Asks[C, V]) Add(hid int64, ask Ask[C, V]) (replaced bool) {
	if t.asks == nil {
		t.asks = map[int64]*Ask[C, V]{}
		t.byServer = map[string]int64{}
	}
	if ask.ServerID != nil {
		if old, ok := t.byServer[string(ask.ServerID)]; ok {
			delete(t.asks, old)
			replaced = true
		}
		t.byServer[string(ask.ServerID)] = hid
	}
	t.asks[hid] = &ask
	t.check()
	return replaced
}

// Take removes client c's request hid (answered, or c left) and returns
// it; false if there is none or it was asked of another client.
func (t *Asks[C, V]) Take(c C, hid int64) (Ask[C, V], bool) {
	a, ok := t.asks[hid]
	if !ok || a.Client != c {
		return Ask[C, V]{}, false
	}
	delete(t.asks, hid)
	if a.ServerID != nil {
		delete(t.byServer, string(a.ServerID))
	}
	t.check()
	return *a, true
}

// Each calls f with every server request in flight; f must not change t.
func (t *Asks[C, V]) Each(f func(hid int64, ask Ask[C, V])) {
	for hid, a := range t.asks {
		f(hid, *a)
	}
}

// ByServerID returns the client and host id the server's request id was
// sent under.
func (t *Asks[C, V]) ByServerID(sid []byte) (C, int64, bool) {
	hid, ok := t.byServer[string(sid)]
	if !ok {
		var zero C
		return zero, 0, false
	}
	return t.asks[hid].Client, hid, true
}

// OfClient returns the host ids of the requests asked of client c.
func (t *Asks[C, V]) OfClient(c C) []int64 {
	var hids []int64
	for hid, a := range t.asks {
		if a.Client == c {
			hids = append(hids, hid)
		}
	}
	return hids
}

// All returns every host id in flight, with its client.
func (t *Asks[C, V]) All() map[int64]C {
	all := make(map[int64]C, len(t.asks))
	for hid, a := range t.asks {
		all[hid] = a.Client
	}
	return all
}

func (t *Asks[C, V]) check() {
	if !t.Check {
		return
	}
	indexed := 0
	for _, a := range t.asks {
		if a.ServerID != nil {
			indexed++
		}
	}
	if indexed != len(t.byServer) {
		fail("%d server requests with a server id in flight, %d server ids", indexed, len(t.byServer))
	}
	for sid, hid := range t.byServer {
		if a := t.asks[hid]; a == nil || string(a.ServerID) != sid {
			fail("server id %s maps to host id %d, which is not its request", sid, hid)
		}
	}
}

func index[C comparable, K comparable, V any](m map[C]map[K]V, c C) map[K]V {
	if m[c] == nil {
		m[c] = map[K]V{}
	}
	return m[c]
}

func fail(format string, a ...any) {
	panic(fmt.Sprintf("idroute: tables disagree: "+format, a...))
}
