package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/proctest"
)

// TestRelayLargeBodiesSpliced: in tcp mode (exit withheld, requests in
// flight tracked) 1 MiB requests and answers cross the relay byte for byte,
// id first and id last as clients, clangd and gopls write them; on Linux
// the requests' middles are spliced, never read by the process (rchar,
// which splice(2) does not count, grows by the answers the relay copies
// and less than half the requests, on top of what the test's own ends
// read). Then the backend crashes after
// taking 200 KiB of a third 1 MiB request, whose id comes last: the relay
// reads that request to its end, ends BackendClosed, and that request,
// and only it, gets the error answer.
func TestRelayLargeBodiesSpliced(t *testing.T) {
	big := func() string {
		b := make([]byte, 3<<18)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b) // 1 MiB
	}
	p1, p2, p3 := big(), big(), big()
	exchanges := []struct{ req, resp string }{
		{frame(`{"jsonrpc":"2.0","id":1,"method":"x/big","params":"` + p1 + `"}`), frame(`{"jsonrpc":"2.0","result":"` + p1 + `","id":1}`)},
		{frame(`{"params":"` + p2 + `","method":"x/big","jsonrpc":"2.0","id":"two"}`), frame(`{"id":"two","jsonrpc":"2.0","result":"` + p2 + `"}`)},
	}
	// The id last (Helix, Go's jsonrpc2): known only once the relay has
	// read the request's end, which it does after the backend is gone.
	req3 := frame(`{"jsonrpc":"2.0","method":"x/big","params":"` + p3 + `","id":3}`)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	backend := make(chan error, 1)
	e := newEditorPipes(t, nil)
	e.ed.LSP, e.ed.Inflight, e.ed.Note = true, newInflight(), hostproto.NewNote()
	// The host's word comes before the connection breaks: the relay could
	// end at once, were it not still reading req3.
	crash := func() { hostproto.WriteEnded(e.ed.Note, "the language server crashed") }
	go func() { backend <- scriptedBackend(ln, exchanges, 200<<10, crash) }()
	conn := dialT(t, ln.Addr().String())
	before := proctest.ReadChars(os.Getpid())
	done := make(chan outcome, 1)
	go func() { done <- relay(context.Background(), e.ed, conn, nil) }()
	up, down := 0, 0 // request and answer bytes: the test's ends read them all
	for i, x := range exchanges {
		if _, err := io.WriteString(e.toProxy, x.req); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(x.resp))
		if _, err := io.ReadFull(e.fromProxy, got); err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		if string(got) != x.resp {
			t.Fatalf("answer %d changed on the way", i+1)
		}
		up, down = up+len(x.req), down+len(x.resp)
	}
	relayed := proctest.ReadChars(os.Getpid()) - before - int64(up+down)
	t.Logf("the relay read %d bytes: %d of answers, %d of requests", relayed, down, up)
	if runtime.GOOS == "linux" && os.Getenv("PROCREF_RELAY") != "copy" && relayed > int64(down+up/2) {
		t.Errorf("the relay read %d bytes for %d of answers and %d of requests: the requests were not spliced", relayed, down, up)
	}

	conn.SetWriteBuffer(32 << 10) // so that the crash comes while the relay is inside req3
	wrote := make(chan error, 1)
	go func() { _, err := io.WriteString(e.toProxy, req3); wrote <- err }()
	if err := <-backend; err != nil {
		t.Fatalf("backend: %v", err)
	}
	if o := waitOutcome(t, done); o != backendClosed {
		t.Fatalf("outcome %v, want BackendClosed", o)
	}
	e.closeProxySide() // the proxy exits: the editor's write of req3 ends
	<-wrote
	errs := e.ed.Inflight.Errors(codeRequestFailed, "crashed")
	want := `{"jsonrpc":"2.0","id":3,"error":{"code":-32803,"message":"crashed"}}`
	if len(errs) != 1 || string(errs[0]) != want {
		t.Fatalf("errors after the crash %q, want only %s", errs, want)
	}
}

// scriptedBackend accepts one connection, reads each exchange's request
// exactly as sent and writes its answer, then reads crashAfter bytes more
// and closes the connection with the rest unread (a crash, crashed called
// just before).
func scriptedBackend(ln net.Listener, exchanges []struct{ req, resp string }, crashAfter int, crashed func()) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	for i, x := range exchanges {
		got := make([]byte, len(x.req))
		if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("request %d: %w", i+1, err)
		}
		if string(got) != x.req {
			return fmt.Errorf("request %d changed on the way", i+1)
		}
		if _, err := io.WriteString(c, x.resp); err != nil {
			return err
		}
	}
	c.(*net.TCPConn).SetReadBuffer(32 << 10)
	_, err = io.ReadFull(c, make([]byte, crashAfter))
	crashed()
	return err
}
