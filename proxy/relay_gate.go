package proxy

import (
	"bytes"

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
	f    frames // the editor's framing
	exit bool   // the editor sent the exit notification
	// withhold: keep exit and everything after it from the server
	withhold bool
	// seen, if set, is told of each request (small ones whole, large ones
	// by their ends)
	seen *inflight
}

func newLSPGate(withhold bool) *lspGate { return &lspGate{f: newFrames(), withhold: withhold} }

// stopped reports whether the gate withheld exit: nothing more passes.
func (g *lspGate) stopped() bool { return g.exit && g.withhold }

// Filter appends to dst the bytes of chunk that may go to the server now,
// and returns dst. Header bytes pass as they come (a partial header never
// makes the server act), a small body when it is complete, a large one
// (never an exit) as it comes. Once the gate has withheld exit it returns
// dst unchanged.
func (g *lspGate) Filter(dst, chunk []byte) []byte {
	for len(chunk) > 0 && !g.stopped() {
		n, inBody, ev := g.f.step(chunk)
		if !inBody || !g.f.small() {
			dst = append(dst, chunk[:n]...)
		}
		chunk = chunk[n:]
		switch {
		case ev == noEvent:
		case !g.f.small():
			// A large request is in flight from its first bytes (the
			// server may crash before it has all of it): tracked from its
			// head if that names it, else from both ends.
			g.seen.sentEnds(g.f.ends())
		default:
			g.seen.sent(g.f.body)
			if isExitNotification(g.f.body) {
				g.exit = true
				if g.withhold {
					return dst
				}
			}
			dst = append(dst, g.f.body...)
		}
	}
	return dst
}

// Splicable is how many bytes may bypass Filter right now: the middle of
// a large body, which is never inspected (its ends are, by Filter).
func (g *lspGate) Splicable() int {
	if g.stopped() {
		return 0
	}
	return g.f.Splicable()
}

// inLargeBody reports whether the editor is in the middle of a large
// message (whose end is still to be seen).
func (g *lspGate) inLargeBody() bool { return !g.f.raw && g.f.need > 0 && !g.f.small() }

// Skip notes that n bytes (at most Splicable) went around Filter.
func (g *lspGate) Skip(n int) { g.f.Skip(n) }

// isExitNotification reports whether body is the LSP exit notification.
func isExitNotification(body []byte) bool {
	if !bytes.Contains(body, exitMethod) {
		return false // the common case costs one search
	}
	f, err := wire.Scan(body)
	return err == nil && f.Kind() == wire.Notification && f.MethodName() == "exit"
}
