package lspmux

import (
	"fmt"
	"testing"
)

// A client that pipelines many requests has at most MaxRequests in flight
// at the backend: its reader stops there, so another client's request is
// served while the flood waits, and each answer to the flooder lets
// exactly one more of its requests through.
func TestFloodingClientBounded(t *testing.T) {
	const n, flood = 4, 40
	h := newHarness(t, func(cfg *Config, _ *fakeFarm) { cfg.MaxRequests = n })
	waiting := slotWaits(h)
	flooder := h.join("flooder", "r")
	victim := h.join("victim", "r")
	answers := make(chan chan wireMsg, flood)
	go func() {
		for i := range flood {
			_, ch := flooder.start("test/hold", fmt.Sprintf("f%d", i))
			answers <- ch
		}
	}()
	select {
	case <-waiting:
	case <-h.ctx.Done():
		t.Fatal("the flooding client's reader never waited for a request slot")
	}
	s := h.server()
	waitFor(t, h.ctx, func() bool { return s.holding(fmt.Sprintf("f%d", n-1)) })
	// the other client is served while the flooder's requests are held
	if got, err := victim.call(h.ctx, "test/echo", "victim"); err != nil || string(got) != `"victim"` {
		t.Fatalf("victim during the flood: %s, %v", got, err)
	}
	if s.holding(fmt.Sprintf("f%d", n)) {
		t.Fatalf("the backend got request f%d of the flooder with %d in flight (bound %d)", n, n, n)
	}
	// each answer admits exactly one more
	for i := range flood {
		if !s.release(fmt.Sprintf("f%d", i)) {
			t.Fatalf("f%d not held at the backend", i)
		}
		if next := i + n; next < flood {
			waitFor(t, h.ctx, func() bool { return s.holding(fmt.Sprintf("f%d", next)) })
			if next+1 < flood && s.holding(fmt.Sprintf("f%d", next+1)) {
				t.Fatalf("after %d answers the backend already has f%d (bound %d)", i+1, next+1, n)
			}
		} else {
			waitFor(t, h.ctx, func() bool { return i+1 == flood || s.holding(fmt.Sprintf("f%d", i+1)) })
		}
	}
	for i := range flood {
		if _, err := wait(h.ctx, <-answers); err != nil {
			t.Fatalf("flooder answer %d: %v", i, err)
		}
	}
}

// slotWaits returns a channel that receives when a client's reader waits
// for a request slot (set before clients join).
func slotWaits(h *harness) <-chan struct{} {
	waiting := make(chan struct{}, 1)
	h.mux.testHook = func(ev string) {
		if ev == "request-slot-wait" {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	}
	return waiting
}
