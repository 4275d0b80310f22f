package lspmux

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// refEdit is an independent reference for an LSP edit: text as lines of
// UTF-16 code units ("\n" line breaks only).
func refEdit(text string, r textRange, repl string) string {
	lines := strings.Split(text, "\n")
	off := func(p position) int { // index into the flat UTF-16 sequence
		n := 0
		for i := 0; i < p.Line && i < len(lines); i++ {
			n += len(utf16.Encode([]rune(lines[i]))) + 1
		}
		if p.Line >= len(lines) {
			return n - 1
		}
		return n + min(p.Character, len(utf16.Encode([]rune(lines[p.Line]))))
	}
	u := utf16.Encode([]rune(text))
	a, b := off(r.Start), off(r.End)
	out := append(append(append([]uint16(nil), u[:a]...), utf16.Encode([]rune(repl))...), u[b:]...)
	return string(utf16.Decode(out))
}

func TestApplyChangesUTF16(t *testing.T) {
	text := "aü€😀b\nx😀y\r\nlast"
	cases := []struct {
		r    textRange
		repl string
		enc  posEncoding
		want string
	}{
		{textRange{position{0, 5}, position{0, 6}}, "Z", encUTF16, "aü€😀Z\nx😀y\r\nlast"},    // after the astral char (2 units)
		{textRange{position{0, 3}, position{0, 5}}, "", encUTF16, "aü€b\nx😀y\r\nlast"},      // delete the astral char
		{textRange{position{1, 1}, position{2, 0}}, "-", encUTF16, "aü€😀b\nx-last"},         // across a CRLF
		{textRange{position{0, 99}, position{0, 99}}, "!", encUTF16, "aü€😀b!\nx😀y\r\nlast"}, // past the line end clamps
		{textRange{position{9, 0}, position{9, 0}}, "!", encUTF16, "aü€😀b\nx😀y\r\nlast!"},   // past the end clamps
		{textRange{position{0, 4}, position{0, 4}}, "|", encUTF16, "aü€|😀b\nx😀y\r\nlast"},   // inside a surrogate pair rounds down
		{textRange{position{0, 3}, position{0, 4}}, "", encUTF32, "aü€b\nx😀y\r\nlast"},      // utf-32: one unit
		{textRange{position{0, 1}, position{0, 3}}, "", encUTF8, "a€😀b\nx😀y\r\nlast"},       // utf-8 bytes
	}
	for i, c := range cases {
		r := c.r
		got := applyChanges(text, []contentChange{{Range: &r, Text: c.repl}}, c.enc)
		if got != c.want {
			t.Errorf("case %d: got %q, want %q", i, got, c.want)
		}
	}
	if got := applyChanges("old", []contentChange{{Text: "new"}}, encUTF16); got != "new" {
		t.Errorf("full replace = %q", got)
	}
	if got := applyChanges("a\rb", []contentChange{{Range: &textRange{position{1, 0}, position{1, 1}}, Text: "X"}}, encUTF16); got != "a\rX" {
		t.Errorf("CR line break = %q", got)
	}
}

// Two clients edit the same document in turn with incremental changes
// (multi-byte and astral characters included): after every step the
// server's text is the last editing client's; versions only increase
// (checked by the fake server); each client's diagnostics carry its own
// version or none.
func TestCoherenceTwoEditors(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.join("a", "r"), h.join("b", "r")
	uri := "file:///ws/r/doc.c"
	start := "héllo wörld\nline two 😀 end\nthird €\n"
	texts := map[*tclient]string{a: start, b: start}
	versions := map[*tclient]int{a: 1, b: 5}
	mustNoErr(t, a.didOpen(uri, start, 1))
	h.sync(a)
	mustNoErr(t, b.didOpen(uri, start, 5))
	h.sync(b)
	rng := rand.New(rand.NewSource(1))
	inserts := []string{"x", "ü", "😀", "€€", "\n", "ab\ncd", ""}
	for step := range 40 {
		c := a
		if step%3 == 1 || step%5 == 0 {
			c = b
		}
		lines := strings.Split(texts[c], "\n")
		pos := func() position {
			l := rng.Intn(len(lines))
			n := len(utf16.Encode([]rune(lines[l])))
			ch := rng.Intn(n + 1)
			// do not split a surrogate pair in the reference
			u := utf16.Encode([]rune(lines[l]))
			if ch > 0 && ch < n && utf16.IsSurrogate(rune(u[ch])) && u[ch] >= 0xDC00 {
				ch--
			}
			return position{l, ch}
		}
		p1, p2 := pos(), pos()
		if p2.Line < p1.Line || (p2.Line == p1.Line && p2.Character < p1.Character) {
			p1, p2 = p2, p1
		}
		r := textRange{p1, p2}
		repl := inserts[rng.Intn(len(inserts))]
		texts[c] = refEdit(texts[c], r, repl)
		versions[c]++
		mustNoErr(t, c.notify("textDocument/didChange", map[string]any{
			"textDocument":   map[string]any{"uri": uri, "version": versions[c]},
			"contentChanges": []any{map[string]any{"range": r, "text": repl}},
		}))
		h.sync(c)
		open, _ := h.server().snapshot()
		if open[uri].text != texts[c] {
			t.Fatalf("step %d (%s edits): server text %q, want %q", step, c.name, open[uri].text, texts[c])
		}
	}
	// diagnostics versions: each client sees its own version or none
	for _, c := range []*tclient{a, b} {
		own := map[int64]bool{}
		for v := 1; v <= versions[c]; v++ {
			own[int64(v)] = true
		}
		for _, m := range c.notesFor("textDocument/publishDiagnostics") {
			var p struct{ Version *int64 }
			json.Unmarshal(m.Params, &p)
			if p.Version != nil && !own[*p.Version] {
				t.Fatalf("%s got diagnostics with version %d it never had", c.name, *p.Version)
			}
		}
	}
	// the last editor leaves: the server gets the remaining client's text
	last := a
	if texts[a] == texts[b] {
		t.Skip("texts happen to agree")
	}
	open, _ := h.server().snapshot()
	if open[uri].text == texts[b] {
		last = b
	}
	other := map[*tclient]*tclient{a: b, b: a}[last]
	mustNoErr(t, last.didClose(uri))
	h.sync(last)
	h.sync(other)
	open, _ = h.server().snapshot()
	if open[uri].text != texts[other] {
		t.Fatalf("after the last editor closed, server text %q, want the remaining client's %q", open[uri].text, texts[other])
	}
}

// Backend crash: every request in flight is answered with an error at
// once, the backend restarts with documents replayed, hovers work without
// reopening, clients are told; the restart limit is honoured.
func TestCrashRecovery(t *testing.T) {
	h := newHarness(t, func(cfg *Config, f *fakeFarm) { cfg.MaxRestarts = 2 })
	cs := []*tclient{h.join("a", "r"), h.join("b", "r"), h.join("c", "r")}
	for i, c := range cs {
		mustNoErr(t, c.didOpen(fmt.Sprintf("file:///ws/r/%d.c", i), fmt.Sprintf("int v%d;", i), 1))
		mustNoErr(t, c.didOpen("file:///ws/r/shared.c", "int shared;", 1))
		h.sync(c)
	}
	// a change by b so the shared doc's text is b's
	mustNoErr(t, cs[1].notify("textDocument/didChange", map[string]any{
		"textDocument":   map[string]any{"uri": "file:///ws/r/shared.c", "version": 2},
		"contentChanges": []any{map[string]any{"text": "int shared_by_b;"}},
	}))
	h.sync(cs[1])
	reg := h.server().request("client/registerCapability", map[string]any{"registrations": []any{map[string]any{"id": "w1", "method": "workspace/didChangeWatchedFiles"}}})
	<-reg
	held := make([]chan wireMsg, len(cs))
	for i, c := range cs {
		_, held[i] = c.start("test/hold", fmt.Sprintf("h%d", i))
	}
	old := h.server()
	waitFor(t, h.ctx, func() bool { return old.holding("h0") && old.holding("h1") && old.holding("h2") })
	t0 := time.Now()
	old.be.Kill()
	for i := range cs {
		_, err := wait(h.ctx, held[i])
		var re *rpcError
		if !errors.As(err, &re) || re.Code != codeRequestFailed {
			t.Fatalf("%s in-flight request after crash: %v, want a RequestFailed error", cs[i].name, err)
		}
	}
	t.Logf("all in-flight requests failed %v after the kill", time.Since(t0))
	for i, c := range cs {
		res, err := c.hover(h.ctx, fmt.Sprintf("file:///ws/r/%d.c", i), 0, 0)
		if err != nil || !strings.Contains(string(res), fmt.Sprintf("int v%d;", i)) {
			t.Fatalf("%s hover after restart = %s, %v", c.name, res, err)
		}
		res, err = c.hover(h.ctx, "file:///ws/r/shared.c", 0, 0)
		if c == cs[1] {
			if err != nil || !strings.Contains(string(res), "int shared_by_b;") {
				t.Fatalf("%s hover on shared doc after restart = %s, %v", c.name, res, err)
			}
		} else if re := (*rpcError)(nil); !errors.As(err, &re) || re.Code != codeContentModified {
			// its line differs from b's text the server has (textview.go)
			t.Fatalf("%s hover on shared doc at a line b changed = %s, %v; want ContentModified", c.name, res, err)
		}
		if _, err := c.waitNote(h.ctx, func(m wireMsg) bool { return m.Method == "window/showMessage" }); err != nil {
			t.Fatal(err)
		}
		if _, err := c.waitSrvReq(h.ctx, func(m wireMsg) bool { return m.Method == "client/unregisterCapability" }); err != nil {
			t.Fatalf("%s not told to drop the dead server's registrations: %v", c.name, err)
		}
	}
	if n := h.farm.count(); n != 2 {
		t.Fatalf("%d backends, want 2", n)
	}
	s2 := h.server()
	s2.mu.Lock()
	if s2.inits != 1 || s2.initialized != 1 || len(s2.open) != 4 {
		t.Errorf("restarted server: %d initialize, %d initialized, %d open docs", s2.inits, s2.initialized, len(s2.open))
	}
	s2.mu.Unlock()
	// restart limit: 2 restarts allowed in the window; the 3rd crash stops
	h.server().be.Kill()
	waitFor(t, h.ctx, func() bool { return h.farm.count() == 3 })
	h.sync(cs[0]) // waits for the restart to finish
	h.server().be.Kill()
	select {
	case <-h.mux.Done():
	case <-h.ctx.Done():
		t.Fatal("mux did not stop after exceeding the restart limit")
	}
	if err := h.mux.Err(); !errors.Is(err, ErrBackendFailed) {
		t.Fatalf("Err = %v, want ErrBackendFailed", err)
	}
	for _, c := range cs {
		if err := c.waitGone(h.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.waitNote(h.ctx, func(m wireMsg) bool {
			return m.Method == "window/showMessage" && strings.Contains(string(m.Params), "keeps crashing")
		}); err != nil {
			t.Fatalf("%s not told the server stopped: %v", c.name, err)
		}
		if err := h.serveResult(c.name); !errors.Is(err, ErrBackendFailed) {
			t.Fatalf("ServeClient(%s) = %v, want ErrBackendFailed", c.name, err)
		}
	}
	if n := h.farm.count(); n != 3 {
		t.Fatalf("%d backends, want 3 (2 restarts)", n)
	}
}

// rawClient connects a client and returns the raw pipe end; the test
// writes bytes itself.
func (h *harness) rawClient(name string) net.Conn {
	a, b := net.Pipe()
	ch := make(chan error, 1)
	go func() { ch <- h.mux.ServeClient(h.ctx, b) }()
	h.mu.Lock()
	h.served[name] = ch
	h.mu.Unlock()
	h.t.Cleanup(func() { a.Close() })
	return a
}

func frameOf(body string) []byte { return wire.AppendFrame(nil, []byte(body)) }

// Each kind of broken client is contained: it alone gets an error and/or
// is disconnected; another client's requests succeed during and after.
func TestHostileClientsContained(t *testing.T) {
	h := newHarness(t, func(cfg *Config, f *fakeFarm) {
		cfg.MaxMessage = 1 << 20
		cfg.ClientQueue = 256 << 10
		cfg.ClientInflight = 64 << 10
	})
	good := h.join("good", "r")
	mustNoErr(t, good.didOpen("file:///ws/r/g.c", "int g;", 1))
	check := func(when string) {
		t.Helper()
		for i := range 3 {
			want := fmt.Sprintf(`"%s-%d"`, when, i)
			if got, err := good.call(h.ctx, "test/echo", json.RawMessage(want)); err != nil || string(got) != want {
				t.Fatalf("good client %s: %s, %v", when, got, err)
			}
		}
	}
	initMsg := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"rootUri":"file:///ws/r"}}`

	t.Run("malformed header", func(t *testing.T) {
		c := h.rawClient("bad-header")
		go io.Copy(io.Discard, c)
		c.Write([]byte("Content-Length: nope\r\n\r\n{}"))
		if err := h.serveResult("bad-header"); !errors.Is(err, wire.ErrBadHeader) {
			t.Fatalf("ServeClient = %v, want ErrBadHeader", err)
		}
		check("after-header")
	})
	t.Run("invalid json", func(t *testing.T) {
		c := newTClient(t, "bad-json", h.rawClient("bad-json"))
		defer c.close()
		if _, err := c.initialize(h.ctx, "file:///ws/r"); err != nil {
			t.Fatal(err)
		}
		c.writeRaw([]byte(`{"jsonrpc":"2.0","id":5,"method":`))
		c.writeRaw([]byte("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"x\",\"params\":\"\xff\"}"))
		errs, err := c.waitNullErrs(h.ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range errs {
			if !strings.Contains(string(e.Error), "-32700") {
				t.Fatalf("invalid json answered %s, want a parse error", e.Error)
			}
		}
		if _, err := c.call(h.ctx, "test/echo", 1); err != nil {
			t.Fatalf("session after invalid json: %v", err)
		}
		check("after-json")
	})
	t.Run("wrong content length", func(t *testing.T) {
		c := h.rawClient("bad-length")
		answers := make(chan []byte, 8)
		go func() {
			r := wire.NewReader(c, 0)
			for {
				b, err := r.Read()
				if err != nil {
					close(answers)
					return
				}
				answers <- b
			}
		}()
		msg := `{"jsonrpc":"2.0","id":1,"method":"test/echo","params":1}`
		fmt.Fprintf(c, "Content-Length: %d\r\n\r\n%s", len(msg)-10, msg)
		got := <-answers
		if !bytes.Contains(got, []byte(`-32700`)) {
			t.Fatalf("short Content-Length answered %s, want a parse error", got)
		}
		// the leftover bytes run into the next header: disconnected
		c.Write(frameOf(msg))
		if err := h.serveResult("bad-length"); !errors.Is(err, wire.ErrBadHeader) {
			t.Fatalf("ServeClient = %v, want ErrBadHeader", err)
		}
		check("after-length")
	})
	t.Run("over the size bound", func(t *testing.T) {
		c := h.rawClient("too-big")
		answers := make(chan []byte, 8)
		go func() {
			r := wire.NewReader(c, 0)
			for {
				b, err := r.Read()
				if err != nil {
					close(answers)
					return
				}
				answers <- b
			}
		}()
		big := `{"jsonrpc":"2.0","id":1,"method":"test/echo","params":"` + strings.Repeat("x", 2<<20) + `"}`
		go c.Write(frameOf(big))
		if got := <-answers; !bytes.Contains(got, []byte("size limit")) {
			t.Fatalf("oversized message answered %s", got)
		}
		// Skipping the body would read all of it (a Content-Length of
		// 10000000000 hung the window): the session ends instead, with
		// the end notice saying why as its last message.
		if got := <-answers; !bytes.Contains(got, []byte(hostproto.EndMethod)) || !bytes.Contains(got, []byte("size limit")) {
			t.Fatalf("after the oversized message: %s, want the end notice", got)
		}
		if got, ok := <-answers; ok {
			t.Fatalf("after the end notice: %s, want the session closed", got)
		}
		if err := h.serveResult("too-big"); !errors.Is(err, wire.ErrTooLarge) {
			t.Fatalf("ServeClient = %v, want ErrTooLarge", err)
		}
		c.Close()
		check("after-big")
	})
	t.Run("exit as a request", func(t *testing.T) {
		c := newTClient(t, "exit-req", h.rawClient("exit-req"))
		defer c.close()
		c.initialize(h.ctx, "file:///ws/r")
		_, err := c.call(h.ctx, "exit", nil)
		var re *rpcError
		if !errors.As(err, &re) || re.Code != codeInvalidRequest {
			t.Fatalf("exit request answered %v", err)
		}
		c.notify("shutdown", nil) // a shutdown notification must not reach the server either
		check("after-exit-request")
		s := h.server()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.exited || s.shutdowns > 0 {
			t.Fatal("a lifecycle message of the wrong kind reached the server")
		}
	})
	t.Run("flood", func(t *testing.T) {
		c := newTClient(t, "flood", h.rawClient("flood"))
		defer c.close()
		c.initialize(h.ctx, "file:///ws/r")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := strings.Repeat("f", 16<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c.notify("test/noise", payload) != nil {
					return
				}
			}
		}()
		check("during-flood")
		close(stop)
		wg.Wait()
		check("after-flood")
	})
	t.Run("client that does not read", func(t *testing.T) {
		conn := h.rawClient("deaf")
		conn.Write(frameOf(initMsg)) // never reads the answer
		payload := strings.Repeat("d", 32<<10)
		go func() {
			for i := 0; ; i++ {
				msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"test/echo","params":%q}`, i+2, payload)
				if _, err := conn.Write(frameOf(msg)); err != nil {
					return
				}
			}
		}()
		check("during-deaf")
		if err := h.serveResult("deaf"); !errors.Is(err, mux.ErrClientStalled) {
			t.Fatalf("ServeClient(deaf) = %v, want mux.ErrClientStalled", err)
		}
		check("after-deaf")
	})
}
