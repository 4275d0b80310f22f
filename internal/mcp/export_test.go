package mcp

// CheckTables makes m verify its routing tables after every change (a
// broken invariant panics), for the tests.
func CheckTables(m *Mux) {
	m.mu.Lock()
	m.calls.Check, m.asks.Check = true, true
	m.mu.Unlock()
}

// KillServer kills the running server process (a crash), for the tests.
func KillServer(m *Mux) {
	m.mu.Lock()
	s := m.core.Current()
	m.mu.Unlock()
	if s != nil {
		s.Server().Kill()
	}
}
