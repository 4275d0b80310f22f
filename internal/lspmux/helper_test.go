package lspmux

import (
	"context"
	"github.com/procref/procref/internal/mux"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperServer runs the fake server on this process's stdio (the test
// binary re-run with GO_WANT_HELPER_PROCESS=1), so that tests can exercise
// ExecBackend, and kill -9 on a real process.
func helperServer() {
	s := newFakeServer(nil, 1, os.Getenv("FAKE_CAPS"))
	s.stdin, s.out = os.Stdin, os.Stdout
	s.run()
}

// The backend is a real process (this test binary as a fake server) started
// with ExecBackend; it is killed with SIGKILL mid-request, restarted with
// the documents replayed, and gone after Close.
func TestExecBackendKill9(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var pids []int
	h := newHarness(t, func(cfg *Config, _ *fakeFarm) {})
	m, err := New(Config{
		Logger:          testLogger(t),
		ShutdownTimeout: 2 * time.Second,
		Start: func(ctx context.Context) (Backend, error) {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=1")
			cmd.Stderr = os.Stderr
			be, err := mux.Exec(cmd)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			pids = append(pids, be.(interface{ Pid() int }).Pid())
			mu.Unlock()
			return be, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.mux.Close(h.ctx) // the harness's own (unused) mux
	m.checks, m.calls.Check, m.asks.Check = true, true, true
	h.mux = m
	a, b := h.join("a", "r"), h.join("b", "r")
	mustNoErr(t, a.didOpen("file:///ws/r/a.c", "int a;", 1))
	mustNoErr(t, b.didOpen("file:///ws/r/b.c", "int b;", 1))
	h.sync(a)
	h.sync(b)
	_, held := a.start("test/hold", "k")
	h.sync(a) // the hold has reached the server (it answers in order)
	mu.Lock()
	first := pids[0]
	mu.Unlock()
	p, _ := os.FindProcess(first)
	mustNoErr(t, p.Kill())
	if _, err := wait(h.ctx, held); err == nil {
		t.Fatal("request in flight at the killed server got no error")
	}
	for c, uri := range map[*tclient]string{a: "file:///ws/r/a.c", b: "file:///ws/r/b.c"} {
		res, err := c.hover(h.ctx, uri, 0, 0)
		if err != nil || !strings.Contains(string(res), "int") {
			t.Fatalf("%s hover after restart = %s, %v", c.name, res, err)
		}
	}
	if pidAlive(first) {
		t.Fatal("killed backend still alive")
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	mustNoErr(t, m.Close(ctx))
	mu.Lock()
	defer mu.Unlock()
	if len(pids) != 2 {
		t.Fatalf("%d backends started, want 2", len(pids))
	}
	if pidAlive(pids[1]) {
		t.Fatalf("backend %d alive after Close", pids[1])
	}
}
