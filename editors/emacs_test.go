//go:build linux

package editors

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// emacs is one headless Emacs daemon loaded with editors/emacs-eglot.el and
// the event harness; emacsclient talks to it on sock.
type emacs struct {
	*started
	e      *testEnv
	client string // emacsclient
	name   string
	sock   string
	file   string
	events *eventLog
}

// startEmacs runs `emacs --fg-daemon=SOCK -l harness -l editors/emacs-eglot.el`
// (the snippet file itself, not a copy) in ws; the harness visits sc.file.
func (e *testEnv) startEmacs(t *testing.T, bin, client, name, ws string, sc serverCase) *emacs {
	t.Helper()
	snippet, err := filepath.Abs("emacs-eglot.el")
	if err != nil {
		t.Fatal(err)
	}
	harness, err := filepath.Abs(filepath.Join("testdata", "emacs-harness.el"))
	if err != nil {
		t.Fatal(err)
	}
	m := &emacs{
		e: e, client: client, name: name,
		sock:   filepath.Join(e.dir, name+".sock"),
		file:   filepath.Join(ws, sc.file),
		events: &eventLog{path: filepath.Join(e.dir, name+".events")},
	}
	c := e.cmd(ws, bin, "--fg-daemon="+m.sock, "-l", harness, "-l", snippet)
	c.Env = append(c.Env,
		"PROCREF_TEST_EVENTS="+m.events.path,
		"PROCREF_TEST_FILE="+m.file,
		"PROCREF_TEST_HOVER="+sc.hover,
	)
	m.started = start(t, c)
	return m
}

// ready waits for eglot to manage the file through a proxy, for the
// deliberate error's diagnostics and for the harness's hover. It returns
// the proxy's pid.
func (m *emacs) ready(t *testing.T, sc serverCase) int {
	t.Helper()
	d := editorDeadline(t)
	fail := func(ev event) bool { return ev.Event == "error" }
	at := m.events.waitFor(t, 0, d, m.name+": eglot managing the file", func(ev event) bool {
		return (ev.Event == "init" && ev.Name == sc.server) || fail(ev)
	}, m.done)
	if ev := m.events.events[at]; fail(ev) {
		t.Fatalf("%s: harness: %s", m.name, ev.Text)
	}
	proxy := m.events.events[at].Client
	m.events.waitFor(t, at, d, m.name+": diagnostics with "+sc.wantDiag, func(ev event) bool {
		return ev.Event == "diagnostics" && ev.File == m.file && strings.Contains(ev.Text, sc.wantDiag)
	}, m.done)
	h := m.events.waitFor(t, at, d, m.name+": hover answer", func(ev event) bool {
		return ev.Event == "hover" && ev.Client == proxy
	}, m.done)
	if ev := m.events.events[h]; ev.Err != "" || !strings.Contains(ev.Text, sc.wantHover) {
		t.Fatalf("%s: hover = %q (error %q), want it to mention %q", m.name, ev.Text, ev.Err, sc.wantHover)
	}
	return proxy
}

// eval runs `emacsclient -s SOCK --eval EXPR` and returns its output.
func (m *emacs) eval(t *testing.T, expr string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, m.client, "-s", m.sock, "--eval", expr)
	c.Env = m.e.vars
	out, err := c.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// quit ends Emacs as C-x C-c would (kill-emacs: Emacs sends SIGHUP to its
// subprocesses, the proxies, on the way out) and waits for exit 0.
func (m *emacs) quit(t *testing.T) {
	t.Helper()
	// The connection ends with Emacs, so emacsclient's own status says
	// nothing; Emacs's exit code does.
	m.eval(t, "(kill-emacs 0)")
	if code := m.wait(t, 20*time.Second, m.name); code != 0 {
		t.Errorf("%s: emacs exit code %d; output:\n%s", m.name, code, tail(m.output.String(), 4000))
	}
}

// requireEglot skips (or fails) the test if emacs cannot load eglot.
func requireEglot(t *testing.T, e *testEnv, emacs string) {
	t.Helper()
	if out, err := e.cmd(e.dir, emacs, "--batch", "--eval", "(require 'eglot)").CombinedOutput(); err != nil {
		missing(t, "emacs cannot load eglot (install elpa-eglot, or use Emacs 29+): %v\n%s", err, tail(string(out), 1000))
	}
}

// TestEmacsEglotPylsp is requirement 3 of the editors issue: two headless
// Emacs daemons with the eglot snippet open the Python fixture through
// `procref -- pylsp`: both get the deliberate error's diagnostics and a
// hover; exactly one pylsp; quitting both leaves no pylsp, no proxy and no
// host.
func TestEmacsEglotPylsp(t *testing.T) {
	sc := pylspCase
	bin := requireTool(t, "emacs", "emacs-nox")
	client := requireTool(t, "emacsclient", "emacs-bin-common")
	server := requireServer(t, sc)
	e := newTestEnv(t, filepath.Dir(server))
	requireEglot(t, e, bin)
	ws := copyFixture(t, sc.fixture)

	t0 := time.Now()
	a := e.startEmacs(t, bin, client, "emacs-a", ws, sc)
	proxyA := a.ready(t, sc)
	t.Logf("emacs-a ready after %v", time.Since(t0).Round(time.Millisecond))
	b := e.startEmacs(t, bin, client, "emacs-b", ws, sc)
	proxyB := b.ready(t, sc)
	t.Logf("emacs-b ready after %v", time.Since(t0).Round(time.Millisecond))

	host := e.onlyHost()
	if host.Mode != sc.mode {
		t.Errorf("backend mode = %q, want %q", host.Mode, sc.mode)
	}
	roots := []int{host.Host.PID, a.cmd.Process.Pid, b.cmd.Process.Pid}
	ps := descendants(roots...)
	pids := instances(ps, sc.server)
	if len(pids) != 1 {
		t.Fatalf("want exactly one %s process below host %d and the editors, got %v", sc.server, host.Host.PID, pids)
	}
	for _, p := range ps {
		if p.PID == pids[0] && p.PPID != host.Host.PID {
			t.Fatalf("%s pid %d is a child of %d, want the host %d", sc.server, p.PID, p.PPID, host.Host.PID)
		}
	}
	gone := identities(t, []int{pids[0], proxyA, proxyB})

	// One more hover from a after b joined: a's session is undisturbed.
	from := len(a.events.events)
	if out, err := a.eval(t, "(procref-test-hover-all)"); err != nil || out != "1" {
		t.Fatalf("emacs-a: (procref-test-hover-all) = %q, %v; want 1", out, err)
	}
	h := a.events.waitFor(t, from, editorDeadline(t), "emacs-a: second hover", func(ev event) bool { return ev.Event == "hover" }, a.done)
	if ev := a.events.events[h]; ev.Err != "" || !strings.Contains(ev.Text, sc.wantHover) {
		t.Errorf("emacs-a: second hover = %s, want it to mention %q", ev, sc.wantHover)
	}

	a.quit(t)
	b.quit(t)
	t.Logf("both quit after %v", time.Since(t0).Round(time.Millisecond))
	e.waitNoHosts(gone, 15*time.Second)
	t.Logf("all gone after %v", time.Since(t0).Round(time.Millisecond))
}

// TestNeovimAndEmacsShare: a Neovim on the 0.7 snippet and an Emacs on the
// eglot snippet, in the same project, share one pylsp: both get the
// diagnostics and a hover, one host, one pylsp; quitting both leaves
// nothing.
func TestNeovimAndEmacsShare(t *testing.T) {
	startNeovimAndEmacs(t, pylspCase).quit(t)
}
