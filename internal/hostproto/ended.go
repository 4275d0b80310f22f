package hostproto

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// A tcp-mode session's presence connection carries, after the backend's
// address, at most one more line: "ended REASON\n", when the backend
// ended on its own (it crashed; the host restarts it). Each proxy then
// knows the host is alive and why its connection to the backend broke,
// and tells its window so (not "the host died").

// WriteEnded sends the host's "ended REASON" line; REASON is made one
// clean line.
func WriteEnded(w io.Writer, reason string) error {
	_, err := fmt.Fprintf(w, "ended %s\n", CleanLine(reason))
	return err
}

// endedKeep bounds what a Note keeps.
const endedKeep = 4 << 10

// Note gathers what a tcp-mode host sends on a presence connection after
// the address line. Safe for concurrent use (a relay writes, the proxy
// reads).
type Note struct {
	mu   sync.Mutex
	buf  []byte
	done chan struct{}
	once sync.Once
}

// NewNote returns an empty Note.
func NewNote() *Note { return &Note{done: make(chan struct{})} }

// Write keeps p (up to a bound); a complete line ends the wait in Done.
func (n *Note) Write(p []byte) (int, error) {
	n.mu.Lock()
	n.buf = append(n.buf, p[:min(len(p), max(0, endedKeep-len(n.buf)))]...)
	line := strings.Contains(string(n.buf), "\n")
	n.mu.Unlock()
	if line {
		n.Close()
	}
	return len(p), nil
}

// Close says nothing more will come (the connection ended). A nil Note
// ignores it.
func (n *Note) Close() {
	if n != nil {
		n.once.Do(func() { close(n.done) })
	}
}

// Done is closed once a whole line arrived or the connection ended.
func (n *Note) Done() <-chan struct{} { return n.done }

// Reason returns the REASON of an "ended" line, or "" (also for a nil
// Note).
func (n *Note) Reason() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	line, _, ok := strings.Cut(string(n.buf), "\n")
	if !ok {
		return ""
	}
	reason, _ := strings.CutPrefix(line, "ended ")
	if reason == line {
		return ""
	}
	return reason
}
