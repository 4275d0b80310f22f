package hostproto

import (
	"bytes"
	"encoding/json"

	"github.com/procref/procref/internal/lastbytes"
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
// use; make one with NewTail.
type Tail struct {
	keep lastbytes.Buffer
}

// tailKeep bounds what Tail keeps: the end notification is short.
const tailKeep = 8 << 10

// NewTail returns an empty Tail.
func NewTail() *Tail { return &Tail{keep: lastbytes.Buffer{Max: tailKeep}} }

// Write keeps the end of what the backend sent; it never fails.
func (t *Tail) Write(p []byte) (int, error) { return t.keep.Write(p) }

// EndReason returns the reason of the host's end notification if it was
// the last message the backend sent, else "" (also for a nil Tail).
func (t *Tail) EndReason() string {
	if t == nil {
		return ""
	}
	buf := t.keep.Bytes()
	marker := []byte(`"method":"` + EndMethod + `"`)
	i := bytes.LastIndex(buf, marker)
	if i < 0 {
		return ""
	}
	start := bytes.LastIndexByte(buf[:i], '{')
	if start < 0 {
		return ""
	}
	var m struct {
		Params struct {
			Reason string `json:"reason"`
		} `json:"params"`
	}
	if json.Unmarshal(buf[start:], &m) != nil {
		return ""
	}
	return m.Params.Reason
}

// EndNotice returns the end notification (EndMethod) with reason, the
// body of a client's last message (framed by the caller's protocol).
func EndNotice(reason string) []byte {
	b, _ := json.Marshal(struct {
		JSONRPC string            `json:"jsonrpc"`
		Method  string            `json:"method"`
		Params  map[string]string `json:"params"`
	}{"2.0", EndMethod, map[string]string{"reason": reason}})
	return b
}
