package mcp

import (
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
// mux.Client.FlushServer), the server's reader writes the answer to the session
// (sendResponse, flushed by readServer before it reads on).

// queueFraming frames messages for the core's queues.
type queueFraming struct{ f wire.Framing }

func (q queueFraming) AppendFrame(dst, body []byte, edits []wire.Edit) []byte {
	return q.f.AppendFrame(dst, body, edits...)
}

func (q queueFraming) WriteFrame(w io.Writer, body []byte, edits []wire.Edit) error {
	return q.f.WriteFrame(w, body, edits...)
}

// send queues body toward the session (mux.Client.Send: a session that
// stopped reading, see StallTimeout and MaxQueueBytes, is ended). Callers
// hold m.mu or own c.
func (c *client) send(body []byte) { c.Send(mux.Item{Body: body}) }

// sendResponse is send from the server's reader, which writes to the
// session itself when nothing is queued for it (mux.Client.SendFrom)
// before it next reads the server. Callers hold m.mu.
func (m *Mux) sendResponse(s *mux.Instance, c *client, body []byte) {
	c.SendFrom(s, mux.Item{Body: body})
}

// sendServerFrom is sendServerLocked for c's request in (body, encoded),
// from c's reader, which writes to the server's stdin itself when nothing
// is queued there (before it next blocks; see mux.Client.ToServer).
// The request is written in c's turn (mux.Queue: sessions' requests
// round-robin) unless takesTurn says it keeps its place. Callers hold
// m.mu.
func (m *Mux) sendServerFrom(c *client, in *msg, body []byte) {
	it := mux.Item{Body: body}
	if takesTurn(in) {
		it.Turn = c
	}
	c.ToServer(m.core.Current(), it)
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
		c.FlushServer() // what this reader holds is in that queue
		// never "stalled": a slow server is not the session's fault
		q.WaitRoom(over, math.MaxInt64, c.Ending(), time.Hour)
	}
}
