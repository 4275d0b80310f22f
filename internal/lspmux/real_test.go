package lspmux

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/procref/procref/internal/mux"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procref/procref/internal/wire"
)

// needServer skips (or, with PROCREF_REQUIRE_SERVERS=1, fails) when a real
// language server is not installed.
func needServer(t *testing.T, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("PROCREF_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s not installed (PROCREF_REQUIRE_SERVERS=1): apt-get install -y clangd python3-pylsp python3-pyflakes", bin)
		}
		t.Skipf("%s not installed: apt-get install -y clangd python3-pylsp python3-pyflakes", bin)
	}
	return p
}

// tapBackend records what the mux sends to a real server.
type tapBackend struct {
	Backend
	mu   sync.Mutex
	sent []tapMsg
	pend []byte // bytes written but not yet parsed (a partial frame)
	wake chan struct{}
}

type tapMsg struct {
	method string
	uri    string
}

func (b *tapBackend) Write(p []byte) (int, error) {
	// The mux may hand the backend several frames, or part of one, per
	// Write: parse the stream.
	b.mu.Lock()
	b.pend = append(b.pend, p...)
	for {
		i := bytes.Index(b.pend, []byte("\r\n\r\n"))
		if i < 0 {
			break
		}
		var n int
		for _, line := range strings.Split(string(b.pend[:i]), "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "content-length") {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if len(b.pend) < i+4+n {
			break
		}
		body := b.pend[i+4 : i+4+n]
		if f, err := wire.Scan(body); err == nil && f.Method.Ok() {
			var uri string
			params := f.Params.Of(body)
			if sp, ok, _ := wire.Lookup(params, "textDocument", "uri"); ok {
				uri, _ = wire.Unquote(sp.Of(params))
			}
			b.sent = append(b.sent, tapMsg{f.MethodName(), uri})
			close(b.wake)
			b.wake = make(chan struct{})
		}
		b.pend = append(b.pend[:0], b.pend[i+4+n:]...)
	}
	b.mu.Unlock()
	return b.Backend.Write(p)
}

func (b *tapBackend) count(method, uri string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.sent {
		if m.method == method && (uri == "" || m.uri == uri) {
			n++
		}
	}
	return n
}

func (b *tapBackend) waitSent(ctx context.Context, method, uri string) error {
	for {
		b.mu.Lock()
		w := b.wake
		b.mu.Unlock()
		if b.count(method, uri) > 0 {
			return nil
		}
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("backend never got %s %s: %w", method, uri, ctx.Err())
		}
	}
}

func (b *tapBackend) pid() int {
	if p, ok := b.Backend.(interface{ Pid() int }); ok {
		return p.Pid()
	}
	return 0
}

// realRig runs a mux over a real server, serving clients on loopback TCP.
type realRig struct {
	t     *testing.T
	ctx   context.Context
	root  string
	mux   *Mux
	ln    net.Listener
	mu    sync.Mutex
	taps  []*tapBackend
	wg    sync.WaitGroup
	bin   string
	conns []*tclient
}

func newRealRig(t *testing.T, bin string, args []string, files map[string]string, global bool, tune ...func(*Config)) *realRig {
	path := needServer(t, bin)
	r := &realRig{t: t, ctx: testCtx(t), root: t.TempDir(), bin: filepath.Base(path)}
	for name, text := range files {
		p := filepath.Join(r.root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		Logger:          testLogger(t),
		ShutdownTimeout: 5 * time.Second,
		ShareGlobal:     global,
		Start: func(ctx context.Context) (Backend, error) {
			cmd := exec.Command(path, args...)
			cmd.Dir = r.root
			be, err := mux.Exec(cmd)
			if err != nil {
				return nil, err
			}
			tap := &tapBackend{Backend: be, wake: make(chan struct{})}
			r.mu.Lock()
			r.taps = append(r.taps, tap)
			r.mu.Unlock()
			return tap, nil
		},
	}
	for _, f := range tune {
		f(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.checks, m.calls.Check, m.asks.Check = true, true, true
	r.mux = m
	r.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				m.ServeClient(r.ctx, c)
			}()
		}
	}()
	t.Cleanup(r.cleanup)
	return r
}

func (r *realRig) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r.mux.Close(ctx)
	r.ln.Close()
	r.wg.Wait()
	for _, c := range r.conns {
		c.close()
	}
	for _, tap := range r.taps { // every server we started is gone
		tap.Wait()
	}
}

func (r *realRig) uri(name string) string {
	return (&url.URL{Scheme: "file", Path: filepath.Join(r.root, name)}).String()
}

func (r *realRig) dial(name string) *tclient {
	conn, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		r.t.Fatal(err)
	}
	c := newTClient(r.t, name, conn)
	r.conns = append(r.conns, c)
	return c
}

func (r *realRig) tap() *tapBackend {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.taps[len(r.taps)-1]
}

// serverProcs counts live processes named like the server whose parent is
// this test process (Linux; -1 elsewhere).
func serverProcs(name string) int {
	if runtime.GOOS != "linux" {
		return -1
	}
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(st)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		comm := s[i+1 : j]
		fields := strings.Fields(s[j+1:])
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if ppid == os.Getpid() && strings.HasPrefix(comm, name) {
			n++
		}
	}
	return n
}

func pidAlive(pid int) bool {
	if runtime.GOOS != "linux" {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(st)
	j := strings.LastIndexByte(s, ')')
	return j > 0 && !strings.HasPrefix(strings.TrimSpace(s[j+1:]), "Z")
}

type realCase struct {
	bin        string
	args       []string
	lang       string
	files      map[string]string
	own        []string // one file per client
	shared     string
	hoverLine  int
	hoverWord  string
	nodeClient bool
}

// hoverPos finds the position of word in line of text.
func hoverPos(text string, line int, word string) (int, int) {
	l := strings.Split(text, "\n")[line]
	return line, strings.Index(l, word) + 1
}

func runRealCase(t *testing.T, rc realCase) {
	r := newRealRig(t, rc.bin, rc.args, rc.files, false)
	ctx := r.ctx
	names := []string{"a", "b", "c"}
	clients := make([]*tclient, len(names))
	for i, n := range names {
		clients[i] = r.dial(n)
	}
	// node client, concurrently with the Go clients
	nodeDone := make(chan string, 1)
	if rc.nodeClient {
		dir, _ := filepath.Abs("../../testdata/lspmux-node")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "vscode-jsonrpc")); err != nil {
			msg := "NODE CLIENT PART SKIPPED, NODE MODULES MISSING: run `npm ci --prefix testdata/lspmux-node`"
			if os.Getenv("PROCREF_REQUIRE_SERVERS") == "1" {
				t.Fatal(msg)
			}
			t.Log(msg + " (skipping that part)")
			rc.nodeClient = false
		} else if _, err := exec.LookPath("node"); err != nil {
			if os.Getenv("PROCREF_REQUIRE_SERVERS") == "1" {
				t.Fatal("node not installed")
			}
			rc.nodeClient = false
		}
	}
	if rc.nodeClient {
		file := rc.own[0]
		line, char := hoverPos(rc.files[file], rc.hoverLine, rc.hoverWord)
		cmd := exec.CommandContext(ctx, "node", "client.js", strconv.Itoa(r.ln.Addr().(*net.TCPAddr).Port),
			(&url.URL{Scheme: "file", Path: r.root}).String(), r.uri(file), rc.lang, strconv.Itoa(line), strconv.Itoa(char))
		cmd.Dir, _ = filepath.Abs("../../testdata/lspmux-node")
		cmd.Stderr = os.Stderr
		go func() {
			out, err := cmd.Output()
			if err != nil {
				nodeDone <- fmt.Sprintf(`{"error":%q,"out":%q}`, err.Error(), out)
				return
			}
			nodeDone <- string(out)
		}()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	rootURI := (&url.URL{Scheme: "file", Path: r.root}).String()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.initialize(ctx, rootURI); err != nil {
				errs <- fmt.Errorf("%s initialize: %w", c.name, err)
				return
			}
			for _, f := range []string{rc.own[i], rc.shared} {
				if err := c.didOpen(r.uri(f), rc.files[f], 1); err != nil {
					errs <- err
					return
				}
			}
			for _, f := range []string{rc.own[i], rc.shared} {
				uri := r.uri(f)
				if _, err := c.waitNote(ctx, func(m wireMsg) bool {
					var p struct{ URI string }
					json.Unmarshal(m.Params, &p)
					return m.Method == "textDocument/publishDiagnostics" && p.URI == uri
				}); err != nil {
					errs <- fmt.Errorf("%s diagnostics for %s: %w", c.name, f, err)
					return
				}
			}
			line, char := hoverPos(rc.files[rc.own[i]], rc.hoverLine, rc.hoverWord)
			res, err := c.hover(ctx, r.uri(rc.own[i]), line, char)
			if err != nil || string(res) == "null" || len(res) == 0 {
				errs <- fmt.Errorf("%s hover = %s, %v", c.name, res, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	// each client got diagnostics only for what it opened (and the files
	// in its root that nobody has open, which none are here)
	for i, c := range clients {
		for uri := range c.diagURIs() {
			if uri != r.uri(rc.own[i]) && uri != r.uri(rc.shared) {
				t.Errorf("%s got diagnostics for %s it did not open", c.name, uri)
			}
		}
	}
	if rc.nodeClient {
		var out struct {
			OK          bool
			Diagnostics int
			Hover       *string
			Error       string
		}
		select {
		case line := <-nodeDone:
			if err := json.Unmarshal([]byte(line), &out); err != nil || !out.OK || out.Hover == nil {
				t.Fatalf("node vscode-jsonrpc client: %s", line)
			}
			t.Logf("node client: %s", strings.TrimSpace(line))
		case <-ctx.Done():
			t.Fatal("node client did not finish")
		}
	}
	if n := r.mux.Backends(); n != 1 {
		t.Fatalf("%d backends started, want 1", n)
	}
	if n := serverProcs(r.bin); n != 1 && n != -1 {
		t.Fatalf("%d %s processes, want exactly 1", n, r.bin)
	}
	tap := r.tap()
	if n := tap.count("initialize", ""); n != 1 {
		t.Fatalf("server got %d initialize", n)
	}
	if n := tap.count("textDocument/didOpen", r.uri(rc.shared)); n != 1 {
		t.Fatalf("server got %d didOpen for the shared file, want 1", n)
	}

	// c's connection is killed (RST) mid-request: the others are
	// unaffected and c's own document is closed at the server.
	a, b, c := clients[0], clients[1], clients[2]
	line, char := hoverPos(rc.files[rc.own[2]], rc.hoverLine, rc.hoverWord)
	c.start("textDocument/hover", map[string]any{"textDocument": map[string]any{"uri": r.uri(rc.own[2])}, "position": map[string]int{"line": line, "character": char}})
	c.start("textDocument/completion", map[string]any{"textDocument": map[string]any{"uri": r.uri(rc.own[2])}, "position": map[string]int{"line": line, "character": char}})
	if tc, ok := c.conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.close()
	if err := tap.waitSent(ctx, "textDocument/didClose", r.uri(rc.own[2])); err != nil {
		t.Fatal(err)
	}
	if tap.count("textDocument/didClose", r.uri(rc.shared)) != 0 {
		t.Fatal("shared document closed while others have it open")
	}
	for i, cl := range []*tclient{a, b} {
		line, char := hoverPos(rc.files[rc.own[i]], rc.hoverLine, rc.hoverWord)
		if res, err := cl.hover(ctx, r.uri(rc.own[i]), line, char); err != nil || string(res) == "null" {
			t.Fatalf("%s hover after c died = %s, %v", cl.name, res, err)
		}
	}

	// b: shutdown then exit; a keeps working
	if _, err := b.call(ctx, "shutdown", nil); err != nil {
		t.Fatal(err)
	}
	b.notify("exit", nil)
	<-b.done // the mux closed b's connection
	line, char = hoverPos(rc.files[rc.own[0]], rc.hoverLine, rc.hoverWord)
	if res, err := a.hover(ctx, r.uri(rc.own[0]), line, char); err != nil || string(res) == "null" {
		t.Fatalf("a hover after b's exit = %s, %v", res, err)
	}
	if tap.count("shutdown", "") != 0 || tap.count("exit", "") != 0 {
		t.Fatal("a client's shutdown/exit reached the server")
	}
	if err := tap.waitSent(ctx, "textDocument/didClose", r.uri(rc.own[1])); err != nil {
		t.Fatal(err)
	}

	// Close: the server gets shutdown and exit, and its process is gone.
	pid := tap.pid()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := r.mux.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if tap.count("shutdown", "") != 1 || tap.count("exit", "") != 1 {
		t.Fatalf("server got %d shutdown, %d exit on Close", tap.count("shutdown", ""), tap.count("exit", ""))
	}
	if pid > 0 && pidAlive(pid) {
		t.Fatalf("server pid %d still alive after Close", pid)
	}
	if n := serverProcs(r.bin); n > 0 {
		t.Fatalf("%d %s processes left after Close", n, r.bin)
	}
	if err := a.waitGone(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitGone waits until the mux has closed the client's connection.
func (c *tclient) waitGone(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return errors.New(c.name + ": connection not closed")
	}
}

func TestRealClangd(t *testing.T) {
	files := map[string]string{
		"compile_flags.txt": "-xc\n-std=c11\n",
		"shared.h":          "int shared_fn(int x);\n",
		"a.c":               "#include \"shared.h\"\nint one(void) { return shared_fn(1) + undefined_a; }\n",
		"b.c":               "#include \"shared.h\"\nint two(void) { return shared_fn(2) + undefined_b; }\n",
		"c.c":               "#include \"shared.h\"\nint three(void) { return shared_fn(3) + undefined_c; }\n",
		"s.c":               "#include \"shared.h\"\nint shared_fn(int x) { return x * missing; }\n",
	}
	runRealCase(t, realCase{
		bin: "clangd", args: []string{"--log=error", "--background-index=false"}, lang: "c", files: files,
		own: []string{"a.c", "b.c", "c.c"}, shared: "s.c", hoverLine: 1, hoverWord: "shared_fn",
		nodeClient: true,
	})
}

func TestRealPylsp(t *testing.T) {
	files := map[string]string{
		"a.py": "import os\n\n\ndef one():\n    return os.path.join('a', undefined_a)\n",
		"b.py": "import os\n\n\ndef two():\n    return os.path.join('b', undefined_b)\n",
		"c.py": "import os\n\n\ndef three():\n    return os.path.join('c', undefined_c)\n",
		"s.py": "import sys\n\n\ndef shared():\n    return sys.argv + missing\n",
	}
	runRealCase(t, realCase{
		bin: "pylsp", lang: "python", files: files,
		own: []string{"a.py", "b.py", "c.py"}, shared: "s.py", hoverLine: 4, hoverWord: "join",
		nodeClient: true,
	})
}

// A real pylsp is killed with SIGKILL while three clients have documents
// open: the mux restarts it, replays the documents, and hovers work for
// every client without reopening anything.
func TestRealPylspCrashRestart(t *testing.T) {
	files := map[string]string{
		"a.py": "import os\n\n\ndef one():\n    return os.path.join('a', undefined_a)\n",
		"b.py": "import os\n\n\ndef two():\n    return os.path.join('b', undefined_b)\n",
		"c.py": "import os\n\n\ndef three():\n    return os.path.join('c', undefined_c)\n",
	}
	r := newRealRig(t, "pylsp", nil, files, false, func(cfg *Config) { cfg.MaxRestarts = 1 })
	rootURI := (&url.URL{Scheme: "file", Path: r.root}).String()
	var cs []*tclient
	for _, n := range []string{"a", "b", "c"} {
		c := r.dial(n)
		if _, err := c.initialize(r.ctx, rootURI); err != nil {
			t.Fatal(err)
		}
		mustNoErr(t, c.didOpen(r.uri(n+".py"), files[n+".py"], 1))
		line, char := hoverPos(files[n+".py"], 4, "join")
		if _, err := c.hover(r.ctx, r.uri(n+".py"), line, char); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	old := r.tap()
	p, err := os.FindProcess(old.pid())
	mustNoErr(t, err)
	// Freeze it so one request per client is surely in flight, then kill.
	if err := freeze(old.pid()); err != nil {
		t.Skip(err)
	}
	var held []chan wireMsg
	for _, c := range cs {
		f := c.name + ".py"
		line, char := hoverPos(files[f], 4, "join")
		_, ch := c.start("textDocument/hover", map[string]any{"textDocument": map[string]any{"uri": r.uri(f)}, "position": map[string]int{"line": line, "character": char}})
		held = append(held, ch)
	}
	waitFor(t, r.ctx, func() bool { return old.count("textDocument/hover", "") >= 6 })
	mustNoErr(t, p.Kill()) // SIGKILL
	t0 := time.Now()
	for i, ch := range held {
		if _, err := wait(r.ctx, ch); err == nil {
			t.Fatalf("%s: request in flight at the killed server got an answer, want an error", cs[i].name)
		}
	}
	t.Logf("in-flight requests failed %v after SIGKILL", time.Since(t0))
	for _, c := range cs {
		if _, err := c.waitNote(r.ctx, func(m wireMsg) bool { return m.Method == "window/showMessage" }); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cs {
		f := c.name + ".py"
		line, char := hoverPos(files[f], 4, "join")
		res, err := c.hover(r.ctx, r.uri(f), line, char)
		if err != nil || string(res) == "null" {
			t.Fatalf("%s hover after restart = %s, %v", c.name, res, err)
		}
	}
	if n := r.mux.Backends(); n != 2 {
		t.Fatalf("%d backends, want 2", n)
	}
	if pidAlive(old.pid()) {
		t.Fatal("killed server still alive")
	}
	if n := serverProcs(r.bin); n != 1 && n != -1 {
		t.Fatalf("%d pylsp processes after restart, want 1", n)
	}
	if n := r.tap().count("textDocument/didOpen", ""); n != 3 {
		t.Fatalf("restarted server got %d didOpen, want the 3 open documents", n)
	}
	// restart limit (1 here): the next crash stops the mux for good
	p2, _ := os.FindProcess(r.tap().pid())
	mustNoErr(t, p2.Kill())
	select {
	case <-r.mux.Done():
	case <-r.ctx.Done():
		t.Fatal("mux did not stop after the restart limit")
	}
	if !errors.Is(r.mux.Err(), ErrBackendFailed) {
		t.Fatalf("Err = %v", r.mux.Err())
	}
	for _, c := range cs {
		if err := c.waitGone(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := serverProcs(r.bin); n > 0 {
		t.Fatalf("%d pylsp processes after the mux stopped", n)
	}
}

// --share=global: two roots, one pylsp; the second root is added with
// workspace/didChangeWorkspaceFolders.
func TestRealPylspGlobal(t *testing.T) {
	files := map[string]string{
		"r1/a.py": "import os\n\n\ndef one():\n    return os.path.join('a', undefined_a)\n",
		"r2/b.py": "import sys\n\n\ndef two():\n    return sys.argv + undefined_b\n",
	}
	r := newRealRig(t, "pylsp", nil, files, true)
	a, b := r.dial("a"), r.dial("b")
	for c, root := range map[*tclient]string{a: "r1", b: "r2"} {
		if _, err := c.initialize(r.ctx, (&url.URL{Scheme: "file", Path: filepath.Join(r.root, root)}).String()); err != nil {
			t.Fatal(err)
		}
	}
	for c, f := range map[*tclient]string{a: "r1/a.py", b: "r2/b.py"} {
		mustNoErr(t, c.didOpen(r.uri(f), files[f], 1))
		uri := r.uri(f)
		if _, err := c.waitNote(r.ctx, func(m wireMsg) bool {
			var p struct{ URI string }
			json.Unmarshal(m.Params, &p)
			return m.Method == "textDocument/publishDiagnostics" && p.URI == uri
		}); err != nil {
			t.Fatal(err)
		}
		word := "join"
		if c == b {
			word = "argv"
		}
		line, char := hoverPos(files[f], 4, word)
		if res, err := c.hover(r.ctx, uri, line, char); err != nil || string(res) == "null" {
			t.Fatalf("%s hover = %s, %v", c.name, res, err)
		}
	}
	if n := r.tap().count("workspace/didChangeWorkspaceFolders", ""); n != 1 {
		t.Fatalf("server got %d didChangeWorkspaceFolders, want 1", n)
	}
	if n := r.mux.Backends(); n != 1 {
		t.Fatalf("%d backends, want 1", n)
	}
	if b.diagURIs()[r.uri("r1/a.py")] != 0 || a.diagURIs()[r.uri("r2/b.py")] != 0 {
		t.Fatal("diagnostics crossed roots")
	}
}
