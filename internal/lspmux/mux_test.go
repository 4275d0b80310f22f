package lspmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	switch os.Getenv("GO_WANT_HELPER_PROCESS") {
	case "1":
		helperServer()
		os.Exit(0)
	case "echo":
		helperEcho()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// logWriter sends the mux's log to the test log while the test runs.
type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testCtx is bounded by the test deadline (or 60s).
func testCtx(t testing.TB) context.Context {
	d := time.Now().Add(60 * time.Second)
	if tt, ok := t.(*testing.T); ok {
		if dl, ok := tt.Deadline(); ok && dl.Before(d) {
			d = dl.Add(-2 * time.Second)
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type harness struct {
	t       testing.TB
	ctx     context.Context
	farm    *fakeFarm
	mux     *Mux
	mu      sync.Mutex
	clients []*tclient
	served  map[string]chan error
}

func newHarness(t testing.TB, tune func(*Config, *fakeFarm)) *harness {
	h := &harness{t: t, ctx: testCtx(t), farm: &fakeFarm{t: t}, served: map[string]chan error{}}
	cfg := Config{Logger: testLogger(t), ShutdownTimeout: 2 * time.Second}
	if tune != nil {
		tune(&cfg, h.farm)
	}
	cfg.Start = h.farm.start
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.checks, m.calls.Check, m.asks.Check = true, true, true // every change of the routing tables is verified
	h.mux = m
	t.Cleanup(h.cleanup)
	return h
}

func (h *harness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.mux.Close(ctx); err != nil {
		h.t.Errorf("Close: %v", err)
	}
	for _, c := range h.clients {
		c.close()
	}
	for _, s := range h.farm.servers {
		_, v := s.snapshot()
		for _, x := range v {
			h.t.Errorf("server invariant: %s", x)
		}
	}
	for _, c := range h.clients {
		for _, x := range c.violationsNow() {
			h.t.Errorf("client invariant: %s", x)
		}
	}
}

// connect attaches a new client over an in-memory pipe.
func (h *harness) connect(name string) *tclient {
	a, b := net.Pipe()
	ch := make(chan error, 1)
	go func() { ch <- h.mux.ServeClient(h.ctx, b) }()
	c := newTClient(h.t, name, a)
	h.mu.Lock()
	h.clients = append(h.clients, c)
	h.served[name] = ch
	h.mu.Unlock()
	return c
}

// join connects and initializes a client with root file:///ws/<root>.
func (h *harness) join(name, root string) *tclient {
	h.t.Helper()
	c := h.connect(name)
	if _, err := c.initialize(h.ctx, "file:///ws/"+root); err != nil {
		h.t.Fatalf("%s initialize: %v", name, err)
	}
	return c
}

// served returns ServeClient's result for a client, waiting for it.
func (h *harness) serveResult(name string) error {
	h.mu.Lock()
	ch := h.served[name]
	h.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-h.ctx.Done():
		h.t.Fatalf("ServeClient for %s did not return", name)
		return nil
	}
}

func (h *harness) server() *fakeServer { return h.farm.last() }

// sync makes sure everything c sent before has reached the server (the
// mux keeps each client's order, and the fake server answers in order).
func (h *harness) sync(c *tclient) {
	h.t.Helper()
	if _, err := c.call(h.ctx, "test/echo", "sync"); err != nil {
		h.t.Fatalf("%s sync: %v", c.name, err)
	}
}

func mustNoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newHeldInitHarness returns a harness whose server answers initialize
// only once release is closed.
func newHeldInitHarness(t *testing.T) (*harness, chan struct{}) {
	release := make(chan struct{})
	h := newHarness(t, func(cfg *Config, f *fakeFarm) {
		f.hook = func(s *fakeServer, method string, id, params json.RawMessage) bool {
			if method != "initialize" {
				return false
			}
			s.mu.Lock()
			s.inits++
			s.mu.Unlock()
			go func() { <-release; s.reply(id, json.RawMessage(s.caps)) }()
			return true
		}
	})
	return h, release
}

func TestInitializeOnceCachedAndWaits(t *testing.T) {
	h, release := newHeldInitHarness(t)
	waiting := make(chan struct{}, 8)
	h.mux.testHook = func(ev string) {
		if ev == "init-wait" {
			waiting <- struct{}{}
		}
	}
	cs := []*tclient{h.connect("a"), h.connect("b"), h.connect("c")}
	results := make(chan error, len(cs))
	res := make([]json.RawMessage, len(cs))
	for i, c := range cs {
		go func() {
			r, err := c.initialize(h.ctx, "file:///ws/r")
			res[i] = r
			results <- err
		}()
	}
	for range cs { // all three are waiting on the one initialize in flight
		select {
		case <-waiting:
		case <-h.ctx.Done():
			t.Fatal("clients did not reach the initialize wait")
		}
	}
	close(release)
	for range cs {
		mustNoErr(t, <-results)
	}
	for i := range cs {
		if string(res[i]) != string(res[0]) || !strings.Contains(string(res[0]), `"fake"`) {
			t.Fatalf("initialize results differ or wrong: %s vs %s", res[i], res[0])
		}
	}
	for _, c := range cs {
		h.sync(c)
	}
	late := h.join("d", "r") // after: answered from the cache
	h.sync(late)
	s := h.server()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inits != 1 || s.initialized != 1 {
		t.Fatalf("server saw %d initialize, %d initialized; want 1, 1", s.inits, s.initialized)
	}
	if h.farm.count() != 1 {
		t.Fatalf("%d backends started", h.farm.count())
	}
}

func TestRequestIDsAndCancel(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.join("a", "r"), h.join("b", "r")
	// Both clients use the same ids (numbers 2, 4, ... and their own
	// strings); the server must see unique ids, each client only its own
	// answers.
	var wg sync.WaitGroup
	for _, c := range []*tclient{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := fmt.Sprintf(`"%s-%d"`, c.name, i)
				got, err := c.call(h.ctx, "test/echo", json.RawMessage(want))
				if err != nil || string(got) != want {
					t.Errorf("%s echo %d = %s, %v", c.name, i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// cancel: the server gets $/cancelRequest with the host id it saw
	id, ch := a.start("test/hold", "k1")
	waitFor(t, h.ctx, func() bool { return h.server().holding("k1") })
	mustNoErr(t, a.notify("$/cancelRequest", map[string]any{"id": json.RawMessage(id)}))
	mustNoErr(t, b.notify("$/cancelRequest", map[string]any{"id": json.RawMessage(id)})) // b has no such request: dropped
	h.sync(a)
	h.sync(b)
	s := h.server()
	s.mu.Lock()
	nc := len(s.cancelled)
	s.mu.Unlock()
	if nc != 1 {
		t.Fatalf("server saw %d cancels, want 1", nc)
	}
	s.release("k1")
	if r, err := wait(h.ctx, ch); err != nil || string(r) != `"released k1"` {
		t.Fatalf("held answer = %s, %v", r, err)
	}
}

// waitFor polls a condition on in-process test state that offers no event
// (the fake server's bookkeeping), bounded by ctx.
func waitFor(t testing.TB, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached in time")
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func TestDocumentsOpenCloseBalanced(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.join("a", "r"), h.join("b", "r")
	x, y := "file:///ws/r/x.c", "file:///ws/r/y.c"
	mustNoErr(t, a.didOpen(x, "int x;", 1))
	h.sync(a)
	mustNoErr(t, b.didOpen(x, "int x;", 7))
	mustNoErr(t, b.didOpen(y, "int y;", 1))
	h.sync(b)
	s := h.server()
	s.mu.Lock()
	if s.opens[x] != 1 || s.opens[y] != 1 {
		t.Errorf("opens = %v; want one each", s.opens)
	}
	s.mu.Unlock()
	mustNoErr(t, a.didClose(x))
	h.sync(a)
	s.mu.Lock()
	if s.closes[x] != 0 {
		t.Errorf("didClose reached the server while b still has %s open", x)
	}
	s.mu.Unlock()
	// a gets its diagnostics for x cleared, as a private server would
	if _, err := a.waitNote(h.ctx, func(m wireMsg) bool {
		return m.Method == "textDocument/publishDiagnostics" && strings.Contains(string(m.Params), `"diagnostics":[]`)
	}); err != nil {
		t.Fatal(err)
	}
	// b leaves without closing: its documents are closed for it
	b.close()
	if err := h.serveResult("b"); err != nil {
		t.Errorf("ServeClient(b) = %v, want nil on EOF", err)
	}
	h.sync(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closes[x] != 1 || s.closes[y] != 1 || len(s.open) != 0 {
		t.Errorf("after b left: closes %v, still open %v", s.closes, s.open)
	}
}

func TestDiagnosticsOnlyToOpeners(t *testing.T) {
	h := newHarness(t, nil)
	a, b, c := h.join("a", "r"), h.join("b", "r"), h.join("c", "other")
	ax, bx, shared := "file:///ws/r/a.c", "file:///ws/r/b.c", "file:///ws/r/s.c"
	mustNoErr(t, a.didOpen(ax, "a", 1))
	mustNoErr(t, a.didOpen(shared, "s", 1))
	h.sync(a)
	mustNoErr(t, b.didOpen(bx, "b", 1))
	mustNoErr(t, b.didOpen(shared, "s", 1))
	h.sync(b)
	// a diagnostic for a file nobody has open goes to clients whose root holds it
	h.server().notify("textDocument/publishDiagnostics", map[string]any{"uri": "file:///ws/r/closed.c", "diagnostics": []any{}})
	h.server().notify("window/logMessage", map[string]any{"type": 3, "message": "to all"})
	for _, cl := range []*tclient{a, b, c} {
		if _, err := cl.waitNote(h.ctx, func(m wireMsg) bool { return m.Method == "window/logMessage" }); err != nil {
			t.Fatal(err)
		}
	}
	ga, gb, gc := a.diagURIs(), b.diagURIs(), c.diagURIs()
	if ga[bx] != 0 || gb[ax] != 0 || len(gc) != 0 {
		t.Errorf("diagnostics leaked: a %v, b %v, c %v", ga, gb, gc)
	}
	if ga[ax] == 0 || gb[bx] == 0 || ga["file:///ws/r/closed.c"] != 1 || gb["file:///ws/r/closed.c"] != 1 {
		t.Errorf("diagnostics missing: a %v, b %v", ga, gb)
	}
	if ga[shared] == 0 {
		t.Errorf("a got no diagnostics for the shared file: %v", ga)
	}
}

func TestServerRequestsAnsweredExactlyOnce(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join("a", "r")
	b := h.join("b", "r2")
	a.mu.Lock()
	a.answer = func(m wireMsg) (any, string, bool) {
		if m.Method == "workspace/configuration" {
			return []string{"from-a"}, "", true
		}
		return nil, "", true
	}
	a.mu.Unlock()
	s := h.server()
	// registration: answered by the host, passed to all, replayed to late joiners
	reg := s.request("client/registerCapability", map[string]any{"registrations": []any{map[string]any{"id": "r1", "method": "workspace/didChangeWatchedFiles"}}})
	select {
	case r := <-reg:
		if string(r) != "null" {
			t.Fatalf("registration answer %s", r)
		}
	case <-h.ctx.Done():
		t.Fatal("registration not answered")
	}
	for _, c := range []*tclient{a, b} {
		if _, err := c.waitSrvReq(h.ctx, func(m wireMsg) bool { return m.Method == "client/registerCapability" }); err != nil {
			t.Fatal(err)
		}
	}
	late := h.join("late", "r")
	if _, err := late.waitSrvReq(h.ctx, func(m wireMsg) bool {
		return m.Method == "client/registerCapability" && strings.Contains(string(m.Params), `"r1"`)
	}); err != nil {
		t.Fatal("late joiner did not get the registration replayed: ", err)
	}
	// refresh and progress creation: host-answered
	for _, method := range []string{"workspace/semanticTokens/refresh", "window/workDoneProgress/create"} {
		if r := <-s.request(method, map[string]any{"token": "srv1"}); string(r) != "null" {
			t.Fatalf("%s answered %s", method, r)
		}
	}
	// workspace/configuration: to the causing client (a asks via test/ask), answer mapped back
	res, err := a.call(h.ctx, "test/ask", map[string]any{"method": "workspace/configuration", "params": map[string]any{"items": []any{map[string]any{}}}})
	if err != nil || string(res) != `["from-a"]` {
		t.Fatalf("configuration round trip = %s, %v", res, err)
	}
	if len(b.requestsFor("workspace/configuration")) != 0 {
		t.Fatal("configuration request went to a client that did not cause it")
	}
	// workspaceFolders: the union
	res, err = a.call(h.ctx, "test/ask", map[string]any{"method": "workspace/workspaceFolders"})
	if err != nil || !strings.Contains(string(res), "file:///ws/r2") || !strings.Contains(string(res), "file:///ws/r\"") {
		t.Fatalf("workspaceFolders = %s, %v", res, err)
	}
	// a client that leaves without answering: the server gets an error answer
	b.mu.Lock()
	b.answer = func(m wireMsg) (any, string, bool) { return nil, "", false } // never answers
	b.mu.Unlock()
	h.sync(b) // b is now the most recently active
	ask := s.request("window/showMessageRequest", map[string]any{"type": 3, "message": "pick"})
	if _, err := b.waitSrvReq(h.ctx, func(m wireMsg) bool { return m.Method == "window/showMessageRequest" }); err != nil {
		t.Fatal(err)
	}
	b.close()
	select {
	case r := <-ask:
		if !strings.Contains(string(r), "error") {
			t.Fatalf("departed client's request answered %s, want an error", r)
		}
	case <-h.ctx.Done():
		t.Fatal("server request left unanswered after its client left")
	}
	h.sync(a)
	if u := s.unanswered(); len(u) != 0 {
		t.Fatalf("server requests never answered: %v", u)
	}
}

func TestShutdownExitEndsOnlyThatSession(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.join("a", "r"), h.join("b", "r")
	uri := "file:///ws/r/x.c"
	mustNoErr(t, a.didOpen(uri, "int a;", 1))
	mustNoErr(t, b.didOpen(uri, "int a;", 1))
	if _, err := a.call(h.ctx, "shutdown", nil); err != nil {
		t.Fatal(err)
	}
	mustNoErr(t, a.notify("exit", nil))
	if err := h.serveResult("a"); err != nil {
		t.Fatalf("ServeClient(a) after exit = %v", err)
	}
	r, err := b.hover(h.ctx, uri, 0, 0)
	if err != nil || !strings.Contains(string(r), "int a;") {
		t.Fatalf("b hover after a's exit = %s, %v", r, err)
	}
	s := h.server()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdowns != 0 || s.exited {
		t.Fatal("a client's shutdown/exit reached the server")
	}
	if h.mux.Clients() != 1 {
		t.Fatalf("Clients() = %d", h.mux.Clients())
	}
}

func TestProgressTokensToOwner(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.join("a", "r"), h.join("b", "r")
	for _, c := range []*tclient{a, b} {
		res, err := c.call(h.ctx, "test/progress", map[string]any{"workDoneToken": "tok"})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(res), `"tok"`) {
			t.Fatalf("server saw the client's own token %s, want a host token", res)
		}
	}
	for _, c := range []*tclient{a, b} {
		h.sync(c)
		if n := len(c.notesFor("$/progress")); n != 1 {
			t.Fatalf("%s got %d progress notes, want exactly its own 1", c.name, n)
		}
		p := c.notesFor("$/progress")[0]
		if !strings.Contains(string(p.Params), `"token":"tok"`) {
			t.Fatalf("%s progress token not mapped back: %s", c.name, p.Params)
		}
	}
}

func TestCloseStopsBackend(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join("a", "r")
	h.sync(a)
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	mustNoErr(t, h.mux.Close(ctx))
	select {
	case <-h.mux.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if err := h.serveResult("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("ServeClient after Close = %v, want ErrClosed", err)
	}
	s := h.server()
	select {
	case <-s.done:
	default:
		t.Fatal("backend still running after Close")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdowns != 1 || !s.exited {
		t.Fatalf("backend got %d shutdown, exit %v; want 1, true", s.shutdowns, s.exited)
	}
	if err := h.mux.ServeClient(h.ctx, nopConn{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("ServeClient on closed mux = %v", err)
	}
}

type nopConn struct{}

func (nopConn) Read([]byte) (int, error)    { return 0, errors.New("nop") }
func (nopConn) Write(p []byte) (int, error) { return len(p), nil }
func (nopConn) Close() error                { return nil }

func TestStartFailureAnswersInitialize(t *testing.T) {
	h := newHarness(t, func(cfg *Config, f *fakeFarm) { f.fail = errors.New("no such server") })
	a := h.connect("a")
	_, err := a.initialize(h.ctx, "file:///ws/r")
	var re *rpcError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "no such server") {
		t.Fatalf("initialize with a failing Start = %v", err)
	}
	h.farm.mu.Lock()
	h.farm.fail = nil
	h.farm.mu.Unlock()
	// the client is disconnected (its proxy then exits 1 with the reason);
	// the next window tries a new backend
	if err := h.serveResult("a"); !errors.Is(err, ErrInitFailed) {
		t.Fatalf("ServeClient after a failed initialize = %v, want ErrInitFailed", err)
	}
	h.join("a2", "r")
	b := h.join("b", "r")
	h.sync(b)
	if h.mux.Backends() != 1 {
		t.Fatalf("Backends = %d", h.mux.Backends())
	}
}

func TestBackendRefusesInitialize(t *testing.T) {
	h := newHarness(t, func(cfg *Config, f *fakeFarm) {
		f.hook = func(s *fakeServer, method string, id, params json.RawMessage) bool {
			if method != "initialize" {
				return false
			}
			s.send(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": -32603, "message": "bad options"}})
			return true
		}
	})
	a := h.connect("a")
	_, err := a.call(h.ctx, "initialize", map[string]any{})
	var re *rpcError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "bad options") {
		t.Fatalf("refused initialize answered %v", err)
	}
	// the refused backend was stopped; nothing else runs
	select {
	case <-h.farm.last().done:
	case <-h.ctx.Done():
		t.Fatal("refused backend still running")
	}
}

// TestPipelinedAfterInitialize: a client that sends initialized, didOpen
// and a hover right after its initialize, before the result (LSP forbids
// it, but servers on stdio read on and some clients rely on that), gets
// them handled in order once it is answered: the hover is answered, the
// document is open at the server.
func TestPipelinedAfterInitialize(t *testing.T) {
	h, release := newHeldInitHarness(t)
	waiting := make(chan struct{}, 1)
	awaiting := make(chan struct{}, 8)
	h.mux.testHook = func(ev string) {
		switch ev {
		case "init-wait":
			waiting <- struct{}{}
		case "await-init":
			awaiting <- struct{}{}
		}
	}
	c := h.connect("a")
	_, initCh := c.start("initialize", map[string]any{"processId": nil, "rootUri": "file:///ws/r", "capabilities": map[string]any{}})
	select {
	case <-waiting:
	case <-h.ctx.Done():
		t.Fatal("initialize did not reach the server")
	}
	hoverCh := make(chan chan wireMsg, 1)
	go func() { // the test's pipe has no buffer: these writes complete as the mux reads
		c.notify("initialized", map[string]any{})
		c.didOpen("file:///ws/r/a.c", "int a;", 1)
		_, ch := c.start("textDocument/hover", map[string]any{
			"textDocument": map[string]any{"uri": "file:///ws/r/a.c"}, "position": map[string]int{"line": 0, "character": 0},
		})
		hoverCh <- ch
	}()
	select { // the mux has read initialized and holds it until the answer
	case <-awaiting:
	case <-h.ctx.Done():
		t.Fatal("the message after initialize was not held")
	}
	close(release)
	if _, err := wait(h.ctx, initCh); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if _, err := wait(h.ctx, <-hoverCh); err != nil {
		t.Fatalf("hover sent before the initialize result: %v", err)
	}
	open, violations := h.server().snapshot()
	if _, ok := open["file:///ws/r/a.c"]; !ok {
		t.Errorf("didOpen sent before the initialize result did not reach the server; open: %v", open)
	}
	if len(violations) > 0 {
		t.Errorf("server saw violations: %v", violations)
	}
}
