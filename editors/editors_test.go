//go:build linux

package editors

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
	"go.uber.org/goleak"
)

// raceEnabled is set by race_test.go when the tests run with -race; the
// procref binary the editors run is then built with -race too.
var raceEnabled bool

// binDir holds the procref binary built for these tests; it goes first on
// the editors' $PATH.
var binDir string

// goEnv are the real Go caches (GOCACHE, GOMODCACHE, GOPATH): the editors
// get an isolated HOME, and go list would otherwise start cold. GOPLSCACHE
// is one gopls file cache for all tests of this run (not the user's): the
// first gopls test fills it, later ones skip re-checking the standard
// library.
var goEnv []string

// TestMain builds the procref binary once. The editors must run the real
// binary: the proxy re-executes itself as the host.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "procref-editors-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if _, err := proctest.BuildProcref(dir, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goEnv = append(goEnv, "GOPLSCACHE="+filepath.Join(dir, "gopls-cache"))
	if out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output(); err == nil {
		vals := strings.Split(strings.TrimSpace(string(out)), "\n")
		for i, name := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
			if i < len(vals) && vals[i] != "" {
				goEnv = append(goEnv, name+"="+vals[i])
			}
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireServersEnv makes a missing editor or server a failure instead of a
// skip (CI sets it).
const requireServersEnv = "PROCREF_REQUIRE_SERVERS"

// requireTool returns the path of an editor or language server, looking on
// $PATH and in $(go env GOPATH)/bin. If it is missing the test is skipped
// with the reason, or fails under PROCREF_REQUIRE_SERVERS=1.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, kv := range goEnv {
		if gp, ok := strings.CutPrefix(kv, "GOPATH="); ok {
			p := filepath.Join(strings.Split(gp, string(os.PathListSeparator))[0], "bin", name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
	}
	missing(t, "%s not found on $PATH or in $(go env GOPATH)/bin (install %s)", name, pkg)
	return ""
}

// missing skips (or, under PROCREF_REQUIRE_SERVERS=1, fails) the test.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireServersEnv) == "1" {
		t.Fatalf("%s, and %s=1", msg, requireServersEnv)
	}
	t.Skipf("%s (set %s=1 to fail instead)", msg, requireServersEnv)
}

// requirePyflakes checks that the interpreter pylsp runs under can import
// pyflakes: without it pylsp reports no errors at all.
func requirePyflakes(t *testing.T, pylsp string) {
	t.Helper()
	interp := "python3"
	if f, err := os.Open(pylsp); err == nil {
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if fields := strings.Fields(strings.TrimPrefix(line, "#!")); strings.HasPrefix(line, "#!") && len(fields) > 0 {
			interp = fields[0]
			if filepath.Base(interp) == "env" && len(fields) > 1 {
				interp = fields[1]
			}
		}
	}
	if out, err := exec.Command(interp, "-c", "import pyflakes").CombinedOutput(); err != nil {
		missing(t, "pylsp's interpreter %s cannot import pyflakes (install python3-pyflakes): %v %s", interp, err, out)
	}
}

// testEnv is one test's isolated world: procref's runtime and state dirs,
// HOME and XDG dirs, and a $PATH that starts with the procref under test.
type testEnv struct {
	t       *testing.T
	dir     string
	runtime string
	state   string
	home    string
	vars    []string

	mu    sync.Mutex
	hosts map[string]platform.Identity // every host seen, by service name
}

// privDir is this test process's checked handle on the env's runtime dir
// (created if missing; shared and never closed, see
// launcher.Service.PrivateDir). It panics if the dir fails its check.
func (e *testEnv) privDir() *platform.PrivateDir {
	d, err := (&launcher.Service{Dir: e.runtime}).PrivateDir()
	if err != nil {
		panic(err)
	}
	return d
}

// newTestEnv creates the dirs and registers the cleanup that kills every
// host (and its backend) by identity.
func newTestEnv(t *testing.T, pathDirs ...string) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), hosts: map[string]platform.Identity{}}
	e.runtime = filepath.Join(e.dir, "run")
	e.state = filepath.Join(e.dir, "state")
	e.home = filepath.Join(e.dir, "home")
	xdgRuntime := filepath.Join(e.dir, "xdg-run")
	for _, d := range []string{e.runtime, e.state, e.home, xdgRuntime} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "HOME", name == "PATH", strings.HasPrefix(name, "XDG_"), strings.HasPrefix(name, "PROCREF_"),
			name == "NVIM", name == "NVIM_LISTEN_ADDRESS", name == "VIMINIT", name == "MYVIMRC", name == "EMACSLOADPATH":
			continue
		}
		e.vars = append(e.vars, kv)
	}
	path := append([]string{binDir}, pathDirs...)
	path = append(path, os.Getenv("PATH"))
	e.vars = append(e.vars, goEnv...)
	e.vars = append(e.vars,
		"PATH="+strings.Join(path, string(os.PathListSeparator)),
		"HOME="+e.home,
		"XDG_CONFIG_HOME="+filepath.Join(e.home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(e.home, ".local", "share"),
		"XDG_STATE_HOME="+filepath.Join(e.home, ".local", "state"),
		"XDG_CACHE_HOME="+filepath.Join(e.home, ".cache"),
		"XDG_RUNTIME_DIR="+xdgRuntime,
		"PROCREF_RUNTIME_DIR="+e.runtime,
		"PROCREF_STATE_DIR="+e.state,
		"GOTOOLCHAIN=local",
		"GOFLAGS=-mod=mod",
	)
	t.Cleanup(e.cleanup)
	return e
}

// cleanup kills every host left in this env, and every process below it,
// by identity; on failure it logs the host logs.
func (e *testEnv) cleanup() {
	e.observeHosts()
	e.mu.Lock()
	ids := make([]platform.Identity, 0, len(e.hosts))
	for _, id := range e.hosts {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		if !id.Alive() {
			continue
		}
		below := descendantIdentities(id.PID)
		id.Kill()
		for _, d := range below {
			d.Kill()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		id.Wait(ctx)
		for _, d := range below {
			d.Wait(ctx)
		}
		cancel()
	}
	if e.t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(e.state, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			e.t.Logf("host log %s:\n%s", l, tail(string(b), 6000))
		}
	}
}

// observeHosts records the hosts of every hint file now in the runtime dir.
func (e *testEnv) observeHosts() []*discovery.Hint {
	names, _ := discovery.List(e.privDir())
	var hints []*discovery.Hint
	for _, n := range names {
		h, err := discovery.Read(e.privDir(), n)
		if err != nil {
			continue
		}
		hints = append(hints, h)
		e.mu.Lock()
		e.hosts[h.Name] = h.Host
		e.mu.Unlock()
	}
	return hints
}

// onlyHost returns the one host in the runtime dir, failing if there is not
// exactly one.
func (e *testEnv) onlyHost() *discovery.Hint {
	e.t.Helper()
	hints := e.observeHosts()
	if len(hints) != 1 {
		var names []string
		for _, h := range hints {
			names = append(names, h.Name)
		}
		e.t.Fatalf("want exactly one shared backend, got %d: %v", len(hints), names)
	}
	return hints[0]
}

// waitNoHosts waits until every host seen in this env and its backend
// processes are gone and no hint file is left.
func (e *testEnv) waitNoHosts(backends []platform.Identity, timeout time.Duration) {
	e.t.Helper()
	e.observeHosts()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	e.mu.Lock()
	hosts := make(map[string]platform.Identity, len(e.hosts))
	for k, v := range e.hosts {
		hosts[k] = v
	}
	e.mu.Unlock()
	for _, id := range backends {
		if err := id.Wait(ctx); err != nil {
			e.t.Errorf("backend %v still running %v after the last editor quit", id, timeout)
		}
	}
	for name, id := range hosts {
		if err := id.Wait(ctx); err != nil {
			e.t.Errorf("host %s (%v) still running %v after the last editor quit", name, id, timeout)
		}
	}
	if names, _ := discovery.List(e.privDir()); len(names) > 0 {
		e.t.Errorf("hint files left after the last editor quit: %v", names)
	}
}

// cmd returns a command for the env, in dir.
func (e *testEnv) cmd(dir, name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = append([]string{}, e.vars...)
	c.Dir = dir
	return c
}

// copyFixture copies testdata/<name>/ into a new workspace directory and
// returns its path.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "testdata", name)
	dst := filepath.Join(t.TempDir(), "ws")
	proctest.CopyTree(t, src, dst)
	return dst
}

// started is a process a test started: killed (with everything below it)
// and waited for at cleanup.
type started struct {
	cmd    *exec.Cmd
	output *proctest.SyncBuffer
	done   chan struct{}
}

// start starts c with stderr, and stdout unless the caller took a pipe for
// it, captured; stdin is /dev/null unless the caller set it.
func start(t *testing.T, c *exec.Cmd) *started {
	t.Helper()
	s := &started{cmd: c, output: &proctest.SyncBuffer{}, done: make(chan struct{})}
	if c.Stdout == nil {
		c.Stdout = s.output
	}
	c.Stderr = s.output
	if err := c.Start(); err != nil {
		t.Fatalf("starting %s: %v", c.Path, err)
	}
	go func() {
		c.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
			return
		default:
		}
		// The editor's children (its proxies) first, then the editor: each
		// by identity, so a reused pid is never signalled.
		below := descendantIdentities(c.Process.Pid)
		c.Process.Kill()
		for _, d := range below {
			d.Kill()
		}
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, d := range below {
			d.Wait(ctx)
		}
	})
	return s
}

// wait waits for the process to exit and returns its exit code.
func (s *started) wait(t *testing.T, timeout time.Duration, what string) int {
	t.Helper()
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s (pid %d) did not exit within %v; output:\n%s", what, s.cmd.Process.Pid, timeout, tail(s.output.String(), 4000))
		return -1
	}
}

// procEntry is one process from /proc.
type procEntry = proctest.Proc

// processes lists live processes from /proc.
func processes() []procEntry { return proctest.Processes() }

// procByPID returns the /proc entry of pid.
func procByPID(pid int) (procEntry, bool) {
	for _, p := range processes() {
		if p.PID == pid {
			return p, true
		}
	}
	return procEntry{}, false
}

// descendants returns the processes below any of roots.
func descendants(roots ...int) []procEntry {
	all := processes()
	kids := map[int][]procEntry{}
	for _, p := range all {
		kids[p.PPID] = append(kids[p.PPID], p)
	}
	var out []procEntry
	queue := append([]int{}, roots...)
	seen := map[int]bool{}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, k := range kids[pid] {
			if !seen[k.PID] {
				seen[k.PID] = true
				out = append(out, k)
				queue = append(queue, k.PID)
			}
		}
	}
	return out
}

// descendantIdentities returns the identities of the processes below pid.
func descendantIdentities(pid int) []platform.Identity {
	var ids []platform.Identity
	for _, p := range descendants(pid) {
		if id, err := platform.Lookup(p.PID); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// instances returns the pids of the entries that run the program name and
// whose parent does not: one per server instance, not counting a server's
// own helper processes (gopls re-executes itself as a telemetry crash
// monitor).
func instances(ps []procEntry, name string) []int {
	byPID := map[int]procEntry{}
	for _, p := range processes() {
		byPID[p.PID] = p
	}
	var out []int
	for _, p := range ps {
		if p.Is(name) && !byPID[p.PPID].Is(name) {
			out = append(out, p.PID)
		}
	}
	sort.Ints(out)
	return out
}

// identities looks up the identities of pids (for waiting on them later).
func identities(t *testing.T, pids []int) []platform.Identity {
	t.Helper()
	var ids []platform.Identity
	for _, pid := range pids {
		id, err := platform.Lookup(pid)
		if err != nil {
			t.Fatalf("looking up pid %d: %v", pid, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// event is one line of an editor harness's event file.
type event struct {
	Event  string  `json:"event"`
	Client int     `json:"client"`
	Name   string  `json:"name"`
	Root   string  `json:"root"`
	File   string  `json:"file"`
	Count  int     `json:"count"`
	Text   string  `json:"text"`
	Err    string  `json:"err"`
	Code   int     `json:"code"`
	Signal int     `json:"signal"`
	Time   float64 `json:"time"` // seconds since the epoch
}

func (ev event) String() string {
	b, _ := json.Marshal(ev)
	return string(b)
}

// eventLog reads the JSON-lines event file an editor harness appends to.
type eventLog struct {
	path   string
	events []event
	off    int64
}

// refresh reads complete new lines from the file.
func (l *eventLog) refresh() error {
	f, err := os.Open(l.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(l.off, 0); err != nil {
		return err
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil // a last line without its newline is read next time
		}
		l.off += int64(len(line))
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			return fmt.Errorf("bad event line %q: %w", line, err)
		}
		l.events = append(l.events, ev)
	}
}

// waitFor waits until an event at index >= from satisfies ok, and returns
// its index. The events are written by the editor as they happen; the file
// is polled because a plain file offers no event to wait on (a FIFO would
// block the editor when the test is not reading).
func (l *eventLog) waitFor(t *testing.T, from int, timeout time.Duration, what string, ok func(event) bool, exited <-chan struct{}) int {
	t.Helper()
	found := -1
	proctest.WaitFor(t, timeout, what, func() error {
		if err := l.refresh(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < len(l.events); i++ {
			if ok(l.events[i]) {
				found = i
				return nil
			}
		}
		select {
		case <-exited:
			l.refresh()
			t.Fatalf("%s: the editor exited first; events:\n%s", what, l.dump())
		default:
		}
		return fmt.Errorf("events:\n%s", l.dump())
	})
	return found
}

func (l *eventLog) dump() string {
	var b strings.Builder
	for i, ev := range l.events {
		fmt.Fprintf(&b, "  %d %s\n", i, ev)
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// editorDeadline bounds each wait for an editor event: a cold pylsp, clangd
// or gopls answers within a few seconds; the margin is for a loaded CI
// machine and -race.
func editorDeadline(t *testing.T) time.Duration {
	d := 60 * time.Second
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) / 2; left < d {
			d = left
		}
	}
	return d
}
