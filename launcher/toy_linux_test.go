//go:build linux

package launcher_test

// The toy services, the helper processes, and the test scaffolding shared by
// the lifecycle tests.
//
// Every hook of a toy appends one line to <runtime dir>/events ("first",
// "last", "recover", "double", "serve"), with the identities (pid:starttime)
// of the supervisor and of the service process, so that a test can count
// hook runs across processes and find (and clean up) every process that was
// ever started.
//
// Exclusivity: a toy service holds an exclusive flock on <runtime
// dir>/toy.excl for as long as it is alive. OnFirstAcquire fails loudly
// (a "double" line, and an error) if the lock is already held, that is if
// another copy of the service is live.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/refcount"
)

const (
	toyName       = "toy"        // the service is a child process (Info.PID)
	toyLingerName = "toy-linger" // the same with a linger
	toyLightName  = "toy-light"  // the service lives in the supervisor (fast)
	toySlowName   = "toy-slow"   // toy-light that takes toySlowStart to start
	toyHealthName = "toy-health" // toy with a periodic health check
	toyBadRecName = "toy-badrec" // toy whose OnRecover always fails
	toyOverName   = "toy-over"   // toy-light with Overlap and a slow stop
	toyAppName    = "toy-app"    // toy-light of another App ("toyapp")
	toyIdleName   = "toy-idle"   // toy-light with a 1 s linger
	toySwapName   = "toy-swap"   // toy-light on file locks (a .ref file in the runtime dir)

	toySlowStop = 30 * time.Second // unless the test opens stopGate

	toySlowStart = 500 * time.Millisecond

	toyLinger = 300 * time.Millisecond
)

var toyNames = []string{toyName, toyLingerName, toyLightName, toySlowName, toyHealthName, toyBadRecName, toyOverName, toyAppName, toyIdleName, toySwapName}

func registerTestServices() {
	launcher.Register(echoService())
	launcher.Register(greetService())
	launcher.Register(hangService())
	for _, n := range toyNames {
		launcher.Register(toyService(n))
	}
	v2 := toyService(toyOverName)
	v2.Version = toyVersion2
	launcher.Register(v2)
}

// toyVersion2 is the Version of a second build of toy-over.
const toyVersion2 = "build-2"

func runDir() string { return os.Getenv("PROCREF_RUNTIME_DIR") }

// toyService builds the toy named name for the current runtime dir. The key
// includes the dir, so every test gets its own kernel counter.
func toyService(name string) *launcher.Service {
	s := &launcher.Service{
		Name:           name,
		Key:            launcher.Key(name, runDir()),
		HealthInterval: -1,
		StartTimeout:   20 * time.Second,
	}
	switch name {
	case toyName, toyLingerName, toyHealthName, toyBadRecName:
		t := &toyProc{cmds: map[int]*exec.Cmd{}, badRecover: name == toyBadRecName}
		s.Hooks = launcher.Hooks{
			OnFirstAcquire: t.first,
			OnLastRelease:  t.last,
			OnHealthCheck:  t.health,
			OnRecover:      t.recover,
		}
		s.Serve = toyServe
		if name == toyLingerName {
			s.Linger = toyLinger
		}
		if name == toyHealthName {
			s.HealthInterval = 100 * time.Millisecond
		}
	case toyLightName, toySlowName, toyOverName, toyAppName, toyIdleName, toySwapName:
		l := &toyLight{}
		if name == toySwapName {
			s.Impl = refcount.FileLock
		}
		if name == toySlowName {
			l.delay = toySlowStart
		}
		if name == toyOverName {
			l.overlap, s.Overlap = true, true
		}
		if name == toyAppName {
			s.App = "toyapp"
		}
		if name == toyIdleName {
			s.Linger = time.Second
		}
		s.Hooks = launcher.Hooks{OnFirstAcquire: l.first, OnLastRelease: l.last}
	default:
		panic("unknown toy " + name)
	}
	return s
}

func identString(id platform.Identity) string { return fmt.Sprintf("%d:%d", id.PID, id.StartTime) }

func selfIdent() string { return identString(platform.Self()) }

func pidIdent(pid int) string {
	id, err := platform.Lookup(pid)
	if err != nil {
		return fmt.Sprintf("%d:0", pid)
	}
	return identString(id)
}

// record appends one event line (a single O_APPEND write, so lines from
// concurrent processes never interleave).
func record(kind string, kv ...string) {
	f, err := os.OpenFile(filepath.Join(runDir(), "events"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return
	}
	defer f.Close()
	io.WriteString(f, strings.Join(append([]string{kind}, kv...), " ")+"\n")
}

// stopGate is the file whose creation lets a toy-over stop finish.
const stopGate = "stop-gate"

// waitGate waits until path exists (the test creates it), at most max.
func waitGate(path string, max time.Duration) {
	proctest.Poll(max, func() error {
		_, err := os.Stat(path)
		return err
	})
}

// recoverHold is the file whose presence holds a toy's OnRecover (after it
// recorded "recovering"); the test removes it to let the recovery finish.
const recoverHold = "recover-hold"

// startHold is the file whose presence holds a toy-slow start (the test
// removes it to let the start finish).
const startHold = "start-hold"

// waitGateGone waits until path does not exist, at most max.
func waitGateGone(path string, max time.Duration) {
	proctest.Poll(max, func() error {
		if _, err := os.Stat(path); err == nil {
			return errors.New("held")
		}
		return nil
	})
}

// lockExclusive takes the toy's "I am the live service" lock, or fails.
func lockExclusive() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(runDir(), "toy.excl"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another copy of the service is live: %w", err)
	}
	return f, nil
}

// serveToy answers "ping" with "pong <pid>" on every connection.
func serveToy(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			s := bufio.NewScanner(c)
			for s.Scan() {
				fmt.Fprintf(c, "pong %d\n", os.Getpid())
			}
		}()
	}
}

// ping checks that a toy answers on port and returns the pid that answered.
func ping(ctx context.Context, port int) (int, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	dl := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.SetDeadline(dl)
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscanf(line, "pong %d", &pid); err != nil {
		return 0, fmt.Errorf("toy answered %q", line)
	}
	return pid, nil
}

// toyLight is a service inside the supervisor process.
type toyLight struct {
	ln      net.Listener
	excl    *os.File
	delay   time.Duration
	overlap bool // no exclusivity; the stop takes toySlowStop
}

func (l *toyLight) first(ctx context.Context) (launcher.Info, error) {
	if l.delay > 0 {
		record("starting", "sup="+selfIdent())
		select {
		case <-time.After(l.delay):
		case <-ctx.Done():
			return launcher.Info{}, ctx.Err()
		}
		waitGateGone(filepath.Join(runDir(), startHold), 30*time.Second)
	}
	var f *os.File
	if !l.overlap {
		var err error
		if f, err = lockExclusive(); err != nil {
			record("double", "sup="+selfIdent())
			return launcher.Info{}, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Close()
		return launcher.Info{}, err
	}
	l.ln, l.excl = ln, f
	go serveToy(ln)
	port := ln.Addr().(*net.TCPAddr).Port
	record("first", "sup="+selfIdent(), "port="+strconv.Itoa(port))
	return launcher.Info{Port: port}, nil
}

func (l *toyLight) last(ctx context.Context, info launcher.Info) error {
	// Recorded before the exclusive lock is let go, so a successor's
	// "first" always comes after this line.
	record("last", "sup="+selfIdent())
	l.ln.Close()
	if l.overlap {
		// A server that takes its time to shut down: it stops when the test
		// opens the gate (or after toySlowStop if no test is watching).
		waitGate(filepath.Join(runDir(), stopGate), toySlowStop)
		record("stopped", "sup="+selfIdent())
		return nil
	}
	return l.excl.Close()
}

// toyProc runs the service as a child process bound to the supervisor.
type toyProc struct {
	mu         sync.Mutex
	cmds       map[int]*exec.Cmd
	badRecover bool
	firstCtx   context.Context // OnFirstAcquire's, for the "last" event
}

func (t *toyProc) start(ctx context.Context) (launcher.Info, error) {
	exe, err := os.Executable()
	if err != nil {
		return launcher.Info{}, err
	}
	// CommandContext, as a Go programmer writes it: the hook's ctx lives
	// as long as the service (issue 14), so this child outlives the hook.
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), helperEnv+"=toychild")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return launcher.Info{}, err
	}
	if err := platform.StartBound(cmd); err != nil {
		return launcher.Info{}, err
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		return launcher.Info{}, ctx.Err()
	}
	var port int
	if _, err := fmt.Sscanf(line, "port %d", &port); err != nil {
		werr := cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code == exitDouble {
			return launcher.Info{}, fmt.Errorf("toy child: another copy of the service is live (%v)", werr)
		}
		return launcher.Info{}, fmt.Errorf("toy child did not start: %q, %v", line, werr)
	}
	pid := cmd.Process.Pid
	t.mu.Lock()
	t.cmds[pid] = cmd
	t.mu.Unlock()
	return launcher.Info{PID: pid, Port: port, Data: map[string]string{"serial": handshake.NewSecret()[:12]}}, nil
}

func (t *toyProc) stop(pid int) {
	t.mu.Lock()
	cmd := t.cmds[pid]
	delete(t.cmds, pid)
	t.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	cmd.Wait()
}

func (t *toyProc) first(ctx context.Context) (launcher.Info, error) {
	info, err := t.start(ctx)
	if err != nil {
		record("double", "sup="+selfIdent(), "err="+strconv.Quote(err.Error()))
		return info, err
	}
	record("first", "sup="+selfIdent(), "child="+pidIdent(info.PID), "port="+strconv.Itoa(info.Port))
	t.mu.Lock()
	t.firstCtx = ctx
	t.mu.Unlock()
	return info, nil
}

// last stops the child and records, as ctx=live or ctx=done, whether
// OnFirstAcquire's ctx still lived (it must until after OnLastRelease).
func (t *toyProc) last(ctx context.Context, info launcher.Info) error {
	t.stop(info.PID)
	t.mu.Lock()
	live := t.firstCtx != nil && t.firstCtx.Err() == nil
	t.mu.Unlock()
	state := "ctx=done"
	if live {
		state = "ctx=live"
	}
	record("last", "sup="+selfIdent(), "child="+strconv.Itoa(info.PID), state)
	return nil
}

func (t *toyProc) health(ctx context.Context, info launcher.Info) error {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err := ping(ctx, info.Port)
	if err != nil {
		record("unhealthy", "pid="+strconv.Itoa(os.Getpid()), "child="+strconv.Itoa(info.PID))
	}
	return err
}

func (t *toyProc) recover(ctx context.Context, old launcher.Info, cause error) (launcher.Info, error) {
	t.stop(old.PID) // reap the dead one (or end a sick one)
	record("recovering", "sup="+selfIdent(), "old="+strconv.Itoa(old.PID))
	waitGateGone(filepath.Join(runDir(), recoverHold), 30*time.Second)
	if t.badRecover {
		record("recover", "sup="+selfIdent(), "old="+strconv.Itoa(old.PID), "failed=1")
		return launcher.Info{}, errors.New("toy: recover always fails")
	}
	info, err := t.start(ctx)
	if err != nil {
		record("double", "sup="+selfIdent(), "err="+strconv.Quote(err.Error()))
		return info, err
	}
	record("recover", "sup="+selfIdent(), "old="+strconv.Itoa(old.PID), "child="+pidIdent(info.PID), "port="+strconv.Itoa(info.Port))
	return info, nil
}

// toyServe records the first line each authenticated session sends, so a
// test can show that no byte of an unauthenticated one ever got here.
func toyServe(ctx context.Context, conn net.Conn, req launcher.Peer) {
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	record("serve", "pid="+strconv.Itoa(req.PID), "line="+strconv.Quote(line))
	if line == "panic\n" {
		panic("toy: asked to") // TestServePanicEndsOnlyItsConnection
	}
	if err == nil {
		fmt.Fprintf(conn, "echo %s", line)
	}
	io.Copy(io.Discard, conn)
}

const exitDouble = 3

// runHelper runs the helper mode named by LAUNCHER_TEST_HELPER.
func runHelper() int {
	switch mode := os.Getenv(helperEnv); mode {
	case "toychild":
		return toyChild()
	case "hungchild":
		return hungChild()
	case "acquirer":
		return acquirer()
	case "nobody":
		return nobodyProbe()
	case "fakehost":
		return attackerHost()
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", mode)
		return 2
	}
}

// toyChild is the toy's service process: it takes the exclusive lock,
// listens, says "port N" and serves until killed.
func toyChild() int {
	f, err := lockExclusive()
	if err != nil {
		fmt.Fprintln(os.Stderr, "toy child:", err)
		return exitDouble
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "toy child:", err)
		return 1
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	serveToy(ln)
	return 0
}

// reply is an acquirer helper's answer to one command.
type reply struct {
	Err      string            `json:"err,omitempty"`
	Nonce    string            `json:"nonce,omitempty"`
	Host     platform.Identity `json:"host"`
	Info     launcher.Info     `json:"info"`
	Released bool              `json:"released,omitempty"`
}

// acquirer obeys "acquire" and "release" lines on stdin, answering each with
// one JSON line; it exits at EOF (releasing what it holds).
func acquirer() int {
	svc := toyService(os.Getenv("LAUNCHER_TEST_SERVICE"))
	in := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	var h *launcher.Handle
	for in.Scan() {
		var r reply
		switch in.Text() {
		case "acquire":
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			var err error
			h, err = svc.Acquire(ctx)
			cancel()
			if err != nil {
				r.Err = err.Error()
			} else {
				r.Host, r.Info = h.Supervisor(), h.Info()
				if hint, err := discovery.Read(dirOf(runDir()), svc.Name); err == nil && hint.Host == r.Host {
					r.Nonce = hint.Nonce
				}
			}
		case "release":
			if h == nil {
				r.Err = "nothing to release"
			} else if err := h.Release(); err != nil {
				r.Err = err.Error()
			}
			h, r.Released = nil, true
		default:
			r.Err = "unknown command " + in.Text()
		}
		enc.Encode(r)
	}
	if h != nil {
		h.Release()
	}
	return 0
}

// ---- test scaffolding (test process only) ----

// testEnv is one test's private runtime and state dirs.
type testEnv struct {
	t          *testing.T
	run, state string
	helpers    string // helper processes' stderr files
	// doubleOK: the test provokes a failing start on purpose.
	doubleOK bool
}

// newEnv points PROCREF_RUNTIME_DIR and PROCREF_STATE_DIR at fresh dirs and
// registers the cleanup that kills every process the test's services ever
// started (by identity), removes their kernel counters, and fails the test
// if a race detector report appears in any log.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	base := t.TempDir()
	e := &testEnv{t: t, run: filepath.Join(base, "run"), state: filepath.Join(base, "state"), helpers: filepath.Join(base, "helpers")}
	if err := os.Mkdir(e.helpers, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PROCREF_RUNTIME_DIR", e.run)
	t.Setenv("PROCREF_STATE_DIR", e.state)
	t.Cleanup(e.cleanup)
	return e
}

func (e *testEnv) cleanup() {
	t := e.t
	if n := e.count("double"); n > 0 && !e.doubleOK {
		t.Errorf("a second live copy of the service was attempted %d times", n)
	}
	for _, id := range e.processes() {
		if id.Alive() {
			t.Errorf("process %v still alive at the end of the test; killing it", id)
			id.Kill()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			id.Wait(ctx)
			cancel()
		}
	}
	for _, n := range toyNames {
		if c, err := refcount.Open(n, launcher.Key(n, e.run), refcount.Options{Dir: dirOf(e.run)}); err == nil {
			c.Remove()
		}
	}
	logs, _ := filepath.Glob(filepath.Join(e.state, "*.log"))
	more, _ := filepath.Glob(filepath.Join(e.helpers, "*.stderr"))
	for _, p := range append(logs, more...) {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("DATA RACE")) || bytes.Contains(b, []byte("panic:")) {
			t.Errorf("%s reports a data race or panic:\n%s", p, b)
		} else if t.Failed() {
			t.Logf("%s:\n%s", p, tail(b, 4000))
		}
	}
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(e.run, "events"))
		t.Logf("events:\n%s", b)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// event is one line of the events file.
type event struct {
	kind string
	kv   map[string]string
}

func (e *testEnv) events() []event {
	b, err := os.ReadFile(filepath.Join(e.run, "events"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	var out []event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		ev := event{kind: f[0], kv: map[string]string{}}
		for _, x := range f[1:] {
			k, v, _ := strings.Cut(x, "=")
			ev.kv[k] = v
		}
		out = append(out, ev)
	}
	return out
}

func (e *testEnv) count(kind string) int {
	n := 0
	for _, ev := range e.events() {
		if ev.kind == kind {
			n++
		}
	}
	return n
}

func parseIdent(s string) (platform.Identity, bool) {
	p, st, ok := strings.Cut(s, ":")
	if !ok {
		return platform.Identity{}, false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(st, 10, 64)
	return platform.Identity{PID: pid, StartTime: start}, err1 == nil && err2 == nil && pid > 0
}

// processes returns every supervisor and service process the events name.
func (e *testEnv) processes() []platform.Identity {
	var ids []platform.Identity
	for _, ev := range e.events() {
		for _, k := range []string{"sup", "child"} {
			if id, ok := parseIdent(ev.kv[k]); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// waitAllGone waits (bounded) until every process the events name is gone.
func (e *testEnv) waitAllGone(d time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, id := range e.processes() {
		if err := id.Wait(ctx); err != nil {
			e.t.Errorf("process %v still running after %v", id, d)
		}
	}
}

func (e *testEnv) hintPath(name string) string { return filepath.Join(e.run, name+".json") }

// ctx returns a context bounded by d and by the test's deadline.
func testCtx(t testing.TB, d time.Duration) context.Context {
	if tt, ok := t.(*testing.T); ok {
		if dl, ok := tt.Deadline(); ok && time.Until(dl)-5*time.Second < d {
			d = time.Until(dl) - 5*time.Second
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent waits until a toy recorded an event of kind, failing after
// d: the events file is a plain file, with no change event to wait on.
// holdStart holds every toy-slow start of the env until the returned
// release is called (or the test ends).
func (e *testEnv) holdStart() (release func()) {
	e.t.Helper()
	return e.hold(startHold)
}

// hold creates the hold file name in the env's runtime dir; release
// removes it (also at the test's end).
func (e *testEnv) hold(name string) (release func()) {
	e.t.Helper()
	path := filepath.Join(e.run, name)
	if err := os.MkdirAll(e.run, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		e.t.Fatal(err)
	}
	release = func() { os.Remove(path) }
	e.t.Cleanup(release)
	return release
}

func (e *testEnv) waitEvent(kind string, d time.Duration) {
	e.t.Helper()
	proctest.Eventually(e.t, d, "a "+kind+" event", func() bool { return e.count(kind) > 0 })
}

// acqProc is an acquirer helper process.
type acqProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan reply
}

// startAcquirers starts n acquirer helpers for service; they are killed and
// reaped at the end of the test if still running.
func startAcquirers(t *testing.T, e *testEnv, n int, service string) []*acqProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	procs := make([]*acqProc, n)
	for i := range procs {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"=acquirer", "LAUNCHER_TEST_SERVICE="+service)
		stderr, err := os.Create(filepath.Join(e.helpers, fmt.Sprintf("acquirer-%d.stderr", i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stderr.Close()
		p := &acqProc{cmd: cmd, stdin: in, replies: make(chan reply, 4)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer close(p.replies)
			s := bufio.NewScanner(out)
			for s.Scan() {
				var r reply
				if err := json.Unmarshal(s.Bytes(), &r); err != nil {
					r.Err = fmt.Sprintf("bad reply %q", s.Text())
				}
				p.replies <- r
			}
		}()
		t.Cleanup(func() {
			in.Close()
			cmd.Process.Kill()
			<-done
			cmd.Wait()
		})
		procs[i] = p
	}
	return procs
}

func (p *acqProc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("acquirer pid %d: %v", p.cmd.Process.Pid, err)
	}
}

func (p *acqProc) reply(t *testing.T, ctx context.Context) reply {
	t.Helper()
	select {
	case r, ok := <-p.replies:
		if !ok {
			t.Fatalf("acquirer pid %d exited", p.cmd.Process.Pid)
		}
		return r
	case <-ctx.Done():
		t.Fatalf("acquirer pid %d: no reply: %v", p.cmd.Process.Pid, ctx.Err())
		return reply{}
	}
}

// acquire takes a reference in this process, bounded by the test.
// liveHint reads the hint of svc's running supervisor.
func liveHint(t *testing.T, svc *launcher.Service) *discovery.Hint {
	t.Helper()
	h, err := discovery.Read(dirOf(runDir()), svc.Name)
	if err != nil {
		t.Fatalf("hint of %s: %v", svc.Name, err)
	}
	return h
}

func acquire(t *testing.T, svc *launcher.Service) *launcher.Handle {
	t.Helper()
	h, err := svc.Acquire(testCtx(t, time.Minute))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return h
}
