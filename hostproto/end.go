package hostproto

import (
	"bytes"
	"encoding/json"
	"sync"
)

// EndMethod is the notification a mux-mode host sends a client as its last
// message when it ends the client's session for a reason, params
// {"reason": "..."}: an editor ignores it ("$/" methods may be ignored),
// and a relaying proxy reads the reason from it ([Tail]). After a handoff
// the host says the same out of band ([EndLine]).
const EndMethod = "$/procref/sessionEnded"

// Tail keeps the last bytes the backend sent to the editor, so that a
// relaying proxy can read why the host ended the session: the host's last
// message is then the end notification (EndMethod). Safe for concurrent
// use.
type Tail struct {
	mu  sync.Mutex
	buf []byte
}

// tailKeep bounds what Tail keeps: the end notification is short.
const tailKeep = 8 << 10

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) >= tailKeep {
		t.buf = append(t.buf[:0], p[len(p)-tailKeep:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailKeep; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// EndReason returns the reason of the host's end notification if it was
// the last message the backend sent, else "" (also for a nil Tail).
func (t *Tail) EndReason() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	marker := []byte(`"method":"` + EndMethod + `"`)
	i := bytes.LastIndex(t.buf, marker)
	if i < 0 {
		return ""
	}
	start := bytes.LastIndexByte(t.buf[:i], '{')
	if start < 0 {
		return ""
	}
	var m struct {
		Params struct {
			Reason string `json:"reason"`
		} `json:"params"`
	}
	if json.Unmarshal(t.buf[start:], &m) != nil {
		return ""
	}
	return m.Params.Reason
}
