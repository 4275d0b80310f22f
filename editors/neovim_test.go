//go:build linux

package editors

import (
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/platform"
)

// serverCase is one language server exercised through an editor snippet.
type serverCase struct {
	server    string // executable, also the client name in the snippets
	pkg       string // what provides it
	mode      string // procref mode the snippet's command selects
	fixture   string // testdata/<fixture>
	file      string // the file the editors open
	hover     string // "line,col" (0-based) of a symbol to hover over
	wantDiag  string // in the deliberate error's message
	wantHover string // in the hover text
}

var (
	pylspCase = serverCase{
		server: "pylsp", pkg: "python3-pylsp", mode: "mux",
		fixture: "editors-python", file: "fixture.py", hover: "3,4",
		wantDiag: "undefined name 'undefined_name'", wantHover: "greeting",
	}
	clangdCase = serverCase{
		server: "clangd", pkg: "clangd", mode: "mux",
		fixture: "editors-c", file: "fixture.c", hover: "4,19",
		wantDiag: "undeclared_name", wantHover: "greeting",
	}
	goplsCase = serverCase{
		server: "gopls", pkg: "gopls (go install golang.org/x/tools/gopls@latest)", mode: "tcp",
		fixture: "editors-go", file: "fixture.go", hover: "6,5",
		wantDiag: "cannot use", wantHover: "Greeting",
	}
)

// requireServer finds sc's server (and for pylsp, pyflakes).
func requireServer(t *testing.T, sc serverCase) string {
	t.Helper()
	p := requireTool(t, sc.server, sc.pkg)
	if sc.server == "pylsp" {
		requirePyflakes(t, p)
	}
	return p
}

// neovim is one headless Neovim loaded with editors/neovim-0.7.lua and the
// event harness, listening for remote commands on sock.
type neovim struct {
	*started
	e      *testEnv
	bin    string
	name   string
	sock   string
	file   string
	events *eventLog
}

// startNeovim runs `nvim --headless -u editors/neovim-0.7.lua FILE` in ws
// (the snippet file itself, not a copy), with the harness loaded first.
func (e *testEnv) startNeovim(t *testing.T, bin, name, ws string, sc serverCase) *neovim {
	t.Helper()
	snippet, err := filepath.Abs("neovim-0.7.lua")
	if err != nil {
		t.Fatal(err)
	}
	harness, err := filepath.Abs(filepath.Join("testdata", "nvim-harness.lua"))
	if err != nil {
		t.Fatal(err)
	}
	n := &neovim{
		e: e, bin: bin, name: name,
		sock:   filepath.Join(e.dir, name+".sock"),
		file:   filepath.Join(ws, sc.file),
		events: &eventLog{path: filepath.Join(e.dir, name+".events")},
	}
	c := e.cmd(ws, bin, "--headless", "-n", "-i", "NONE", "--listen", n.sock,
		"--cmd", "lua dofile(os.getenv('PROCREF_TEST_HARNESS'))",
		"-u", snippet, sc.file)
	c.Env = append(c.Env,
		"PROCREF_TEST_HARNESS="+harness,
		"PROCREF_TEST_EVENTS="+n.events.path,
		"PROCREF_TEST_HOVER="+sc.hover,
	)
	n.started = start(t, c)
	return n
}

// ready waits, from event index from on, for a client of sc.server to
// initialize, for diagnostics with the deliberate error, and for the hover
// the harness asks for after init. It returns the client id and the index
// of the init event.
func (n *neovim) ready(t *testing.T, sc serverCase, from int) (client, at int) {
	t.Helper()
	d := editorDeadline(t)
	at = n.events.waitFor(t, from, d, n.name+": "+sc.server+" client initialized", func(ev event) bool {
		return ev.Event == "init" && ev.Name == sc.server
	}, n.done)
	client = n.events.events[at].Client
	n.events.waitFor(t, at, d, n.name+": diagnostics with "+sc.wantDiag, func(ev event) bool {
		return ev.Event == "diagnostics" && ev.Client == client && ev.File == n.file && strings.Contains(ev.Text, sc.wantDiag)
	}, n.done)
	h := n.events.waitFor(t, at, d, n.name+": hover answer", func(ev event) bool {
		return ev.Event == "hover" && ev.Client == client
	}, n.done)
	if ev := n.events.events[h]; ev.Err != "" || !strings.Contains(ev.Text, sc.wantHover) {
		t.Fatalf("%s: hover = %q (error %q), want it to mention %q", n.name, ev.Text, ev.Err, sc.wantHover)
	}
	return client, at
}

// remote runs `nvim --server SOCK ARGS...` (--remote-send, --remote-expr)
// and returns its output.
func (n *neovim) remote(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, n.bin, append([]string{"--headless", "--server", n.sock}, args...)...)
	c.Env = n.e.vars
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: nvim %v: %v\n%s", n.name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// proxies returns the procref proxies this Neovim runs: its children named
// procref (IsProxy). (The host is below the first proxy too until that proxy exits:
// it is started detached, in its own session, but not double-forked.)
func (n *neovim) proxies() []int {
	var kids []int
	for _, p := range processes() {
		if p.PPID == n.cmd.Process.Pid && p.IsProxy() {
			kids = append(kids, p.PID)
		}
	}
	sort.Ints(kids)
	return kids
}

// quit sends :qa! and waits for Neovim to exit 0.
func (n *neovim) quit(t *testing.T) {
	t.Helper()
	n.remote(t, "--remote-send", `<C-\><C-N>:qa!<CR>`)
	if code := n.wait(t, 20*time.Second, n.name); code != 0 {
		t.Errorf("%s: nvim exit code %d; output:\n%s", n.name, code, tail(n.output.String(), 4000))
	}
}

// oneBackend checks that exactly one sc.server instance runs below the host
// and the editors, as a child of the host, and returns its identity.
func oneBackend(t *testing.T, sc serverCase, host platform.Identity, editors ...*neovim) platform.Identity {
	t.Helper()
	roots := []int{host.PID}
	for _, n := range editors {
		roots = append(roots, n.cmd.Process.Pid)
	}
	ps := descendants(roots...)
	pids := instances(ps, sc.server)
	if len(pids) != 1 {
		t.Fatalf("want exactly one %s process (not counting its own children) below host %d and the editors, got %v", sc.server, host.PID, pids)
	}
	for _, p := range ps {
		if p.PID == pids[0] && p.PPID != host.PID {
			t.Fatalf("%s pid %d is a child of %d, want the host %d", sc.server, p.PID, p.PPID, host.PID)
		}
	}
	return identities(t, pids)[0]
}

// twoNeovims is requirement 1 and 2 of the editors issue: two headless
// Neovims on the 0.7 snippet open the fixture through procref; both get
// the deliberate error's diagnostics and a hover; exactly one server
// process; quitting both leaves no server, no proxy and no host.
func twoNeovims(t *testing.T, sc serverCase) {
	nvim := requireTool(t, "nvim", "neovim")
	server := requireServer(t, sc)
	e := newTestEnv(t, filepath.Dir(server))
	ws := copyFixture(t, sc.fixture)

	a := e.startNeovim(t, nvim, "a", ws, sc)
	a.ready(t, sc, 0)
	// The second instance starts once the first is serving: it must find
	// and join the running backend, not start its own.
	b := e.startNeovim(t, nvim, "b", ws, sc)
	b.ready(t, sc, 0)

	host := e.onlyHost()
	if host.Mode != sc.mode {
		t.Errorf("backend mode = %q, want %q", host.Mode, sc.mode)
	}
	backend := oneBackend(t, sc, host.Host, a, b)
	var proxies []int
	for _, n := range []*neovim{a, b} {
		p := n.proxies()
		if len(p) != 1 {
			t.Fatalf("%s: want one procref proxy below nvim, got %v", n.name, p)
		}
		proxies = append(proxies, p...)
	}
	gone := append(identities(t, proxies), backend)

	a.quit(t)
	b.quit(t)
	e.waitNoHosts(gone, 15*time.Second)
}

func TestNeovim07Pylsp(t *testing.T)  { twoNeovims(t, pylspCase) }
func TestNeovim07Clangd(t *testing.T) { twoNeovims(t, clangdCase) }
func TestNeovim07Gopls(t *testing.T)  { twoNeovims(t, goplsCase) }

// TestNeovim07RestartKeepsOther is requirement 4: :LspRestart in one
// Neovim stops its client (its proxy exits 0) and starts a new one that
// works again, while the other instance keeps its client, its diagnostics
// and its hovers, and the shared pylsp is neither restarted nor duplicated.
func TestNeovim07RestartKeepsOther(t *testing.T) {
	sc := pylspCase
	nvim := requireTool(t, "nvim", "neovim")
	server := requireServer(t, sc)
	e := newTestEnv(t, filepath.Dir(server))
	ws := copyFixture(t, sc.fixture)
	d := editorDeadline(t)

	a := e.startNeovim(t, nvim, "a", ws, sc)
	oldA, _ := a.ready(t, sc, 0)
	b := e.startNeovim(t, nvim, "b", ws, sc)
	clientB, _ := b.ready(t, sc, 0)
	host := e.onlyHost()
	backend := oneBackend(t, sc, host.Host, a, b)
	proxyB := b.proxies()

	before := len(a.events.events)
	a.remote(t, "--remote-send", `<C-\><C-N>:LspRestart<CR>`)
	i := a.events.waitFor(t, before, d, "a: old client exited", func(ev event) bool {
		return ev.Event == "exit" && ev.Client == oldA
	}, a.done)
	if ev := a.events.events[i]; ev.Code != 0 || ev.Signal != 0 {
		t.Errorf("a: old proxy exited with code %d signal %d, want 0 (a detaching editor)", ev.Code, ev.Signal)
	}
	newA, _ := a.ready(t, sc, i)
	if newA == oldA {
		t.Fatalf("a: restart kept client %d", oldA)
	}

	// b: same client, same proxy, still answering, diagnostics kept.
	bFrom := len(b.events.events)
	if got := b.remote(t, "--remote-expr", "luaeval('ProcrefTestHover()')"); got != "1" {
		t.Fatalf("b: ProcrefTestHover() = %q, want 1 request (one live client with one buffer)", got)
	}
	h := b.events.waitFor(t, bFrom, d, "b: hover after a's restart", func(ev event) bool { return ev.Event == "hover" }, b.done)
	if ev := b.events.events[h]; ev.Client != clientB || ev.Err != "" || !strings.Contains(ev.Text, sc.wantHover) {
		t.Errorf("b: hover after a's restart = %s, want client %d mentioning %q", ev, clientB, sc.wantHover)
	}
	b.events.refresh()
	var lastDiag *event
	for k, ev := range b.events.events {
		if ev.Event == "exit" || (ev.Event == "init" && ev.Client != clientB) {
			t.Errorf("b: disturbed by a's restart: %s", ev)
		}
		if ev.Event == "diagnostics" && ev.Client == clientB {
			lastDiag = &b.events.events[k]
		}
	}
	if lastDiag == nil || !strings.Contains(lastDiag.Text, sc.wantDiag) {
		t.Errorf("b: diagnostics after a's restart = %v, want them to still hold %q", lastDiag, sc.wantDiag)
	}
	if p := b.proxies(); len(p) != 1 || p[0] != proxyB[0] {
		t.Errorf("b: proxies %v after a's restart, want the same one %v", p, proxyB)
	}
	if h := e.onlyHost(); h.Host != host.Host {
		t.Errorf("host changed from %v to %v", host.Host, h.Host)
	}
	if now := oneBackend(t, sc, host.Host, a, b); now != backend {
		t.Errorf("%s was restarted (%v, now %v); a's restart must not touch the shared server", sc.server, backend, now)
	}

	gone := append(identities(t, append(a.proxies(), proxyB...)), backend)
	a.quit(t)
	b.quit(t)
	e.waitNoHosts(gone, 15*time.Second)
}
