package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/lspclient"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/refcount"
)

// TestGoplsTCPMode: two proxies (two editor windows, each a Go LSP client)
// share one real `gopls serve -listen=unix;{socket}`: both get diagnostics
// and a hover; exactly one gopls, listening on the unix socket in the
// private runtime dir and on no TCP port; a third window that sends exit
// without shutdown (which makes gopls end its whole process) leaves gopls
// and the others untouched; gone, socket removed, within 2 s after all
// detach.
func TestGoplsTCPMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := newGoplsRig(ctx, t, 2, "-listen=unix;{socket}")
	e, uri, clients, procs := r.e, r.uri, r.clients, r.procs
	for i, c := range clients {
		diags, err := c.WaitDiagnostics(ctx, uri, func(d []lspclient.Diagnostic) bool { return len(d) > 0 })
		if err != nil {
			t.Fatalf("window %d: %v", i, err)
		}
		found := false
		for _, d := range diags {
			if strings.Contains(d.Message, "cannot use") || strings.Contains(d.Message, "declared and not used") {
				found = true
			}
		}
		if !found {
			t.Errorf("window %d: diagnostics lack the deliberate error: %+v", i, diags)
		}
		// Hover on Greeting's declaration (line 6, "func Greeting").
		h, err := c.Hover(ctx, uri, 5, 6)
		if err != nil {
			t.Fatalf("window %d: hover: %v", i, err)
		}
		if !strings.Contains(h, "Greeting") {
			t.Errorf("window %d: hover = %q, want it to mention Greeting", i, h)
		}
	}
	hint := e.onlyHint()
	if got := children(hint.Host.PID, "gopls"); len(got) != 1 {
		t.Fatalf("want exactly one gopls child of host %d, got %v", hint.Host.PID, got)
	}
	backend := hint.Backend
	socket := filepath.Join(e.runtime, hint.Name+"."+strconv.Itoa(hint.Host.PID)+".sock")
	if runtime.GOOS == "linux" {
		if tcp := proctest.ListeningTCP(backend.PID); len(tcp) > 0 {
			t.Errorf("gopls (pid %d) listens on TCP %v, want only its unix socket", backend.PID, tcp)
		}
		if unix := proctest.ListeningUnix(backend.PID); len(unix) != 1 || unix[0] != socket {
			t.Errorf("gopls (pid %d) listens on unix sockets %v, want [%s]", backend.PID, unix, socket)
		}
	}

	r.rudeExitLeavesGopls(ctx, t, backend, clients[0])

	for i, c := range clients {
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("window %d: %v", i, err)
		}
		c.Close()
		if code := procs[i].wait(t, 10*time.Second); code != 0 {
			t.Errorf("window %d: proxy exit code %d; stderr: %s", i, code, procs[i].stderr.String())
		}
	}
	proctest.WaitGone(t, backend, 2*time.Second, "gopls")
	proctest.WaitGone(t, hint.Host, 2*time.Second, "host")
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s left behind: %v", socket, err)
	}
}

// TestKillProxyMidRequest: kill -9 of one proxy mid-request leaves the other
// working; the kernel count drops; when the last leaves, the backend stops.
// In tcp mode the proxy relays; in mux mode it has handed its stdin and
// stdout to the host, which must notice the proxy's death on its own.
func TestKillProxyMidRequest(t *testing.T) {
	for _, mode := range []string{"tcp", "mux"} {
		t.Run(mode, func(t *testing.T) { testKillProxyMidRequest(t, mode) })
	}
}

func testKillProxyMidRequest(t *testing.T, mode string) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file := filepath.Join(ws, "a.txt")
	uri := lspclient.FileURI(file)
	server := sampleServer(mode)
	if mode == "mux" {
		server = sampleServer(mode, "--log-level=debug") // the handoff is logged at debug
	}
	var clients []*lspclient.Client
	var procs []*proc
	for i := 0; i < 2; i++ {
		p := e.start(ws, nil, server...)
		c := p.client(ctx)
		if _, err := c.Initialize(ctx, ws); err != nil {
			t.Fatalf("window %d: %v; stderr: %s", i, err, p.stderr.String())
		}
		c.DidOpen(ctx, uri, "text", "hello TODO\n")
		if _, err := c.WaitDiagnostics(ctx, uri, nil); err != nil {
			t.Fatal(err)
		}
		clients, procs = append(clients, c), append(procs, p)
	}
	if mode == "mux" && !strings.Contains(procs[0].stderr.String(), "handed stdin and stdout to the host") {
		t.Fatalf("mux mode on Linux pipes: the proxy did not hand off its descriptors: %s", procs[0].stderr.String())
	}
	if mode == "mux" {
		for _, p := range procs {
			waitSignalHandlers(t, p.cmd.Process.Pid) // the count below then proves SEM_UNDO survived the exec
		}
	}
	hint := e.onlyHint()
	backend := hint.Backend
	if mode == "mux" {
		backend = muxBackend(t, hint)
	}
	counter, err := refcount.Open(hint.Name, hint.Key, refcount.Options{Dir: e.privDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	if n, _ := counter.Count(); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	// A request in flight, then kill -9.
	go clients[0].Hover(ctx, uri, 0, 1)
	procs[0].cmd.Process.Kill()
	procs[0].wait(t, 5*time.Second)
	waitCount(t, counter, 1, time.Second)
	if mode == "mux" {
		// The host closed the dead proxy's client: one client left.
		t.Setenv("PROCREF_RUNTIME_DIR", e.runtime)
		// Polling the host's status: no event to wait for.
		proctest.WaitFor(t, 2*time.Second, "one backend with one client in the status after kill -9", func() error {
			rows, _, err := collectStatus(ctx)
			if err == nil && len(rows) == 1 && rows[0].Clients == 1 {
				return nil
			}
			return fmt.Errorf("status %+v, %v", rows, err)
		})
	}
	for i := 0; i < 3; i++ {
		h, err := clients[1].Hover(ctx, uri, 0, 1)
		if err != nil || !strings.Contains(h, "hello") {
			t.Fatalf("surviving window: hover = %q, %v", h, err)
		}
	}
	clients[1].Shutdown(ctx)
	clients[1].Close()
	if code := procs[1].wait(t, 10*time.Second); code != 0 {
		t.Errorf("proxy exit %d", code)
	}
	proctest.WaitGone(t, backend, 2*time.Second, "backend")
	proctest.WaitGone(t, hint.Host, 2*time.Second, "host")
}

// waitCount is proctest.WaitCount on a service's counter, where a removed
// set counts 0: the host removes it once the count is zero.
func waitCount(t *testing.T, c *refcount.Counter, want int, timeout time.Duration) {
	t.Helper()
	proctest.WaitCount(t, timeout, want, func() (int, error) {
		n, err := c.Count()
		if errors.Is(err, refcount.ErrRemoved) {
			return 0, nil
		}
		return n, err
	})
}

// TestGenericBridge: tcp mode is protocol-agnostic. Three proxies with
// --share=global (nothing peeked) share a non-LSP echo service; every byte,
// binary included, goes through unchanged both ways.
func TestGenericBridge(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helperEnv := []string{"GO_WANT_HELPER_PROCESS=echo"}
	var procs []*proc
	for i := 0; i < 3; i++ {
		procs = append(procs, e.start(ws, helperEnv, "--share=global", "--", self, "--listen=127.0.0.1:{port}"))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 3)
	for i, p := range procs {
		payload := make([]byte, 256<<10)
		rand.Read(payload)
		payload = append(payload, []byte("\r\nline one\nline two\x00\xff\n")...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() {
				p.stdin.Write(payload)
			}()
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(p.stdout, got); err != nil {
				errs <- err.Error() + ": " + p.stderr.String()
				return
			}
			if !bytes.Equal(got, payload) {
				errs <- "proxy " + string(rune('0'+i)) + ": bytes changed in transit"
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("echo through the proxies timed out")
	}
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	hint := e.onlyHint()
	for _, p := range procs {
		p.stdin.Close()
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("proxy exit %d: %s", code, p.stderr.String())
		}
	}
	proctest.WaitGone(t, hint.Backend, 2*time.Second, "echo backend")
	proctest.WaitGone(t, hint.Host, 2*time.Second, "host")
}

// TestHostKilled: the host is kill -9ed → its backend dies with it, the
// proxies exit non-zero with one line on stderr, and a new proxy starts
// fresh.
func TestHostKilled(t *testing.T) {
	for _, mode := range []string{"tcp", "mux"} {
		t.Run(mode, func(t *testing.T) { testHostKilled(t, mode) })
	}
}

// testHostKilled: the host is killed -9; the proxy (in mux mode, the
// waiter it became) says why on stderr and exits 1; a new window starts a
// new host.
func testHostKilled(t *testing.T, mode string) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server := sampleServer(mode)
	p := e.start(ws, nil, server...)
	c := p.client(ctx)
	if _, err := c.Initialize(ctx, ws); err != nil {
		t.Fatal(err)
	}
	hint := e.onlyHint()
	backend := hint.Backend
	if mode == "mux" {
		waitSignalHandlers(t, p.cmd.Process.Pid)
		backend = muxBackend(t, hint)
	}
	hint.Host.Kill()
	proctest.WaitGone(t, backend, time.Second, "backend after host kill -9")
	if code := p.wait(t, 5*time.Second); code != 1 {
		t.Errorf("proxy exit code %d, want 1", code)
	}
	if !p.stderrHas("closed the connection") {
		t.Errorf("proxy stderr lacks the explanation: %q", p.stderr.String())
	}
	// The dead host's sockets are still there (its host socket, and its
	// handoff socket or its backend's {socket})...
	dead, _ := filepath.Glob(filepath.Join(e.runtime, hint.Name+"."+strconv.Itoa(hint.Host.PID)+".*sock"))
	if len(dead) != 2 {
		t.Errorf("sockets of the killed host: %v, want its host socket and one more", dead)
	}
	p2 := e.start(ws, nil, server...)
	c2 := p2.client(ctx)
	if _, err := c2.Initialize(ctx, ws); err != nil {
		t.Fatalf("fresh start after host kill: %v; stderr %s", err, p2.stderr.String())
	}
	h2 := e.onlyHint()
	if h2.Host == hint.Host {
		t.Fatal("the dead host's hint was reused")
	}
	c2.Shutdown(ctx)
	c2.Close()
	p2.wait(t, 10*time.Second)
	proctest.WaitGone(t, h2.Host, 2*time.Second, "host")
	// ...and once the next host of the service has come and gone, none is
	// left (issue 22 item 6).
	if left, _ := filepath.Glob(filepath.Join(e.runtime, "*sock")); len(left) > 0 {
		t.Errorf("socket files left after the next host came and went: %v", left)
	}
}

// TestSignalsDetach: SIGTERM, SIGINT and SIGHUP make a proxy detach cleanly
// and exit 0; the reference count drops each time; the last one out stops
// the backend.
func TestSignalsDetach(t *testing.T) {
	for _, mode := range []string{"tcp", "mux"} {
		t.Run(mode, func(t *testing.T) { testSignalsDetach(t, mode) })
	}
}

// testSignalsDetach: in mux mode the signals reach the proxy waiting for
// the host's "bye" after the handoff, which must behave the same.
func testSignalsDetach(t *testing.T, mode string) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server := sampleServer(mode)
	sigs := []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}
	var procs []*proc
	for range sigs {
		p := e.start(ws, nil, server...)
		if _, err := p.client(ctx).Initialize(ctx, ws); err != nil {
			t.Fatal(err)
		}
		waitSignalHandlers(t, p.cmd.Process.Pid)
		procs = append(procs, p)
	}
	hint := e.onlyHint()
	if mode == "mux" {
		hint.Backend = muxBackend(t, hint)
	}
	counter, err := refcount.Open(hint.Name, hint.Key, refcount.Options{Dir: e.privDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	waitCount(t, counter, 3, time.Second)
	for i, sig := range sigs {
		procs[i].cmd.Process.Signal(sig)
		if code := procs[i].wait(t, 5*time.Second); code != 0 {
			t.Errorf("%v: exit code %d, want 0; stderr %s", sig, code, procs[i].stderr.String())
		}
		waitCount(t, counter, 2-i, time.Second)
	}
	proctest.WaitGone(t, hint.Backend, 2*time.Second, "backend")
	proctest.WaitGone(t, hint.Host, 2*time.Second, "host")
}

// TestMuxWindowLeavesBeforeInitialize: in mux mode the host starts the
// server ahead of the first initialize; a window that attaches (with
// --share=global only the framing is read before attaching: the first
// byte of a Content-Length header) and closes its end before its
// initialize is complete leaves neither that server nor the host behind.
func TestMuxWindowLeavesBeforeInitialize(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	p := e.start(ws, nil, "--share=global", "--log-level=debug", "--", procrefBin, "sample-server")
	io.WriteString(p.stdin, "Content-Length: ")
	// Wait until the host has started the server (it is the host's child).
	var hint *discovery.Hint
	var server []int
	// No event for another process's child.
	proctest.WaitFor(t, 10*time.Second, "a server started ahead of initialize", func() error {
		if names, _ := discovery.List(e.privDir()); len(names) == 1 {
			hint, _ = discovery.Read(e.privDir(), names[0])
			if hint != nil {
				server = children(hint.Host.PID, "procref")
			}
		}
		if len(server) == 0 {
			return fmt.Errorf("none yet; proxy stderr: %s", p.stderr.String())
		}
		return nil
	})
	id, err := platform.Lookup(server[0])
	if err != nil {
		t.Fatal(err)
	}
	p.stdin.Close()
	// It ended mid-message: the proxy says so and exits 1.
	if code := p.wait(t, 10*time.Second); code != 1 || !strings.Contains(p.stderr.String(), "unexpected EOF") {
		t.Errorf("proxy exit %d, want 1 with the reason: %s", code, p.stderr.String())
	}
	proctest.WaitGone(t, id, 5*time.Second, "server started ahead of initialize")
	proctest.WaitGone(t, hint.Host, 5*time.Second, "host")
}

// TestGoplsGlobalRudeExit: with --share=global (only the framing read before
// attaching) the proxy still keeps a window's exit without shutdown from
// the shared gopls: the other window keeps working.
func TestGoplsGlobalRudeExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := newGoplsRig(ctx, t, 1, "-listen=127.0.0.1:{port}", "--share=global")
	p1, c1 := r.procs[0], r.clients[0]
	backend := r.e.onlyHint().Backend
	r.rudeExitLeavesGopls(ctx, t, backend, c1)
	c1.Shutdown(ctx)
	c1.Close()
	p1.wait(t, 10*time.Second)
	proctest.WaitGone(t, backend, 2*time.Second, "gopls")
}

// goplsRig is what the gopls tests share: a workspace copied from
// testdata/gomod, the proxy arguments that run gopls on it, and the
// windows opened so far.
type goplsRig struct {
	e       *env
	ws, uri string // the workspace and its main.go
	text    string // main.go
	args    []string
	procs   []*proc
	clients []*lspclient.Client
}

// newGoplsRig skips (or fails, with PROCREF_REQUIRE_SERVERS=1) without
// gopls, and opens windows windows running the proxy with flags and
// `-- gopls serve listen`, each initialized and with main.go open.
func newGoplsRig(ctx context.Context, t *testing.T, windows int, listen string, flags ...string) *goplsRig {
	t.Helper()
	gopls := requireServer(t, "gopls")
	r := &goplsRig{e: newEnv(t), ws: t.TempDir()}
	proctest.CopyTree(t, "../../testdata/gomod", r.ws)
	mainGo := filepath.Join(r.ws, "main.go")
	text, err := os.ReadFile(mainGo)
	if err != nil {
		t.Fatal(err)
	}
	r.uri, r.text = lspclient.FileURI(mainGo), string(text)
	r.args = append(append(append([]string{}, flags...), "--", gopls, "serve"), listen)
	for i := 0; i < windows; i++ {
		p, c := r.start(ctx, t, fmt.Sprintf("window %d", i))
		if err := c.DidOpen(ctx, r.uri, "go", r.text); err != nil {
			t.Fatal(err)
		}
		r.procs, r.clients = append(r.procs, p), append(r.clients, c)
	}
	return r
}

// start starts one more proxy on the rig's workspace and initializes it;
// name is for the failure message.
func (r *goplsRig) start(ctx context.Context, t *testing.T, name string) (*proc, *lspclient.Client) {
	t.Helper()
	p := r.e.start(r.ws, []string{"GOFLAGS=-mod=mod"}, r.args...)
	c := p.client(ctx)
	if _, err := c.Initialize(ctx, r.ws); err != nil {
		t.Fatalf("%s: %v; stderr: %s", name, err, p.stderr.String())
	}
	return p, c
}

// rudeExitLeavesGopls starts one more window on the rig; it sends exit
// without shutdown (which makes gopls end its whole process). The proxy
// must exit 0, the shared gopls (backend) live on, and the window other
// still get its hover on main.go.
func (r *goplsRig) rudeExitLeavesGopls(ctx context.Context, t *testing.T, backend platform.Identity, other *lspclient.Client) {
	t.Helper()
	uri := r.uri
	p, c := r.start(ctx, t, "rude window")
	if err := c.Notify(ctx, "exit", nil); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("rude window (exit without shutdown): proxy exit code %d; stderr: %s", code, p.stderr.String())
	}
	c.Close()
	if !backend.Alive() {
		t.Fatal("one window's exit without shutdown ended the shared gopls")
	}
	if h, err := other.Hover(ctx, uri, 5, 6); err != nil || !strings.Contains(h, "Greeting") {
		t.Fatalf("other window after the rude window's exit: hover %q, %v", h, err)
	}
}

// waitSignalHandlers waits (bounded) until the proxy pid has its signal handlers
// installed (they are installed off the attach path).
func waitSignalHandlers(t *testing.T, pid int) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	// rt_sigaction: no event to wait for.
	proctest.Eventually(t, 5*time.Second, fmt.Sprintf("proxy %d to install its signal handlers", pid), func() bool {
		return proctest.CaughtSignals(pid)&proctest.ProxySignals == proctest.ProxySignals
	})
}

// sampleServer is the proxy's arguments (flags, then the command) for the
// sample server in mode "tcp" (it listens on the {socket} the host names) or "mux"
// (stdio, behind the multiplexer).
func sampleServer(mode string, flags ...string) []string {
	args := append(append([]string{}, flags...), "--", procrefBin, "sample-server")
	if mode == "tcp" {
		args = append(args, "--listen=unix;{socket}")
	}
	return args
}

// muxBackend returns the identity of the one server a mux-mode host runs
// (the sample server: a procref child of the host).
func muxBackend(t *testing.T, hint *discovery.Hint) platform.Identity {
	t.Helper()
	kids := children(hint.Host.PID, "procref")
	if len(kids) != 1 {
		t.Fatalf("host %d has backend children %v, want one", hint.Host.PID, kids)
	}
	id, _ := platform.Lookup(kids[0])
	return id
}
