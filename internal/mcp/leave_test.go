package mcp_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// TestSessionLeaves: a session that leaves with a call in flight and a
// server request held gets its call cancelled at the server (under the
// server-side id) and the server's request answered with an error; the
// other session goes on.
func TestSessionLeaves(t *testing.T) {
	r := newPolicyRig(t)
	a := r.open(`{"sampling":{}}`, true)
	b := r.open(`{}`, false)
	io.WriteString(a.conn, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow"}}`+"\n")
	call := r.srv.expect(t, "tools/call")
	hid, _ := json.Marshal(call["id"])
	r.srv.send(t, `{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}`)
	a.call(t, "", `"sampling/createMessage"`)
	a.conn.Close()
	var cancelled, answered bool
	for !cancelled || !answered {
		m := r.srv.next(t)
		switch {
		case m["method"] == "notifications/cancelled":
			rid, _ := json.Marshal(m["params"].(map[string]any)["requestId"])
			if string(rid) != string(hid) {
				t.Fatalf("cancelled carries requestId %s, want the server-side id %s", rid, hid)
			}
			cancelled = true
		case m["id"] == "s1":
			if m["error"] == nil {
				t.Fatalf("the server's request to the session that left was answered %v, want an error", m)
			}
			answered = true
		}
	}
	io.WriteString(b.conn, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo"}}`+"\n")
	got := r.srv.expect(t, "tools/call")
	id, _ := json.Marshal(got["id"])
	r.srv.send(t, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":{"content":[]}}`)
	if line := b.call(t, "", `"id":9`); !strings.Contains(line, `"result"`) {
		t.Fatalf("the other session got %s", line)
	}
}

// The server's messages are read as trusted (as lspmux reads its
// backend), while a client's are validated: an answer that names a
// member twice still reaches its session (the last value, as
// encoding/json reads it), and a client request that does so is refused.
func TestServerMessagesTrusted(t *testing.T) {
	r := newPolicyRig(t)
	a := r.open(`{}`, true)
	io.WriteString(a.conn, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}`+"\n")
	got := r.srv.expect(t, "tools/call")
	id, _ := json.Marshal(got["id"])
	r.srv.send(t, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":{"n":1},"result":{"n":2}}`)
	if line := a.call(t, "", `"id":7`); !strings.Contains(line, `"result":{"n":2}`) {
		t.Fatalf("the session got %s, want the server's answer", line)
	}
	b := r.open(`{}`, false)
	line := b.call(t, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{},"params":{}}`, `"error"`)
	if !strings.Contains(line, "duplicate member") {
		t.Fatalf("a client request naming params twice got %s, want an error naming the duplicate", line)
	}
}
