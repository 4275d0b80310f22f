package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// editorPipes is an editor attached through real pipes, as a proxy's stdin
// and stdout are: the relay runs its poll loop on them (on Linux; elsewhere
// the goroutine relay).
type editorPipes struct {
	ed         editorIO
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
	e := &editorPipes{ed: editorIO{In: inR, Out: outW, Pending: pending}, toProxy: inW, fromProxy: outR, proxyFiles: []*os.File{inR, outW}}
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

func waitOutcome(t *testing.T, done <-chan outcome) outcome {
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
	done := make(chan outcome, 1)
	go func() { done <- relayOnPipes(t, e.ed, dialT(t, addr)) }()
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
	if o := waitOutcome(t, done); o != editorClosed {
		t.Errorf("outcome %v, want EditorClosed", o)
	}
	e.closeProxySide()
	if rest, _ := io.ReadAll(e.fromProxy); len(rest) != 0 {
		t.Errorf("%d extra bytes", len(rest))
	}
}

// relayOnPipes is Relay as the proxy runs it on real pipes and TCP, and
// checks that this is the poll(2) loop on Linux: relayPoll takes these
// descriptors (its ok result) unless PROCREF_RELAY=copy asks for the
// portable relay.
func relayOnPipes(t *testing.T, ed editorIO, conn net.Conn) outcome {
	if runtime.GOOS != "linux" || os.Getenv("PROCREF_RELAY") == "copy" {
		return relay(context.Background(), ed, conn, nil)
	}
	o, ok := relayPoll(context.Background(), ed, conn, nil)
	if !ok {
		t.Error("the poll loop refused real pipes and TCP")
		return relayCopy(context.Background(), ed, conn, nil)
	}
	return o
}

// TestRelayPipesBackendCloses: the backend closing while the editor stays
// is a failure; after the editor's LSP exit (split across two writes, and
// right after 2 MiB of bulk data, which the relay splices) it is a clean
// end.
func TestRelayPipesBackendCloses(t *testing.T) {
	bulk := []byte(frame(`{"params":"` + strings.Repeat("x", 2<<20) + `"}`)) // one large LSP message
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
		done := make(chan outcome, 1)
		go func() { done <- relay(context.Background(), e.ed, dialT(t, ln.Addr().String()), nil) }()
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
			// in two writes: the gate passes the message once whole
			e.toProxy.Write([]byte(msg[:38]))
			e.toProxy.Write([]byte(msg[38:]))
			io.ReadFull(b, make([]byte, len(msg)))
		}
		b.Close()
		want := backendClosed
		if sendExit {
			want = editorClosed
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
	done := make(chan outcome, 1)
	go func() { done <- relay(context.Background(), e.ed, dialT(t, addr), pres) }()
	e.toProxy.Write([]byte("ping"))
	io.ReadFull(e.fromProxy, make([]byte, 4))
	hc.Close()
	if o := waitOutcome(t, done); o != backendClosed {
		t.Errorf("outcome %v, want BackendClosed", o)
	}
}

// TestRelayPipesCancel: canceling ctx (a signal) ends the relay at once.
func TestRelayPipesCancel(t *testing.T) {
	addr := echoBackend(t)
	e := newEditorPipes(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan outcome, 1)
	go func() { done <- relay(ctx, e.ed, dialT(t, addr), nil) }()
	e.toProxy.Write([]byte("ping"))
	io.ReadFull(e.fromProxy, make([]byte, 4))
	cancel()
	if o := waitOutcome(t, done); o != canceled {
		t.Errorf("outcome %v, want Canceled", o)
	}
}

// TestRelayPipesEditorStdoutClosed: an editor that stops reading (closes
// its end of our stdout) ends the relay as a detach; the proxy is not
// killed by SIGPIPE.
func TestRelayPipesEditorStdoutClosed(t *testing.T) {
	addr := echoBackend(t)
	e := newEditorPipes(t, nil)
	done := make(chan outcome, 1)
	go func() { done <- relay(context.Background(), e.ed, dialT(t, addr), nil) }()
	e.fromProxy.Close()
	e.toProxy.Write([]byte("to nobody"))
	e.toProxy.Close()
	if o := waitOutcome(t, done); o != editorClosed {
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
	if o := relay(context.Background(), e.ed, dialT(t, addr), nil); o != editorClosed {
		t.Fatalf("outcome %v", o)
	}
	for _, f := range e.proxyFiles {
		if nonblocking(t, f) {
			t.Errorf("%s left non-blocking", f.Name())
		}
	}
}

func frame(body string) string {
	return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// TestLSPGate: whatever the chunking, the gate passes every message before
// the exit notification byte for byte, never the exit body, and nothing
// after it; large bodies can bypass it exactly.
func TestLSPGate(t *testing.T) {
	big := `{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"text":"` + strings.Repeat("a", 10000) + ` \"method\":\"exit\""}}`
	before := frame(`{"jsonrpc":"2.0","id":1,"method":"shutdown"}`) + frame(big) +
		frame(`{"jsonrpc":"2.0","method":"x","params":{"method":"exit"}}`) + "content-length:  2\r\nContent-Type: x\r\n\r\n{}"
	exit := frame(`{"jsonrpc":"2.0","method":"exit"}`)
	stream := before + exit + frame(`{"jsonrpc":"2.0","id":2,"method":"after"}`)
	exitBody := len(before) + strings.Index(exit, "{")
	for _, size := range []int{1, 2, 3, 7, 64, 1000, 4096, len(stream)} {
		g := newLSPGate(true)
		var out []byte
		for i := 0; i < len(stream); i += size {
			out = g.Filter(out, []byte(stream[i:min(i+size, len(stream))]))
		}
		if !g.exit {
			t.Fatalf("chunks of %d: exit not seen", size)
		}
		if string(out) != stream[:exitBody] {
			t.Fatalf("chunks of %d: passed %d bytes, want the %d before the exit body", size, len(out), exitBody)
		}
	}
	// Splicing the large body's middle.
	g := newLSPGate(true)
	out := g.Filter(nil, []byte(before[:1000])) // past the kept head (endKeep)
	k := g.Splicable()
	if k == 0 {
		t.Fatal("nothing splicable inside a large body")
	}
	g.Skip(k)
	out = append(out, before[1000:1000+k]...)
	out = g.Filter(out, []byte(stream[1000+k:]))
	if !g.exit || string(out) != stream[:exitBody] {
		t.Fatalf("with a splice: exit %v, %d bytes", g.exit, len(out))
	}
	// Binary data with a blank line early: not LSP, everything passes.
	g = newLSPGate(true)
	bin := append([]byte("\x00\x01\r\n\r\n\xff"), []byte(exit)...)
	if out := g.Filter(nil, bin); string(out) != string(bin) || !g.f.raw {
		t.Errorf("binary stream changed (raw %v)", g.f.raw)
	}
	// Without withhold (mux mode) exit is noted and passes, and so does
	// what follows.
	for _, size := range []int{1, 7, 4096, len(stream)} {
		g := newLSPGate(false)
		var out []byte
		for i := 0; i < len(stream); i += size {
			out = g.Filter(out, []byte(stream[i:min(i+size, len(stream))]))
		}
		if !g.exit || string(out) != stream {
			t.Fatalf("pass mode, chunks of %d: exit %v, %d of %d bytes passed", size, g.exit, len(out), len(stream))
		}
	}
	// Not LSP: everything passes.
	g = newLSPGate(true)
	junk := strings.Repeat("no header here ", 400) + exit
	if out := g.Filter(nil, []byte(junk)); string(out) != junk || !g.f.raw {
		t.Errorf("raw stream changed (raw %v)", g.f.raw)
	}
}

// TestRelayPipesLSPExitWithheld: in LSP mode the backend gets every message
// but the exit notification, then EOF; the relay ends cleanly.
func TestRelayPipesLSPExitWithheld(t *testing.T) {
	for _, pendingExit := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		msgs := frame(`{"jsonrpc":"2.0","id":1,"method":"shutdown"}`) + frame(`{"jsonrpc":"2.0","method":"x","params":{"big":"`+strings.Repeat("b", 300<<10)+`"}}`)
		exit := frame(`{"jsonrpc":"2.0","method":"exit"}`)
		var pending []byte
		if pendingExit {
			pending = []byte(msgs + exit)
		}
		e := newEditorPipes(t, pending)
		e.ed.LSP = true
		done := make(chan outcome, 1)
		go func() { done <- relay(context.Background(), e.ed, dialT(t, ln.Addr().String()), nil) }()
		b, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if !pendingExit {
			go e.toProxy.Write([]byte(msgs + exit))
		}
		got, err := io.ReadAll(b) // ends when the relay half-closes
		if err != nil {
			t.Fatal(err)
		}
		if want := msgs + exit[:strings.Index(exit, "{")]; string(got) != want {
			t.Errorf("pending %v: backend got %d bytes, want %d (everything but the exit body)", pendingExit, len(got), len(want))
		}
		b.Close()
		if o := waitOutcome(t, done); o != editorClosed {
			t.Errorf("pending %v: outcome %v, want EditorClosed", pendingExit, o)
		}
	}
}

// TestRelayCopyLSPExitWithheld: the goroutine relay (editor not on pipes)
// withholds exit the same way.
func TestRelayCopyLSPExitWithheld(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := frame(`{"jsonrpc":"2.0","id":1,"method":"shutdown"}`)
	exit := frame(`{"jsonrpc":"2.0","method":"exit"}`)
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan outcome, 1)
	go func() {
		done <- relay(context.Background(), editorIO{In: pr, Out: io.Discard, LSP: true}, dialT(t, ln.Addr().String()), nil)
	}()
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go pw.Write([]byte(msgs + exit))
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := msgs + exit[:strings.Index(exit, "{")]; string(got) != want {
		t.Errorf("backend got %q, want %q", got, want)
	}
	b.Close()
	if o := waitOutcome(t, done); o != editorClosed {
		t.Errorf("outcome %v, want EditorClosed", o)
	}
}

// TestRelayPipesPortable runs the TestRelayPipes tests again with the
// portable relay (PROCREF_RELAY=copy), so the poll(2) relay and its
// fallback pass the same tests here too.
func TestRelayPipesPortable(t *testing.T) {
	if os.Getenv("PROCREF_RELAY") == "copy" {
		t.Skip("already the portable relay")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestRelayPipes", "-test.count", "1")
	cmd.Env = append(os.Environ(), "PROCREF_RELAY=copy")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("TestRelayPipes* with the portable relay: %v\n%s", err, out)
	}
}
