package proxy

import (
	"bytes"
	"math"

	"github.com/procref/procref/internal/wire"
)

// lspGate follows the LSP framing of the editor's stream and notes the
// editor's exit notification: a relayed session that ends after it ended
// normally. With withhold (tcp mode) it also keeps the exit from the
// shared server: a TCP-native server such as gopls ends its whole process
// on an exit that was not preceded by shutdown, which would end it for
// every window. The proxy instead half-closes its connection, which ends
// only this client's session. Message boundaries are exact
// (Content-Length), so nothing else is ever held back; if the stream stops
// looking like LSP framing (MCP's lines, any other protocol), the gate
// turns itself off and passes every byte (raw).
type lspGate struct {
	hdr   []byte // the current message's header so far (need < 0)
	need  int    // body bytes still to come; -1 while in a header
	small []byte // a small body held until complete, to be inspected
	held  bool   // the current body is being held in small
	raw   bool   // framing lost: pass everything
	exit  bool   // the editor sent the exit notification
	// withhold: keep exit and everything after it from the server
	withhold bool
	// seen, if set, is told of each held (small) message
	seen *Inflight
}

const (
	// gateMaxHeader bounds an LSP header; longer means it is not LSP.
	gateMaxHeader = 4 << 10
	// gateSmallBody: bodies up to this size are held until complete and
	// looked at; larger ones (never an exit) stream through or are spliced.
	gateSmallBody = 4 << 10
)

func newLSPGate(withhold bool) *lspGate { return &lspGate{need: -1, withhold: withhold} }

// stopped reports whether the gate withheld exit: nothing more passes.
func (g *lspGate) stopped() bool { return g.exit && g.withhold }

// Filter appends to dst the bytes of chunk that may go to the server now,
// and returns dst. Once the gate has withheld exit it returns dst
// unchanged.
func (g *lspGate) Filter(dst, chunk []byte) []byte {
	for len(chunk) > 0 && !g.stopped() {
		if g.raw {
			return append(dst, chunk...)
		}
		if g.need < 0 { // header
			old := len(g.hdr)
			g.hdr = append(g.hdr, chunk...)
			end := bytes.Index(g.hdr, []byte("\r\n\r\n"))
			if end < 0 {
				if len(g.hdr) > gateMaxHeader {
					g.raw = true
				}
				// Header bytes pass as they come: a partial header
				// never makes the server act.
				return append(dst, chunk...)
			}
			end += 4
			n64, err := wire.ParseHeader(g.hdr[:end])
			if err != nil || n64 > math.MaxInt {
				g.raw = true
				return append(dst, chunk...)
			}
			n := int(n64)
			used := end - old // bytes of chunk that belong to the header
			dst = append(dst, chunk[:used]...)
			chunk = chunk[used:]
			g.hdr = g.hdr[:0]
			g.need = n
			g.held = n <= gateSmallBody
			g.small = g.small[:0]
			if n == 0 {
				g.need = -1
			}
			continue
		}
		k := min(g.need, len(chunk))
		if g.held {
			g.small = append(g.small, chunk[:k]...)
		} else {
			dst = append(dst, chunk[:k]...)
		}
		chunk = chunk[k:]
		g.need -= k
		if g.need == 0 {
			g.need = -1
			if g.held {
				g.seen.sent(g.small)
				if isExitNotification(g.small) {
					g.exit = true
					if g.withhold {
						return dst
					}
				}
				dst = append(dst, g.small...)
			}
		}
	}
	return dst
}

// Splicable is how many bytes may bypass Filter right now: the rest of a
// large body, which is never inspected.
func (g *lspGate) Splicable() int {
	if g.stopped() {
		return 0
	}
	if g.raw {
		return 1 << 30
	}
	if g.need > 0 && !g.held {
		return g.need
	}
	return 0
}

// Skip notes that n bytes (at most Splicable) went around Filter.
func (g *lspGate) Skip(n int) {
	if g.raw || n <= 0 {
		return
	}
	g.need -= n
	if g.need == 0 {
		g.need = -1
	}
}

// isExitNotification reports whether body is the LSP exit notification.
func isExitNotification(body []byte) bool {
	if !bytes.Contains(body, exitMethod) {
		return false // the common case costs one search
	}
	f, err := wire.Scan(body)
	return err == nil && f.Kind() == wire.Notification && f.MethodName() == "exit"
}
