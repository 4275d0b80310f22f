package proxy

import (
	"bytes"
	"math"
	"sync"

	"github.com/procref/procref/internal/wire"
)

// Inflight follows a relayed LSP session in both directions (tcp mode)
// and knows the editor's requests the server has not answered: when the
// server crashes, the proxy answers them with an error instead of leaving
// the editor waiting. Requests are seen through the relay's lspGate (its
// held small bodies: a request over gateSmallBody is not tracked);
// answers by following the server's framing here. A stream that stops
// looking like LSP ends the tracking (Errors then returns nothing). Safe
// for concurrent use.
type Inflight struct {
	mu      sync.Mutex
	pending map[string]bool // raw JSON ids of the editor's requests
	order   []string        // ids in the order sent, to answer them in order
	hdr     []byte          // the server's current header so far (need < 0)
	need    int
	body    []byte
	skip    bool // the current body is not kept: nothing was pending when it began
	lost    bool // framing lost or a body too big to follow
}

// codeRequestFailed is LSP's RequestFailed: the request was valid, the
// server could not answer it.
const codeRequestFailed = -32803

// inflightMaxBody bounds a server message Inflight follows; past it the
// tracking stops rather than hold a large copy.
const inflightMaxBody = 64 << 20

// NewInflight returns an Inflight with nothing pending.
func NewInflight() *Inflight { return &Inflight{pending: map[string]bool{}, need: -1} }

// sent records one whole message from the editor.
func (f *Inflight) sent(body []byte) {
	if f == nil {
		return
	}
	m, err := wire.ScanTrusted(body)
	if err != nil || !m.ID.Ok() || !m.Method.Ok() {
		return
	}
	id := string(m.ID.Of(body))
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
func (f *Inflight) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for chunk := p; len(chunk) > 0 && !f.lost; {
		if f.need < 0 {
			old := len(f.hdr)
			f.hdr = append(f.hdr, chunk...)
			end := bytes.Index(f.hdr, []byte("\r\n\r\n"))
			if end < 0 {
				f.lost = len(f.hdr) > gateMaxHeader
				break
			}
			n, err := wire.ParseHeader(f.hdr[:end+4])
			if err != nil || n > math.MaxInt || n > inflightMaxBody {
				f.lost = true
				break
			}
			chunk = chunk[end+4-old:]
			f.hdr, f.need, f.body = f.hdr[:0], int(n), f.body[:0]
			// A message can answer only a request sent before it began:
			// with none pending, its bytes are only counted.
			f.skip = len(f.pending) == 0
		}
		k := min(f.need, len(chunk))
		if !f.skip {
			f.body = append(f.body, chunk[:k]...)
		}
		chunk, f.need = chunk[k:], f.need-k
		if f.need == 0 {
			f.need = -1
			if !f.skip {
				f.answered(f.body)
			}
		}
	}
	return len(p), nil
}

// answered drops the request a response from the server answers.
// Called with mu held.
func (f *Inflight) answered(body []byte) {
	m, err := wire.ScanTrusted(body)
	if err != nil || !m.ID.Ok() || m.Method.Ok() {
		return // not a response (a notification, or the server's own request)
	}
	delete(f.pending, string(m.ID.Of(body)))
}

// Errors returns an error response with code and message for each
// request still pending, in the order sent, and forgets them.
func (f *Inflight) Errors(code int, message string) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost {
		return nil
	}
	var out [][]byte
	for _, id := range f.order {
		if f.pending[id] {
			out = append(out, ErrorResponse([]byte(id), code, message))
		}
	}
	f.pending, f.order = map[string]bool{}, nil
	return out
}
