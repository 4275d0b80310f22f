package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procref/procref/internal/mcp"
	"github.com/procref/procref/internal/mux"
)

// scripted is a server the test plays itself: what the mux writes to it is
// read with next, what the test sends goes to the mux.
type scripted struct {
	io.Reader // server → mux
	io.Writer // mux → server
	toMux     *io.PipeWriter
	toSrv     *io.PipeWriter // the server's stdin: Close closes it (mux.Server)
	fromMux   *bufio.Reader
	once      sync.Once
	done      chan struct{}
}

func newScripted() *scripted {
	r1, w1 := io.Pipe() // server → mux
	r2, w2 := io.Pipe() // mux → server
	return &scripted{Reader: r1, Writer: w2, toMux: w1, toSrv: w2, fromMux: bufio.NewReader(r2), done: make(chan struct{})}
}

func (s *scripted) Close() error {
	s.once.Do(func() { s.toMux.Close(); s.toSrv.Close(); close(s.done) })
	return nil
}
func (s *scripted) Kill() error { return s.Close() }
func (s *scripted) Wait() error { <-s.done; return nil }

// next returns the next message the mux sent to the server, decoded.
func (s *scripted) next(t *testing.T) map[string]any {
	t.Helper()
	line, err := s.fromMux.ReadString('\n')
	if err != nil {
		t.Fatalf("reading what the mux sent the server: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("the mux sent the server %q: %v", line, err)
	}
	return m
}

// expect skips messages until one with method (or, for "", a response).
func (s *scripted) expect(t *testing.T, method string) map[string]any {
	t.Helper()
	for {
		m := s.next(t)
		if got, _ := m["method"].(string); got == method {
			return m
		}
	}
}

func (s *scripted) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.toMux, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// policyRig is a mux on a scripted server, with sessions on net.Pipes.
type policyRig struct {
	t   *testing.T
	srv *scripted
	m   *mcp.Mux
	wg  sync.WaitGroup
}

func newPolicyRig(t *testing.T) *policyRig {
	r := &policyRig{t: t, srv: newScripted()}
	m, err := mcp.New(mcp.Config{Start: func(context.Context) (mux.Server, error) { return r.srv, nil }})
	if err != nil {
		t.Fatal(err)
	}
	mcp.CheckTables(m)
	r.m = m
	t.Cleanup(func() {
		m.Close(context.Background())
		r.srv.Close()
		r.wg.Wait()
	})
	return r
}

// open starts a session and initializes it with caps; the first one's
// initialize is answered by the scripted server.
func (r *policyRig) open(caps string, first bool) session {
	t := r.t
	c, s := net.Pipe()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.m.ServeClient(context.Background(), s)
	}()
	t.Cleanup(func() { c.Close() })
	ses := session{conn: c, r: bufio.NewReader(c)}
	ses.conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":`+caps+`}}`+"\n")
	if first {
		in := r.srv.expect(t, "initialize")
		id, _ := json.Marshal(in["id"])
		r.srv.send(t, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":{"protocolVersion":"2025-06-18","capabilities":{"logging":{}},"serverInfo":{"name":"scripted"}}}`)
	}
	ses.call(t, "", `"serverInfo"`)
	io.WriteString(c, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
	return ses
}

// TestRootsUnion: the server's roots/list is answered with the union of
// the roots of the sessions that declared the roots capability (a session
// without it is not asked), once.
func TestRootsUnion(t *testing.T) {
	r := newPolicyRig(t)
	a := r.open(`{"roots":{"listChanged":true}}`, true)
	b := r.open(`{"roots":{}}`, false)
	c := r.open(`{}`, false)
	r.srv.send(t, `{"jsonrpc":"2.0","id":"s1","method":"roots/list"}`)
	answer := func(s session, root string) {
		got := s.call(t, "", `"roots/list"`)
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		json.Unmarshal([]byte(got), &m)
		io.WriteString(s.conn, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"roots":[{"uri":"`+root+`"}]}}`+"\n")
	}
	answer(a, "file:///a")
	answer(b, "file:///b")
	res := r.srv.expect(t, "")
	if id, _ := res["id"].(string); id != "s1" {
		t.Fatalf("the server got %v, want the answer to s1", res)
	}
	roots, _ := json.Marshal(res["result"])
	if !strings.Contains(string(roots), "file:///a") || !strings.Contains(string(roots), "file:///b") {
		t.Errorf("roots/list answered %s, want file:///a and file:///b", roots)
	}
	c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := c.r.ReadString('\n'); err == nil {
		t.Errorf("a session without the roots capability got %s", line)
	}
}

// TestLogLevels: each session gets notifications/message at its own
// logging/setLevel; the server is set to the most verbose level asked for.
func TestLogLevels(t *testing.T) {
	r := newPolicyRig(t)
	verbose := r.open(`{}`, true)
	quiet := r.open(`{}`, false)
	setLevel := func(s session, level string) {
		io.WriteString(s.conn, `{"jsonrpc":"2.0","id":7,"method":"logging/setLevel","params":{"level":"`+level+`"}}`+"\n")
	}
	setLevel(verbose, "debug")
	got := r.srv.expect(t, "logging/setLevel")
	if lv := got["params"].(map[string]any)["level"]; lv != "debug" {
		t.Fatalf("the server was set to %v, want debug", lv)
	}
	id, _ := json.Marshal(got["id"])
	r.srv.send(t, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":{}}`)
	verbose.call(t, "", `"id":7`)
	setLevel(quiet, "error")
	quiet.call(t, "", `"id":7`) // answered without asking the server: debug stays
	r.srv.send(t, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"for debug only"}}`)
	r.srv.send(t, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","data":"for both"}}`)
	verbose.call(t, "", "for debug only")
	verbose.call(t, "", "for both")
	if got := quiet.call(t, "", `"notifications/message"`); !strings.Contains(got, "for both") {
		t.Errorf("the error-level session got %s first, want only the error message", got)
	}
}

// TestCancelledRouted: a session's notifications/cancelled reaches the
// server with the server-side id of that session's request.
func TestCancelledRouted(t *testing.T) {
	r := newPolicyRig(t)
	a := r.open(`{}`, true)
	io.WriteString(a.conn, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow"}}`+"\n")
	call := r.srv.expect(t, "tools/call")
	hid, _ := json.Marshal(call["id"])
	io.WriteString(a.conn, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}}`+"\n")
	got := r.srv.expect(t, "notifications/cancelled")
	rid, _ := json.Marshal(got["params"].(map[string]any)["requestId"])
	if string(rid) != string(hid) {
		t.Errorf("cancelled carries requestId %s, want the server-side id %s", rid, hid)
	}
}
