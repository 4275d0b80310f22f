package lspmux

import (
	"errors"
	"fmt"
	"testing"
)

// The multiplexer core's crash, restart and leave paths (internal/mux:
// the server's queue, the clients' queues and the in-flight bound), on
// the invariant-checking fake server.

// A crash frees the in-flight bound: a client whose reader waits with its
// MaxRequests held at the dead server gets their error answers, and its
// next request, read only then, reaches the restarted server.
func TestCoreCrashFreesBound(t *testing.T) {
	const n = 2
	h := newHarness(t, func(cfg *Config, _ *fakeFarm) { cfg.MaxRequests = n })
	waiting := slotWaits(h)
	c := h.join("a", "r")
	var held []chan wireMsg
	for i := range n + 1 {
		_, ch := c.start("test/hold", fmt.Sprintf("h%d", i))
		held = append(held, ch)
	}
	select {
	case <-waiting:
	case <-h.ctx.Done():
		t.Fatal("the client's reader never waited for a request slot")
	}
	old := h.server()
	waitFor(t, h.ctx, func() bool { return old.holding("h0") && old.holding("h1") })
	if old.holding("h2") {
		t.Fatalf("the server got a request past the bound of %d", n)
	}
	old.be.Kill()
	for i := range n {
		var re *rpcError
		if _, err := wait(h.ctx, held[i]); !errors.As(err, &re) || re.Code != codeRequestFailed {
			t.Fatalf("h%d after the crash: %v, want a RequestFailed error", i, err)
		}
	}
	waitFor(t, h.ctx, func() bool { return h.farm.count() == 2 && h.server().holding("h2") })
	h.server().release("h2")
	if got, err := wait(h.ctx, held[n]); err != nil || string(got) != `"released h2"` {
		t.Fatalf("h2 after the restart: %s, %v", got, err)
	}
}

// A client that leaves with requests in flight: the server is told to
// cancel each (the fake server checks they are ids it knows), the
// client's bound and queues go with it, and another client is served.
func TestCoreLeaveCancels(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join("a", "r")
	b := h.join("b", "r")
	for i := range 3 {
		a.start("test/hold", fmt.Sprintf("a%d", i))
	}
	s := h.server()
	waitFor(t, h.ctx, func() bool { return s.holding("a0") && s.holding("a1") && s.holding("a2") })
	a.close()
	if err := h.serveResult("a"); err != nil {
		t.Fatalf("ServeClient(a) after it closed = %v, want nil", err)
	}
	waitFor(t, h.ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.cancelled) == 3
	})
	if got, err := b.call(h.ctx, "test/echo", "b"); err != nil || string(got) != `"b"` {
		t.Fatalf("b after a left: %s, %v", got, err)
	}
	if n := h.mux.Clients(); n != 1 {
		t.Fatalf("%d clients after a left, want 1", n)
	}
}

// A restart limit reached while a client's reader is in the middle of
// writing to the server ends the mux with ErrBackendFailed and every
// client's ServeClient with it: no reader stays blocked on a dead
// server's queue.
func TestCoreRestartLimitEndsReaders(t *testing.T) {
	h := newHarness(t, func(cfg *Config, _ *fakeFarm) { cfg.MaxRestarts = -1 })
	a := h.join("a", "r")
	b := h.join("b", "r")
	for i := range 8 {
		a.start("test/hold", fmt.Sprintf("a%d", i))
		b.start("test/echo", fmt.Sprintf("b%d", i))
	}
	h.server().be.Kill()
	select {
	case <-h.mux.Done():
	case <-h.ctx.Done():
		t.Fatal("mux did not stop after a crash with restarts disabled")
	}
	for _, name := range []string{"a", "b"} {
		if err := h.serveResult(name); !errors.Is(err, ErrBackendFailed) {
			t.Fatalf("ServeClient(%s) = %v, want ErrBackendFailed", name, err)
		}
	}
	if n := h.farm.count(); n != 1 {
		t.Fatalf("%d servers started with restarts disabled, want 1", n)
	}
}
