//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/lspclient"
	"github.com/procref/procref/internal/proctest"
)

// The other user's side of TestOtherUserCannotReachSocket: the test binary
// re-run as uid 65534 says what it could do, one "<what> <result>" line
// each.
func init() {
	if os.Getenv("GO_WANT_HELPER_PROCESS") != "probe" {
		return
	}
	say := func(what string, err error) {
		switch {
		case err == nil:
			fmt.Printf("%s UNEXPECTED: allowed\n", what)
		case errors.Is(err, os.ErrPermission):
			fmt.Printf("%s denied\n", what)
		default:
			fmt.Printf("%s UNEXPECTED: %v\n", what, err)
		}
	}
	fmt.Printf("uid %d\n", os.Getuid())
	for _, sock := range strings.Split(os.Getenv("PROBE_SOCKETS"), "\n") {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		say("socket "+filepath.Base(sock), err)
	}
	_, err := os.ReadFile(os.Getenv("PROBE_HINT"))
	say("hint", err)
	_, err = os.ReadDir(os.Getenv("PROBE_RUN"))
	say("list", err)
	// What the README says is not private: a {port} backend.
	if c, err := net.Dial("tcp", os.Getenv("PROBE_PORT")); err == nil {
		c.Close()
		fmt.Println("port reachable")
	} else {
		fmt.Printf("port not reachable: %v\n", err)
	}
	os.Exit(0)
}

// TestOtherUserCannotReachSocket: with the README's recipe ({socket}),
// another local user (uid 65534) can neither connect to the backend's
// socket nor read the hint (with the token) nor list the runtime dir. The
// runtime dir's parent is world-readable here, so the 0700 runtime dir
// alone is what keeps them out. A {port} backend, by contrast, is
// reachable: what the README and the warnings say.
func TestOtherUserCannotReachSocket(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a process as uid 65534")
	}
	e := newEnv(t)
	open := func(pattern string) string {
		d, err := os.MkdirTemp("", pattern)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	e.runtime = filepath.Join(open("procref-sec-"), "run")
	if err := os.Mkdir(e.runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	e.vars = append(e.vars, "PROCREF_RUNTIME_DIR="+e.runtime)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws := t.TempDir()
	p := e.start(ws, nil, sampleServer("tcp")...)
	c := p.client(ctx)
	if _, err := c.Initialize(ctx, ws); err != nil {
		t.Fatalf("%v; stderr: %s", err, p.stderr.String())
	}
	hint := e.onlyHint()
	socket := filepath.Join(e.runtime, hint.Name+"."+strconv.Itoa(hint.Host.PID)+".sock")
	pp := e.start(ws, nil, "--share=global", "--", procrefBin, "sample-server", "--listen=127.0.0.1:{port}")
	pc := pp.client(ctx)
	if _, err := pc.Initialize(ctx, ws); err != nil {
		t.Fatalf("{port} window: %v; stderr: %s", err, pp.stderr.String())
	}
	var portInfo struct{ Port int }
	names, err := discovery.List(e.privDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if h, err := discovery.Read(e.privDir(), n); err == nil && n != hint.Name {
			json.Unmarshal(h.Info, &portInfo)
		}
	}
	if portInfo.Port == 0 {
		t.Fatal("no {port} backend port in the hints")
	}
	if fi, err := os.Lstat(socket); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no backend socket at %s: %v", socket, err)
	}
	// A mux-mode window too: its host also has a handoff socket.
	mp := e.start(ws, nil, sampleServer("mux", "--share=global")...)
	mc := mp.client(ctx)
	if _, err := mc.Initialize(ctx, ws); err != nil {
		t.Fatalf("mux window: %v; stderr: %s", err, mp.stderr.String())
	}
	// Everything a host or a backend listens on, as the kernel lists it.
	var socks []string
	all, err := discovery.List(e.privDir())
	if err != nil || len(all) != 3 {
		t.Fatalf("hints %v, %v; want three", all, err)
	}
	for _, n := range all {
		h, err := discovery.Read(e.privDir(), n)
		if err != nil {
			t.Fatal(err)
		}
		if tcp := proctest.ListeningTCP(h.Host.PID); len(tcp) > 0 {
			t.Errorf("host %s listens on TCP %v; want only unix sockets", n, tcp)
		}
		socks = append(socks, proctest.ListeningUnix(h.Host.PID)...)
		if h.Backend.PID > 0 {
			socks = append(socks, proctest.ListeningUnix(h.Backend.PID)...)
		}
	}
	for _, want := range []string{".host.sock", ".fd.sock", filepath.Base(socket)} {
		if !slices.ContainsFunc(socks, func(s string) bool { return strings.HasSuffix(s, want) }) {
			t.Errorf("no listening socket *%s among %v", want, socks)
		}
	}

	_, bin := proctest.ForOtherUser(t, "procref.test")
	probe := exec.CommandContext(ctx, bin, "-test.run=^$")
	probe.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=probe",
		"PROBE_SOCKETS="+strings.Join(socks, "\n"), "PROBE_HINT="+discovery.Path(e.runtime, hint.Name), "PROBE_RUN="+e.runtime,
		"PROBE_PORT="+net.JoinHostPort("127.0.0.1", strconv.Itoa(portInfo.Port)))
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := probe.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	t.Logf("uid 65534:\n%s", out)
	wants := []string{"uid 65534\n", "hint denied\n", "list denied\n", "port reachable\n"}
	for _, s := range socks {
		wants = append(wants, "socket "+filepath.Base(s)+" denied\n")
	}
	for _, want := range wants {
		if !strings.Contains(string(out), want) {
			t.Errorf("probe output lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(string(out), "UNEXPECTED") {
		t.Error("the other user got further than it should")
	}
	// The windows still work.
	for i, w := range []struct {
		c *lspclient.Client
		p *proc
	}{{c, p}, {pc, pp}, {mc, mp}} {
		if err := w.c.Shutdown(ctx); err != nil {
			t.Fatalf("window %d: %v", i+1, err)
		}
		w.c.Close()
		if code := w.p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("window %d: proxy exit %d: %s", i+1, code, w.p.stderr.String())
		}
	}
}

// TestBadHandshakeFlood: 3000 connections with a wrong token grow the host
// log by at most 64 KiB (one summary line per interval, not a line each),
// and a new window attaches promptly right after the flood.
func TestBadHandshakeFlood(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws := t.TempDir()
	p1 := e.start(ws, nil, sampleServer("mux")...)
	c1 := p1.client(ctx)
	if _, err := c1.Initialize(ctx, ws); err != nil {
		t.Fatalf("%v; stderr: %s", err, p1.stderr.String())
	}
	hint := e.onlyHint()
	before, err := os.Stat(hint.Log)
	if err != nil {
		t.Fatal(err)
	}
	network, addr := hint.Endpoint()
	line := handshake.Protocol + " " + handshake.NewSecret() + " 1\n"
	const total, workers = 3000, 30
	var wg sync.WaitGroup
	var refused, other sync.Map
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < total/workers; i++ {
				conn, err := net.Dial(network, addr)
				if err != nil {
					other.Store(err.Error(), true)
					continue
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(conn, line)
				if n, _ := io.Copy(io.Discard, conn); n == 0 {
					refused.Store(w*total+i, true)
				}
				conn.Close()
			}
		}()
	}
	wg.Wait()
	flood := time.Since(start)
	n := 0
	refused.Range(func(any, any) bool { n++; return true })
	other.Range(func(k, _ any) bool { t.Errorf("dial: %v", k); return true })
	if n != total {
		t.Errorf("%d of %d bad handshakes were closed without a byte", n, total)
	}

	t0 := time.Now()
	p2 := e.start(ws, nil, sampleServer("mux")...)
	c2 := p2.client(ctx)
	if _, err := c2.Initialize(ctx, ws); err != nil {
		t.Fatalf("window after the flood: %v; stderr: %s", err, p2.stderr.String())
	}
	// How long this took is for the log (a loaded machine makes it seconds);
	// that the window got in at all is the point.
	t.Logf("3000 bad handshakes in %v; the next window initialized in %v", flood, time.Since(t0))

	// The refusals are logged as summaries at the end of each interval (more
	// than one if the flood outlasted an interval).
	proctest.WaitFor(t, handshake.SummaryInterval+5*time.Second, "the refusals' summaries in the host log", func() error {
		b, _ := os.ReadFile(hint.Log)
		if n := refusedInLog(string(b)); n < total {
			return fmt.Errorf("summaries count %d of %d refusals in the log:\n%s", n, total, b)
		}
		return nil
	})
	after, _ := os.Stat(hint.Log)
	growth := after.Size() - before.Size()
	t.Logf("host log grew by %d bytes", growth)
	if growth > 64<<10 {
		t.Errorf("host log grew by %d bytes for %d bad handshakes, want at most 64 KiB", growth, total)
	}
	for i, c := range []*lspclient.Client{c1, c2} {
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("window %d: %v", i+1, err)
		}
		c.Close()
	}
	p1.wait(t, 10*time.Second)
	p2.wait(t, 10*time.Second)
}

// refusedInLog adds up the refused= counts of the guard's summary lines.
func refusedInLog(log string) int {
	n := 0
	for _, f := range strings.Fields(log) {
		if v, ok := strings.CutPrefix(f, "refused="); ok {
			k, _ := strconv.Atoi(v)
			n += k
		}
	}
	return n
}

// TestHintRestored: the hint of a running host is deleted, overwritten with
// garbage, or replaced by a well-formed hint of another host (nonce and
// port): a new window attaches to the same host within 5 s, and the window
// already attached keeps working.
func TestHintRestored(t *testing.T) {
	for _, damage := range []string{"deleted", "corrupted", "forged"} {
		t.Run(damage, func(t *testing.T) {
			for _, mode := range []string{"mux", "tcp"} {
				t.Run(mode, func(t *testing.T) { testHintRestored(t, damage, mode) })
			}
		})
	}
}

func testHintRestored(t *testing.T, damage, mode string) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws := t.TempDir()
	doc := filepath.Join(ws, "a.txt")
	uri := lspclient.FileURI(doc)
	server := sampleServer(mode, "--share=global")
	p1 := e.start(ws, nil, server...)
	c1 := p1.client(ctx)
	if _, err := c1.Initialize(ctx, ws); err != nil {
		t.Fatalf("%v; stderr: %s", err, p1.stderr.String())
	}
	if err := c1.DidOpen(ctx, uri, "plaintext", "hello world\n"); err != nil {
		t.Fatal(err)
	}
	hint := e.onlyHint()
	path := discovery.Path(e.runtime, hint.Name)
	switch damage {
	case "deleted":
		err := os.Remove(path)
		if err != nil {
			t.Fatal(err)
		}
	case "corrupted":
		if err := os.WriteFile(path, []byte(`{"version": 1, "name": "garbage`), 0o600); err != nil {
			t.Fatal(err)
		}
	case "forged":
		forged := *hint
		forged.Nonce, forged.Port = handshake.NewSecret(), 1
		if err := discovery.Write(e.privDir(), &forged); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	p2 := e.start(ws, nil, server...)
	c2 := p2.client(ctx)
	if _, err := c2.Initialize(ctx, ws); err != nil {
		t.Fatalf("window after the hint was %s: %v; stderr: %s", damage, err, p2.stderr.String())
	}
	// The time is for the log; the same host below is the point.
	t.Logf("hint %s: the next window initialized in %v", damage, time.Since(t0))
	if h := e.onlyHint(); h.Host != hint.Host || h.Nonce != hint.Nonce {
		t.Errorf("hint now names host %v, want the running host %v", h.Host, hint.Host)
	}
	for i, c := range []*lspclient.Client{c1, c2} {
		if i == 1 {
			c.DidOpen(ctx, uri, "plaintext", "hello world\n")
		}
		if h, err := c.Hover(ctx, uri, 0, 1); err != nil || !strings.Contains(h, "hello") {
			t.Errorf("window %d after the hint was %s: hover %q, %v", i+1, damage, h, err)
		}
	}
	for i, c := range []*lspclient.Client{c1, c2} {
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("window %d: %v", i+1, err)
		}
		c.Close()
	}
	for i, p := range []*proc{p1, p2} {
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("window %d: exit %d; stderr: %s", i+1, code, p.stderr.String())
		}
	}
	proctest.WaitGone(t, hint.Host, 5*time.Second, "host")
}
