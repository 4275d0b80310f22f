package proctest

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds or timeout passes, then fails t
// naming what it waited for. It is for conditions no process signals (a
// line in another process's log, a process gone that is not our child);
// where a channel, pipe or readiness line exists, wait on that instead.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}
