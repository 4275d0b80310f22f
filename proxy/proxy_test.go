package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseInitializeRoot(t *testing.T) {
	for _, tc := range []struct{ body, root, id string }{
		{`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"workspaceFolders":[{"uri":"file:///a/b","name":"b"}],"rootUri":"file:///c"}}`, "/a/b", "1"},
		{`{"jsonrpc":"2.0","id":"x","method":"initialize","params":{"workspaceFolders":null,"rootUri":"file:///c/d%20e"}}`, "/c/d e", `"x"`},
		{`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"rootUri":null,"rootPath":"/p/q/"}}`, "/p/q", "2"},
		{`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{}}`, "", "3"},
		{`{"jsonrpc":"2.0","method":"initialized","params":{}}`, "", ""},
	} {
		in, err := parseInitialize([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if in.Root != filepath.FromSlash(tc.root) || string(in.ID) != tc.id {
			t.Errorf("%s: root %q id %s, want %q %s", tc.body, in.Root, in.ID, tc.root, tc.id)
		}
	}
	if _, err := parseInitialize([]byte("{not json")); err == nil {
		t.Error("malformed first message accepted")
	}
}

func TestErrorResponse(t *testing.T) {
	got := string(errorResponse([]byte("7"), -32002, "boom"))
	want := `{"jsonrpc":"2.0","id":7,"error":{"code":-32002,"message":"boom"}}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestRelayOutcomes runs the relay over loopback TCP: editor EOF is a clean
// detach with the backend's last bytes delivered; a backend that closes
// while the editor stays is reported as such.
func TestRelayOutcomes(t *testing.T) {
	addr := echoBackend(t) // echoes, then closes when its input ends
	dial := func() net.Conn { return dialT(t, addr) }
	var out bytes.Buffer
	if got := relay(context.Background(), editorIO{In: bytes.NewReader([]byte("hello")), Out: &out}, dial(), nil); got != editorClosed || out.String() != "hello" {
		t.Errorf("editor EOF: outcome %v, relayed %q", got, out.String())
	}

	// Backend closes while the editor keeps its end open.
	pr, pw := io.Pipe()
	defer pw.Close()
	c := dial()
	done := make(chan outcome, 1)
	go func() { done <- relay(context.Background(), editorIO{In: pr, Out: io.Discard}, c, nil) }()
	c.(*net.TCPConn).CloseRead() // our reads end: the relay's conn→editor copy sees EOF
	select {
	case got := <-done:
		if got != backendClosed {
			t.Errorf("backend close: outcome %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end")
	}
	pw.Close()
}

// TestExitWatcher: the exit notification is seen whatever the reads'
// boundaries, and a message that only mentions exit is not it.
func TestExitWatcher(t *testing.T) {
	exit := frame(`{"jsonrpc":"2.0","method" :  "exit"}`)
	for cut := 0; cut <= len(exit); cut++ {
		w := &exitWatcher{r: io.MultiReader(strings.NewReader(exit[:cut]), strings.NewReader(exit[cut:])), gate: newLSPGate(false)}
		if b, _ := io.ReadAll(w); string(b) != exit || !w.sawExit() {
			t.Fatalf("split at %d: passed %q, saw exit %v", cut, b, w.sawExit())
		}
	}
	for _, body := range []string{`{"method":"shutdown","id":1}`, `{"method":"x","params":{"method":"exit"}}`} {
		w := &exitWatcher{r: strings.NewReader(frame(body)), gate: newLSPGate(false)}
		if io.ReadAll(w); w.sawExit() {
			t.Errorf("%s taken for exit", body)
		}
	}
}

// TestRelayExitThenBackendCloses: after the editor's exit notification the
// backend closing is a clean end, though the editor keeps stdin open.
func TestRelayExitThenBackendCloses(t *testing.T) {
	a, b := net.Pipe()
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan outcome, 1)
	go func() { done <- relay(context.Background(), editorIO{In: pr, Out: io.Discard}, a, nil) }()
	go func() {
		pw.Write([]byte("Content-Length: 33\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}"))
	}()
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(b, buf, 55)
	if !bytes.Contains(buf[:n], []byte(`"exit"`)) {
		t.Fatalf("backend got %q", buf[:n])
	}
	b.Close()
	select {
	case got := <-done:
		if got != editorClosed {
			t.Errorf("outcome %v, want EditorClosed", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end")
	}
}

func TestPathToURIRoundTrip(t *testing.T) {
	p := filepath.FromSlash("/c/d e/f.go")
	u := PathToURI(p)
	if u != "file:///c/d%20e/f.go" {
		t.Errorf("PathToURI(%q) = %q", p, u)
	}
	if back := uriToPath(u); back != p {
		t.Errorf("URIToPath(%q) = %q, want %q", u, back, p)
	}
}
