package proxy

import (
	"sync"

	"github.com/procref/procref/internal/wire"
)

// inflight follows a relayed LSP session in both directions (tcp mode)
// and knows the editor's requests the server has not answered: when the
// server crashes, the proxy answers them with an error instead of leaving
// the editor waiting. Requests are seen through the relay's lspGate
// (small ones whole, large ones by the top-level members at their ends,
// pending from the head if it names them, else from their end: a large
// request whose id is neither in its first nor its last endKeep bytes is
// not tracked; the poll relay reads to its end a large request it is in
// the middle of when the server goes, the portable one does not); answers
// by following the server's framing here, the same way. A stream that
// stops looking like LSP ends the tracking (Errors then returns nothing).
// Safe for concurrent use.
//
// Of the server's bytes it keeps only what it must look at (a small body,
// the ends of a large one; nothing of a body begun while no request was
// pending), so a large answer costs no memory.
type inflight struct {
	mu      sync.Mutex
	pending map[string]bool // raw JSON ids of the editor's requests
	order   []string        // ids in the order sent, to answer them in order
	down    frames          // the server's framing
	lost    bool            // framing lost
}

// codeRequestFailed is LSP's RequestFailed: the request was valid, the
// server could not answer it.
const codeRequestFailed = -32803

// newInflight returns an Inflight with nothing pending.
func newInflight() *inflight {
	f := &inflight{pending: map[string]bool{}, down: newFrames()}
	// A message can answer only a request sent before it began: with none
	// pending, its body is not kept (and may be spliced whole). Called
	// with mu held, from Write.
	f.down.want = func() bool { return len(f.pending) > 0 }
	return f
}

// sent records one whole small message from the editor.
func (f *inflight) sent(body []byte) {
	if f == nil {
		return
	}
	m, err := wire.ScanTrusted(body)
	if err != nil || !m.ID.Ok() || !m.Method.Ok() {
		return
	}
	f.record(string(m.ID.Of(body)))
}

// sentEnds records one large message from the editor by its ends.
func (f *inflight) sentEnds(e wire.Ends) {
	if f == nil || e.ID == nil || !e.Request || e.Response {
		return
	}
	f.record(string(e.ID))
}

// record notes the request id as pending.
func (f *inflight) record(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending[id] {
		return
	}
	if len(f.order) > 2*len(f.pending)+64 { // answered ids leave order here
		kept := f.order[:0]
		for _, o := range f.order {
			if f.pending[o] {
				kept = append(kept, o)
			}
		}
		f.order = kept
	}
	f.pending[id] = true
	f.order = append(f.order, id)
}

// Write follows what the server sends the editor; it never fails.
func (f *inflight) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for chunk := p; len(chunk) > 0 && !f.lost; {
		n, _, ev := f.down.step(chunk)
		chunk = chunk[n:]
		f.lost = f.down.raw
		if ev == bodyEnd { // an answer counts once it is whole
			f.answered()
		}
	}
	return len(p), nil
}

// answered drops the request that the server's message that just ended
// answers, if it is a response. Called with mu held.
func (f *inflight) answered() {
	if !f.down.small() {
		if e := f.down.ends(); e.ID != nil && e.Response && !e.Request {
			delete(f.pending, string(e.ID))
		}
		return
	}
	body := f.down.body
	m, err := wire.ScanTrusted(body)
	if err != nil || !m.ID.Ok() || m.Method.Ok() {
		return // not a response (a notification, or the server's own request)
	}
	delete(f.pending, string(m.ID.Of(body)))
}

// Owed says where the server's stream ended: between messages (0, true),
// inside a body the editor still expects n more bytes of (n, true), or
// where no message of the proxy's can follow (inside a header, or the
// stream was not followed: false).
func (f *inflight) Owed() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.lost, f.down.need < 0 && len(f.down.hdr) > 0:
		return 0, false
	case f.down.need > 0:
		return f.down.need, true
	}
	return 0, true
}

// Errors returns an error response with code and message for each
// request still pending, in the order sent, and forgets them.
func (f *inflight) Errors(code int, message string) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost {
		return nil
	}
	var out [][]byte
	for _, id := range f.order {
		if f.pending[id] {
			out = append(out, errorResponse([]byte(id), code, message))
		}
	}
	f.pending, f.order = map[string]bool{}, nil
	return out
}
