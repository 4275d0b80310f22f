package restarts

import (
	"testing"
	"time"
)

// TestBudget: Max restarts within the window, then none until the oldest
// leaves it; the backoff grows from none to 2s; a negative Max allows none.
func TestBudget(t *testing.T) {
	b := Budget{Max: 3, Window: time.Minute}
	t0 := time.Unix(1000, 0)
	var waits []time.Duration
	for i := range 3 {
		if !b.Spend(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("restart %d refused", i+1)
		}
		waits = append(waits, b.Backoff())
	}
	if b.Spend(t0.Add(10 * time.Second)) {
		t.Fatal("a fourth restart within the window was allowed")
	}
	if b.Recent() != 3 {
		t.Errorf("Recent = %d, want 3", b.Recent())
	}
	if waits[0] != 0 || waits[1] != 100*time.Millisecond || waits[2] != 200*time.Millisecond {
		t.Errorf("backoffs = %v, want 0, 100ms, 200ms", waits)
	}
	if !b.Spend(t0.Add(time.Minute)) { // the first has left the window
		t.Error("a restart after the window was refused")
	}
	big := Budget{Max: 100, Window: time.Hour}
	for i := range 20 {
		big.Spend(t0.Add(time.Duration(i)))
	}
	if big.Backoff() != 2*time.Second {
		t.Errorf("backoff after 20 restarts = %v, want the 2s cap", big.Backoff())
	}
	if (&Budget{Max: -1, Window: time.Minute}).Spend(t0) {
		t.Error("a negative Max allowed a restart")
	}
}
