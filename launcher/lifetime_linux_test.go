//go:build linux

package launcher_test

import (
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
)

// TestLingerIsIdleTimer: with a 1 s linger and a short Acquire/Release
// every 0.3 s, the service is never restarted: the linger starts again at
// every use, also one the supervisor never saw holding a reference. (A
// gap that the loaded machine stretched past the linger is allowed to
// restart it, and is only logged.)
func TestLingerIsIdleTimer(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyIdleName)
	var sup platform.Identity
	var released time.Time
	restarts := 0
	for i := 0; i < 12; i++ {
		h := acquire(t, svc)
		if i > 0 && h.Supervisor() != sup {
			if gap := time.Since(released); gap < svc.Linger {
				t.Errorf("call %d: a new supervisor %v replaced %v after an idle gap shorter than the linger", i, h.Supervisor(), sup)
			} else {
				t.Logf("call %d: gap %v exceeded the linger (loaded machine)", i, gap)
			}
			restarts++
		}
		sup = h.Supervisor()
		h.Release()
		released = time.Now()
		time.Sleep(300 * time.Millisecond) // the workload's pace, not a wait for anything
	}
	proctest.WaitGone(t, sup, svc.Linger+20*time.Second, "supervisor after the last release")
	if got := e.count("first"); got != restarts+1 {
		t.Errorf("OnFirstAcquire ran %d times, want %d", got, restarts+1)
	}
	e.waitAllGone(5 * time.Second)
}
