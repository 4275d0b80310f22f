package lspmux

// Fairness between windows at the one shared backend. Each window may
// have at most Config.MaxRequests requests in flight at the backend
// (default 32); its reader stops reading the window's input while it has
// that many, so one window that pipelines thousands of requests cannot
// put more than that many ahead of another window's request, and its
// queue toward the backend is bounded in requests as well as in bytes
// (ClientInflight). Windows' readers forward their requests in the order
// they get the mux's lock, so while one floods, the others' requests
// interleave with its at most MaxRequests in flight.

// defaultMaxRequests is Config.MaxRequests's default.
const defaultMaxRequests = 32

// waitRequestSlot blocks while c has cfg.MaxRequests requests in flight
// at the backend. It returns false if c was disconnected meanwhile.
// It does not wait while the backend awaits an answer from c: a server
// may hold c's requests until c answers (workspace/configuration), and
// that answer is behind this request in c's input. Called without mu
// held, from c's reader.
func (m *Mux) waitRequestSlot(c *client) bool {
	for c.inflight.Load() >= int64(m.cfg.MaxRequests) {
		m.mu.Lock()
		asked := len(m.asks.OfClient(c)) > 0
		m.mu.Unlock()
		if asked {
			return true
		}
		m.flushServer(c) // what this reader gathered may be those requests
		m.event("request-slot-wait")
		select {
		case <-c.slot:
		case <-c.stop:
			return false
		}
	}
	return true
}

// wakeSlot wakes c's reader if it waits for a request slot (a request of
// c ended, or the backend asked c something).
func (c *client) wakeSlot() {
	select {
	case c.slot <- struct{}{}:
	default:
	}
}

// requestDone counts one of c's requests as no longer in flight and
// wakes c's reader if it waits for a slot. Called with mu held.
func (c *client) requestDone() {
	c.inflight.Add(-1)
	c.wakeSlot()
}
