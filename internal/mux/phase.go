package mux

// Phase is where the shared server is in its life: the one lifecycle
// model of every policy.
type Phase int

// Phases. The policy decides when a server counts as Running: LSP once
// its initialize is answered, MCP and plain JSON-RPC once it has started
// (MCP's replayed initialize is queued ahead of everything else).
const (
	Idle       Phase = iota // no server running; the next client that needs one starts it
	Starting                // the first server is starting
	Running                 // the server takes traffic
	Restarting              // the server crashed; it is being restarted (and state replayed)
	Stopped                 // for good: closed, or the restart limit was reached
)

var phaseNames = [...]string{"idle", "starting", "running", "restarting", "stopped"}

func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return "phase?"
	}
	return phaseNames[p]
}

// lifecycle holds the server's phase and changes it in one place (Set),
// which wakes everyone waiting for a change. The zero value is Idle. It is
// guarded by the multiplexer's lock: every method is called with it held;
// waiters take Changed under the lock and wait on it without.
type lifecycle struct {
	phase Phase
	ch    chan struct{} // closed and replaced at every Set
}

// Phase returns the current phase.
func (l *lifecycle) Phase() Phase { return l.phase }

// Set changes the phase and wakes everyone waiting for a change. Stopped
// is final: a later Set is ignored.
func (l *lifecycle) Set(p Phase) {
	if l.phase == Stopped {
		return
	}
	l.phase = p
	if l.ch != nil {
		close(l.ch)
		l.ch = nil
	}
}

// Changed returns a channel closed at the next Set.
func (l *lifecycle) Changed() <-chan struct{} {
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	return l.ch
}
