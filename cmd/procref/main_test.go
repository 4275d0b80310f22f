package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/lspclient"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// raceEnabled is set by race_test.go when the tests run with -race; the
// procref binary under test is then built with -race too.
var raceEnabled bool

// procrefBin is the procref binary built for these tests.
var procrefBin string

// TestMain builds the real procref binary once (the proxy re-executes its
// own binary as the host, so the test binary cannot stand in for it), or
// runs as a helper process when GO_WANT_HELPER_PROCESS is set.
func TestMain(m *testing.M) {
	if h := os.Getenv("GO_WANT_HELPER_PROCESS"); h != "" {
		os.Exit(helperProcess(h, os.Args))
	}
	dir, err := os.MkdirTemp("", "procref-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	procrefBin, err = proctest.BuildProcref(dir, raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helperProcess runs the test binary as a small service for the tests.
// "echo": a line-agnostic TCP echo server on the address after --listen=.
func helperProcess(kind string, args []string) int {
	switch kind {
	case "crashy":
		return crashyServer()
	case "refuser":
		return refusingServer()
	case "gosdk":
		return goSDKServer()
	case "cut":
		return cutServer(args)
	case "echo":
		var addr string
		for _, a := range args {
			if strings.HasPrefix(a, "--listen=") {
				addr = strings.TrimPrefix(a, "--listen=")
			}
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", kind)
	return 2
}

// env is an isolated procref environment: its own runtime and state dirs.
type env struct {
	t       *testing.T
	runtime string
	state   string
	vars    []string
}

// privDir is this test process's checked handle on the env's runtime dir
// (created if missing; shared and never closed, see
// launcher.Service.PrivateDir). It panics if the dir fails its check.
func (e *env) privDir() *platform.PrivateDir {
	d, err := (&launcher.Service{Dir: e.runtime}).PrivateDir()
	if err != nil {
		panic(err)
	}
	return d
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, runtime: filepath.Join(base, "run"), state: filepath.Join(base, "state")}
	for _, d := range []string{e.runtime, e.state} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.vars = append(os.Environ(), "PROCREF_RUNTIME_DIR="+e.runtime, "PROCREF_STATE_DIR="+e.state,
		// Under -race the binaries are race builds, which sleep a second
		// at exit by default: a backend's exit would then stretch the
		// host's shutdown past the tests' bounds.
		"GORACE=atexit_sleep_ms=0")
	t.Cleanup(e.killAll)
	return e
}

// killAll stops every host (and its backend) left in this env, by identity.
func (e *env) killAll() {
	names, _ := discovery.List(e.privDir())
	for _, n := range names {
		if h, err := discovery.Read(e.privDir(), n); err == nil {
			h.Host.Kill()
			if h.Backend.PID > 0 {
				h.Backend.Kill()
			}
		}
	}
}

// proc is a started procref process (usually a proxy) with its stdio.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *proctest.SyncBuffer
	done   chan struct{}
	err    error
}

// start runs procref with args in the env; the process is killed and waited
// for at cleanup.
func (e *env) start(dir string, extraEnv []string, args ...string) *proc {
	e.t.Helper()
	return e.startBin(procrefBin, dir, extraEnv, args...)
}

// startBin is start with another procref executable.
func (e *env) startBin(bin, dir string, extraEnv []string, args ...string) *proc {
	e.t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stderr: &proctest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(append([]string{}, e.vars...), extraEnv...)
	p.cmd.Dir = dir
	// Our own stderr pipe, read to EOF before done closes: Process.Wait
	// (below) does not wait for exec's copy, and the proxy's last line is
	// written just before it exits.
	er, ew, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	p.cmd.Stderr = ew
	stderrDone := make(chan struct{})
	go func() {
		io.Copy(p.stderr, er)
		er.Close()
		close(stderrDone)
	}()
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		e.t.Fatal(err)
	}
	if p.stdout, err = p.cmd.StdoutPipe(); err != nil {
		e.t.Fatal(err)
	}
	err = p.cmd.Start()
	ew.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		// Wait only after stdout is drained by the user; Wait closes pipes,
		// so wait on the process state via Process.Wait instead.
		st, err := p.cmd.Process.Wait()
		p.cmd.ProcessState = st
		p.err = err
		select {
		case <-stderrDone:
		case <-time.After(5 * time.Second): // a child kept our stderr open
		}
		close(p.done)
	}()
	e.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("pid %d did not exit within %v; stderr:\n%s", p.cmd.Process.Pid, timeout, p.stderr.String())
		return -1
	}
}

// client starts an LSP client on a proxy's stdio.
func (p *proc) client(ctx context.Context) *lspclient.Client {
	return lspclient.NewOnPipes(ctx, p.stdout, p.stdin)
}

// stderrHas reports whether the exited proxy's stderr holds want, waiting
// up to 2 s for it: exec's goroutine copies stderr and may lag the exit.
func (p *proc) stderrHas(want string) bool {
	return proctest.Poll(2*time.Second, func() error {
		if !strings.Contains(p.stderr.String(), want) {
			return errors.New("not yet")
		}
		return nil
	}) == nil
}

// onlyHint returns the env's single hint, failing if there is not exactly one.
func (e *env) onlyHint() *discovery.Hint {
	e.t.Helper()
	names, err := discovery.List(e.privDir())
	if err != nil || len(names) != 1 {
		e.t.Fatalf("want exactly one backend, got %v (err %v)", names, err)
	}
	h, err := discovery.Read(e.privDir(), names[0])
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// children returns the pids whose parent is ppid and whose command name is
// comm (Linux /proc).
func children(ppid int, comm string) []int {
	var out []int
	for _, p := range proctest.Processes() {
		if p.PPID == ppid && p.Comm == comm {
			out = append(out, p.PID)
		}
	}
	return out
}

// requireServer finds a real language server or skips (fails under
// PROCREF_REQUIRE_SERVERS=1).
func requireServer(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if gp, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			cand := filepath.Join(strings.TrimSpace(string(gp)), "bin", name)
			if _, serr := os.Stat(cand); serr == nil {
				return cand
			}
		}
		if os.Getenv("PROCREF_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s not installed and PROCREF_REQUIRE_SERVERS=1", name)
		}
		t.Skipf("%s not installed (set PROCREF_REQUIRE_SERVERS=1 to fail instead)", name)
	}
	return path
}

// readLine reads one line with a deadline.
func readLine(t *testing.T, r *bufio.Reader, timeout time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		ch <- s
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(timeout):
		t.Fatal("timed out reading a line")
		return ""
	}
}

var _ = syscall.SIGKILL
