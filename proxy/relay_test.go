package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// editorPipes is an editor attached through real pipes, as a proxy's stdin
// and stdout are: the relay runs its poll loop on them (on Linux, macOS and
// FreeBSD; elsewhere the goroutine relay).
type editorPipes struct {
	ed         Editor
	toProxy    *os.File // the editor writes its messages here
	fromProxy  *os.File // and reads the backend's here
	proxyFiles []*os.File
}

func newEditorPipes(t *testing.T, pending []byte) *editorPipes {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	e := &editorPipes{ed: Editor{In: inR, Out: outW, Pending: pending}, toProxy: inW, fromProxy: outR, proxyFiles: []*os.File{inR, outW}}
	t.Cleanup(func() {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
	})
	return e
}

// closeProxySide closes the proxy's ends once the relay has returned, as
// the proxy's exit would.
func (e *editorPipes) closeProxySide() {
	for _, f := range e.proxyFiles {
		f.Close()
	}
}

// echoBackend accepts connections and echoes each until its input ends.
func echoBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func dialT(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func waitOutcome(t *testing.T, done <-chan Outcome) Outcome {
	t.Helper()
	select {
	case o := <-done:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end")
		return 0
	}
}

// TestRelayPipesBulk: pending bytes first, then 4 MiB of random binary data
// each way through real pipes and loopback TCP arrive unchanged; editor
// EOF is a clean detach.
func TestRelayPipesBulk(t *testing.T) {
	addr := echoBackend(t)
	data := make([]byte, 4<<20)
	rand.Read(data)
	pending := []byte("pending:")
	e := newEditorPipes(t, pending)
	done := make(chan Outcome, 1)
	go func() { done <- Relay(context.Background(), e.ed, dialT(t, addr), nil) }()
	go func() {
		e.toProxy.Write(data)
		e.toProxy.Close()
	}()
	got := make([]byte, len(pending)+len(data))
	if _, err := io.ReadFull(e.fromProxy, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(pending, data...)) {
		t.Fatal("bytes changed on the way")
	}
	if o := waitOutcome(t, done); o != EditorClosed {
		t.Errorf("outcome %v, want EditorClosed", o)
	}
	if n := pollRelaysRun(); n == 0 {
		t.Error("the poll loop did not run on real pipes and TCP")
	}
	e.closeProxySide()
	if rest, _ := io.ReadAll(e.fromProxy); len(rest) != 0 {
		t.Errorf("%d extra bytes", len(rest))
	}
}

// TestRelayPipesBackendCloses: the backend closing while the editor stays
// is a failure; after the editor's LSP exit (split across two writes, and
// right after 2 MiB of bulk data, which the relay splices) it is a clean
// end.
func TestRelayPipesBackendCloses(t *testing.T) {
	bulk := bytes.Repeat([]byte("x"), 2<<20)
	for _, tc := range []struct {
		sendExit bool
		before   []byte
	}{{false, nil}, {true, nil}, {true, bulk}} {
		sendExit := tc.sendExit
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		e := newEditorPipes(t, nil)
		done := make(chan Outcome, 1)
		go func() { done <- Relay(context.Background(), e.ed, dialT(t, ln.Addr().String()), nil) }()
		b, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if tc.before != nil {
			go e.toProxy.Write(tc.before)
			if _, err := io.ReadFull(b, make([]byte, len(tc.before))); err != nil {
				t.Fatal(err)
			}
		}
		if sendExit {
			msg := "Content-Length: 33\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}"
			e.toProxy.Write([]byte(msg[:38]))
			io.ReadFull(b, make([]byte, 38))
			e.toProxy.Write([]byte(msg[38:]))
			io.ReadFull(b, make([]byte, len(msg)-38))
		}
		b.Close()
		want := BackendClosed
		if sendExit {
			want = EditorClosed
		}
		if o := waitOutcome(t, done); o != want {
			t.Errorf("exit sent %v after %d bytes: outcome %v, want %v", sendExit, len(tc.before), o, want)
		}
	}
}

// TestRelayPipesHostGone: the presence connection's end means the host is
// gone, whatever the backend does.
func TestRelayPipesHostGone(t *testing.T) {
	addr := echoBackend(t)
	e := newEditorPipes(t, nil)
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	pres := dialT(t, host.Addr().String())
	defer pres.Close()
	hc, err := host.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Outcome, 1)
	go func() { done <- Relay(context.Background(), e.ed, dialT(t, addr), pres) }()
	e.toProxy.Write([]byte("ping"))
	io.ReadFull(e.fromProxy, make([]byte, 4))
	hc.Close()
	if o := waitOutcome(t, done); o != BackendClosed {
		t.Errorf("outcome %v, want BackendClosed", o)
	}
}

// TestRelayPipesCancel: canceling ctx (a signal) ends the relay at once.
func TestRelayPipesCancel(t *testing.T) {
	addr := echoBackend(t)
	e := newEditorPipes(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Outcome, 1)
	go func() { done <- Relay(ctx, e.ed, dialT(t, addr), nil) }()
	e.toProxy.Write([]byte("ping"))
	io.ReadFull(e.fromProxy, make([]byte, 4))
	cancel()
	if o := waitOutcome(t, done); o != Canceled {
		t.Errorf("outcome %v, want Canceled", o)
	}
}

// TestRelayPipesEditorStdoutClosed: an editor that stops reading (closes
// its end of our stdout) ends the relay as a detach; the proxy is not
// killed by SIGPIPE.
func TestRelayPipesEditorStdoutClosed(t *testing.T) {
	addr := echoBackend(t)
	e := newEditorPipes(t, nil)
	done := make(chan Outcome, 1)
	go func() { done <- Relay(context.Background(), e.ed, dialT(t, addr), nil) }()
	e.fromProxy.Close()
	e.toProxy.Write([]byte("to nobody"))
	e.toProxy.Close()
	if o := waitOutcome(t, done); o != EditorClosed {
		t.Errorf("outcome %v, want EditorClosed", o)
	}
}

// TestRelayPipesRestoresBlocking: the editor's descriptors, blocking as an
// editor hands them over, are back in blocking mode after the relay.
func TestRelayPipesRestoresBlocking(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no poll relay")
	}
	addr := echoBackend(t)
	e := newEditorPipes(t, nil)
	for _, f := range e.proxyFiles {
		setBlocking(t, f)
	}
	e.toProxy.Close()
	if o := Relay(context.Background(), e.ed, dialT(t, addr), nil); o != EditorClosed {
		t.Fatalf("outcome %v", o)
	}
	for _, f := range e.proxyFiles {
		if nonblocking(t, f) {
			t.Errorf("%s left non-blocking", f.Name())
		}
	}
}

func TestExitScanner(t *testing.T) {
	msg := []byte(`Content-Length: 42` + "\r\n\r\n" + `{"jsonrpc":"2.0","method" : "exit"}`)
	for cut := 0; cut <= len(msg); cut++ {
		var s exitScanner
		s.Scan(msg[:cut])
		s.Scan(msg[cut:])
		if !s.saw {
			t.Fatalf("exit split at %d not seen", cut)
		}
	}
	// Byte by byte.
	var s exitScanner
	for i := range msg {
		s.Scan(msg[i : i+1])
	}
	if !s.saw {
		t.Error("exit fed byte by byte not seen")
	}
	var n exitScanner
	n.Scan([]byte(`{"method":"shutdown"} {"params":{"x":"exit"}}`))
	if n.saw {
		t.Error("false exit")
	}
}
