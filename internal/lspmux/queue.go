package lspmux

import (
	"fmt"
	"io"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// The queues, direct writes and byte quotas are the core's (internal/mux:
// Queue, DirectWriter, Direct, Quota); this file is the LSP side of them:
// the framing, and what a client or the backend is sent.

// lspFraming is LSP's Content-Length framing for the core's queues.
type lspFraming struct{}

func (lspFraming) AppendFrame(dst, body []byte, edits []wire.Edit) []byte {
	return wire.AppendFrame(dst, body, edits...)
}

func (lspFraming) WriteFrame(w io.Writer, body []byte, edits []wire.Edit) error {
	return wire.WriteEdited(w, body, edits...)
}

// send queues body toward the client. A client whose queue is over its
// bound is not reading: it is disconnected (never block the router).
// Called with or without m.mu held.
func (c *client) send(body []byte) {
	c.sendItem(mux.Item{Body: body})
}

// sendItem is send for an item with edits.
func (c *client) sendItem(it mux.Item) {
	c.push(it, nil)
}

// sendDirect is sendItem from the backend's reader, which may write to
// the client itself (see mux.DirectWriter): the reader takes the client
// over and writes what it gathered before it next waits for the backend.
// Called without m.mu held.
func sendDirect(s *mux.Instance, c *client, it mux.Item) {
	if !c.direct.Bounded() {
		c.push(it, nil)
		return
	}
	if c.push(it, s) {
		s.TakeOver(c.out, c.direct, c)
	}
}

// DirectFailed ends c after a failed direct write (see sendDirect).
func (c *client) DirectFailed(err error) { c.kill(fmt.Errorf("write to client: %w", err)) }

// push queues it (for owner, see mux.Queue.PushItem; the result is then
// whether the caller has taken the client's queue over and must drain
// it). A client over its bound is disconnected.
func (c *client) push(it mux.Item, owner any) bool {
	ok, drain := c.out.PushItem(it, c.m.cfg.ClientQueue, owner)
	if !ok {
		frozen := c.out.Frozen()
		select {
		case <-c.stop:
		default:
			if frozen {
				c.log.Warn("lsp client read nothing while its messages queued; disconnecting it", "after", c.m.cfg.ClientFrozen)
				go c.kill(errFrozenClient)
			} else {
				c.log.Warn("lsp client is not reading its messages; disconnecting it", "queued_limit", c.m.cfg.ClientQueue)
				go c.kill(errSlowClient)
			}
		}
	}
	return drain
}

// toServer queues body for the current backend. release (if set) is called
// once it has been written or dropped. Called with mu held; never blocks.
func (m *Mux) toServer(body []byte, release func()) bool {
	return m.toServerItem(mux.Item{Body: body, Release: release})
}

// toServerItem is toServer for an item with edits.
func (m *Mux) toServerItem(it mux.Item) bool {
	s := m.core.Current()
	if s == nil {
		if it.Release != nil {
			it.Release()
		}
		return false
	}
	return s.Send(it)
}

// toServerDirect is toServerItem for c's reader: when the backend's queue
// is empty and idle, or already c's, c's reader becomes (or stays) its
// writer and writes what gathered before it next blocks (flushServer; see
// mux.Claim). Called with mu held, from c's reader.
func (m *Mux) toServerDirect(c *client, it mux.Item) { c.claim.Send(m.core.Current(), it) }

// flushServer writes what c's reader gathered for the backend (see
// toServerDirect). c's reader calls it before anything that may block:
// reading the client, waiting for quota or for the backend to run.
// Called without m.mu held.
func (m *Mux) flushServer(c *client) { c.claim.Flush() }

// broadcast sends body to every client that has sent initialize (used for
// notifications that concern all of them). Called with mu held.
func (m *Mux) broadcast(body []byte) {
	for c := range m.clients {
		if c.sentInit {
			c.send(body)
		}
	}
}
