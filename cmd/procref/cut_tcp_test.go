package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/wire"
)

// cutServer (GO_WANT_HELPER_PROCESS=cut) is a tcp-mode language server on
// the unix socket after --listen=unix; (each connection: the host's probe,
// then the proxy's): it answers initialize, leaves
// test/slow unanswered, and on test/cut writes the header and the first
// 50 bytes of a 200-byte answer, then dies.
func cutServer(args []string) int {
	var path string
	for _, a := range args {
		if p, ok := strings.CutPrefix(a, "--listen=unix;"); ok {
			path = p
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		c, err := ln.Accept() // the host's probe, then the proxy
		if err != nil {
			return 1
		}
		go serveCut(c)
	}
}

func serveCut(c net.Conn) {
	defer c.Close()
	r := wire.NewReader(c, 0)
	for {
		body, err := r.Read()
		if err != nil {
			return
		}
		var m struct {
			ID     json.RawMessage
			Method string
		}
		json.Unmarshal(body, &m)
		switch m.Method {
		case "initialize":
			wire.Write(c, []byte(`{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"capabilities":{}}}`))
		case "test/cut":
			answer := `{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":"`
			answer += strings.Repeat("x", 200-len(answer)-2) + `"}`
			fmt.Fprintf(c, "Content-Length: %d\r\n\r\n%s", len(answer), answer[:50])
			fmt.Fprintln(os.Stderr, "cut server: dying inside an answer")
			os.Exit(3)
		}
	}
}

// TestTCPServerDiesInsideMessage: a tcp-mode server that dies after half
// an answer leaves the editor's reader inside that message. The proxy
// completes it to its announced length, so the error answers for the
// requests in flight (test/slow and the cut test/cut) reach the editor as
// messages of their own, in the order sent, and then it exits 1.
func TestTCPServerDiesInsideMessage(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	p := e.start(ws, []string{"GO_WANT_HELPER_PROCESS=cut"}, "--", os.Args[0], "--listen=unix;{socket}")
	msgs := make(chan []byte, 16)
	go func() {
		defer close(msgs)
		r := wire.NewReader(p.stdout, 0)
		for {
			b, err := r.Read()
			if err != nil {
				return
			}
			msgs <- b
		}
	}()
	next := func(what string) []byte {
		t.Helper()
		select {
		case b, ok := <-msgs:
			if !ok {
				t.Fatalf("%s: the editor's stream ended; stderr:\n%s", what, p.stderr.String())
			}
			return b
		case <-time.After(time.Minute):
			t.Fatalf("%s: nothing within a minute; stderr:\n%s", what, p.stderr.String())
			return nil
		}
	}
	wire.Write(p.stdin, []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"rootUri":"file://`+ws+`","capabilities":{}}}`))
	if b := next("initialize"); !bytes.Contains(b, []byte(`"capabilities"`)) {
		t.Fatalf("initialize answered %s", b)
	}
	wire.Write(p.stdin, []byte(`{"jsonrpc":"2.0","method":"initialized","params":{}}`))
	wire.Write(p.stdin, []byte(`{"jsonrpc":"2.0","id":2,"method":"test/slow","params":{}}`))
	wire.Write(p.stdin, []byte(`{"jsonrpc":"2.0","id":3,"method":"test/cut","params":{}}`))
	if b := next("the cut answer"); len(b) != 200 || !bytes.HasPrefix(b, []byte(`{"jsonrpc":"2.0","id":3,"result":"xx`)) || strings.TrimSpace(string(b[50:])) != "" {
		t.Fatalf("the cut answer arrived as %d bytes %q, want its 50 bytes completed with spaces to 200", len(b), b)
	}
	for _, id := range []string{"2", "3"} {
		var m struct {
			ID    json.RawMessage
			Error *struct {
				Code    int
				Message string
			}
		}
		b := next("the error answer to " + id)
		if err := json.Unmarshal(b, &m); err != nil || string(m.ID) != id || m.Error == nil || !strings.Contains(m.Error.Message, "crashed") {
			t.Fatalf("after the cut answer: %s, want the error answer to request %s saying the server crashed", b, id)
		}
	}
	if code := p.wait(t, time.Minute); code != 1 {
		t.Fatalf("proxy exited %d, want 1; stderr:\n%s", code, p.stderr.String())
	}
	if _, ok := <-msgs; ok {
		t.Fatal("more after the error answers")
	}
}
