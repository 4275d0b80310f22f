package mcp

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// The queues toward the sessions and the server are the core's
// (internal/mux): a producer that finds a destination's queue empty
// writes itself instead of waking the destination's writer goroutine. On
// the round trip of a call that is two hand-offs fewer: the session's
// reader writes the request to the server's stdin (sendServerFrom,
// flushServer), the server's reader writes the answer to the session
// (sendResponse, flushed by readServer before it reads on).

// queueFraming frames messages for the core's queues.
type queueFraming struct{ f wire.Framing }

func (q queueFraming) AppendFrame(dst, body []byte, edits []wire.Edit) []byte {
	return q.f.AppendFrame(dst, body, edits...)
}

func (q queueFraming) WriteFrame(w io.Writer, body []byte, edits []wire.Edit) error {
	return q.f.WriteFrame(w, body, edits...)
}

// send queues body toward the session; a session that stopped reading
// (see StallTimeout, MaxQueueBytes) is disconnected. Callers hold m.mu or
// own c.
func (c *client) send(body []byte) {
	c.push(body, nil)
}

// push is send for a producer that may take c's queue over (owner, see
// mux.Queue.PushItem); it reports whether it did.
func (c *client) push(body []byte, owner any) bool {
	ok, claimed := c.out.PushItem(mux.Item{Body: body}, c.maxQueue, owner)
	if !ok {
		if c.out.Frozen() {
			c.kill(fmt.Errorf("the client stopped reading its messages (none taken for %v)", c.stall))
		} else {
			c.kill(fmt.Errorf("the client stopped reading its messages (over %d MiB queued)", c.maxQueue>>20))
		}
	}
	return claimed
}

// sendResponse is send from the server's reader, which writes to the
// session itself when nothing is queued for it (mux.DirectWriter) before
// it next reads the server. Callers hold m.mu.
func (m *Mux) sendResponse(s *mux.Instance, c *client, body []byte) {
	if !c.direct.Bounded() {
		c.send(body)
		return
	}
	if c.push(body, s) {
		s.TakeOver(c.out, c.direct, c)
	}
}

// DirectFailed ends c after a failed direct write (see sendResponse).
func (c *client) DirectFailed(err error) { c.kill(fmt.Errorf("writing to the client: %w", err)) }

// sendServerFrom is sendServerLocked for c's request in (body, encoded),
// from c's reader, which writes to the server's stdin itself when nothing
// is queued there (flushServer, before it next blocks; see mux.Claim).
// The request is written in c's turn (mux.Queue: sessions' requests
// round-robin) unless takesTurn says it keeps its place. Callers hold
// m.mu.
func (m *Mux) sendServerFrom(c *client, in *msg, body []byte) {
	it := mux.Item{Body: body}
	if takesTurn(in) {
		it.Turn = c
	}
	c.claim.Send(m.core.Current(), it)
}

// takesTurn reports whether a session's request may be written in its
// turn, ahead of what other sessions queued before it. Not the requests
// whose effect at the server the host counts across sessions (the log
// level, subscriptions per URI): one session's last unsubscribe and
// another's new first subscribe must reach the server in the order the
// host counted them.
func takesTurn(in *msg) bool {
	switch in.Method {
	case "logging/setLevel", "resources/subscribe", "resources/unsubscribe":
		return false
	}
	return true
}

// flushServer writes what c's reader gathered for the server (see
// sendServerFrom). c's reader calls it before anything that may block.
// Called without m.mu held.
func (m *Mux) flushServer(c *client) { c.claim.Flush() }

// maxServerQueue bounds the bytes queued toward the server before the
// sessions that send more wait (waitServerRoom): a server that stops
// reading holds back its sessions, not the host's memory.
const maxServerQueue = 4 << 20

// waitServerRoom blocks c's reader while the server's queue holds more
// than maxServerQueue bytes (until the server takes some, or c is gone).
// Called without m.mu held.
func (m *Mux) waitServerRoom(c *client) {
	m.mu.Lock()
	s := m.core.Current()
	m.mu.Unlock()
	if s == nil {
		return
	}
	over := func(queued int64) bool { return queued > maxServerQueue }
	if q := s.Queue(); q.Over(over) {
		// never "stalled": a slow server is not the session's fault
		q.WaitRoom(over, math.MaxInt64, c.gone, time.Hour)
	}
}
