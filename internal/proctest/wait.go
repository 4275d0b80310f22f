package proctest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// The wait helpers of procref's tests. Each is bounded by its timeout and
// fails t with what it waited for; none asserts how long anything took.
// Where a channel, pipe or readiness line exists, wait on that instead:
// these are for states no process signals (a line in another process's
// log, a kernel count, a process gone that is not our child).

// WaitFor polls check until it returns nil or timeout passes, then fails t
// with what and check's last error (say there what was seen instead). The
// poll interval starts at 1 ms and grows to 100 ms. check runs on the
// caller's goroutine, so it may end the test itself (t.Fatal) on a state
// that can no longer turn out well.
func WaitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	if err := Poll(timeout, check); err != nil {
		t.Fatalf("waited %v for %s: %v", timeout, what, err)
	}
}

// Eventually is WaitFor for a condition that has nothing to report: it
// polls cond until it holds or timeout passes, then fails t naming what.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if Poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}) != nil {
		t.Fatalf("waited %v for %s", timeout, what)
	}
}

var errNotYet = errors.New("not yet")

// Poll runs check until it returns nil (Poll returns nil) or timeout has
// passed (Poll returns check's last error). It is WaitFor for callers with
// no testing.TB to fail (a testscript command, a goroutine).
func Poll(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
	}
}

// WaitCount waits until count returns want (a kernel reference count: the
// kernel gives back a dead holder's reference with no event but the count
// itself), failing t after timeout with the last count or error.
func WaitCount(t testing.TB, timeout time.Duration, want int, count func() (int, error)) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("count %d", want), func() error {
		n, err := count()
		if err != nil {
			return fmt.Errorf("count: %w", err)
		}
		if n != want {
			return fmt.Errorf("count is %d", n)
		}
		return nil
	})
}

// Process is a process a test can wait for without being its parent:
// platform.Identity (pidfd on Linux, so a reused PID does not count).
type Process interface {
	Wait(ctx context.Context) error
}

// WaitGone waits until p is gone, failing t after timeout naming what and
// p. It does not reap: a child's owner still calls cmd.Wait.
func WaitGone(t testing.TB, p Process, timeout time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%s (%v) still running after %v", what, p, timeout)
	}
}
