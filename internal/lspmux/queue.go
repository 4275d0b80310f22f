package lspmux

import (
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

// send queues body toward the client (mux.Client.Send: a client that
// is not reading is ended, never the router blocked). Called with or
// without m.mu held.
func (c *client) send(body []byte) { c.Send(mux.Item{Body: body}) }

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

// broadcast sends body to every client that has sent initialize (used for
// notifications that concern all of them). Called with mu held.
func (m *Mux) broadcast(body []byte) {
	for c := range m.clients {
		if c.sentInit {
			c.send(body)
		}
	}
}
