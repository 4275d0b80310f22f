package lspmux

// Fairness between windows at the one shared backend is the core's
// (mux.Bound: each window's requests in flight are bounded; mux.Queue:
// the windows' requests are written to the backend round-robin, one
// window at a time in turn, notifications in push order): a window may
// have at most Config.MaxRequests requests in flight at the backend
// (default mux.DefaultMaxInflight, 32), and its queue toward the backend
// is bounded in bytes as well (ClientInflight).

// waitRequestSlot blocks while c has cfg.MaxRequests requests in flight
// at the backend. It returns false if c was disconnected meanwhile.
// It does not wait while the backend awaits an answer from c: a server
// may hold c's requests until c answers (workspace/configuration), and
// that answer is behind this request in c's input. Called without mu
// held, from c's reader.
func (m *Mux) waitRequestSlot(c *client) bool {
	asked := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.asks.OfClient(c)) > 0
	}
	return c.Bound().Wait(c.Ending(), asked, func() {
		c.FlushServer() // what this reader gathered may be those requests
		m.event("request-slot-wait")
	})
}
