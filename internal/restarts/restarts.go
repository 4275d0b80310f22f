// Package restarts bounds how often a crashed server is restarted: the
// one budget the tcp-mode host and both multiplexers (lspmux, mcp) share.
package restarts

import "time"

// Budget allows at most Max restarts within any Window; a negative Max
// allows none. The zero value allows none either: set both fields. A
// Budget is not safe for concurrent use; callers hold their own lock.
type Budget struct {
	Max    int
	Window time.Duration
	times  []time.Time
}

// Spend records a restart at now and reports true, or reports false (and
// records nothing) when Max restarts already happened within Window.
func (b *Budget) Spend(now time.Time) bool {
	kept := b.times[:0]
	for _, t := range b.times {
		if now.Sub(t) < b.Window {
			kept = append(kept, t)
		}
	}
	b.times = kept
	if b.Max <= 0 || len(b.times) >= b.Max {
		return false
	}
	b.times = append(b.times, now)
	return true
}

// Recent returns how many restarts were recorded within Window as of the
// last Spend.
func (b *Budget) Recent() int { return len(b.times) }

// Backoff is how long to wait before the restart Spend just allowed: none
// for the first within the window, then 100ms, 200ms, 400ms... at most 2s,
// so a server that dies at once does not burn the budget in a blink.
func (b *Budget) Backoff() time.Duration {
	n := len(b.times) - 1
	if n <= 0 {
		return 0
	}
	return min(100*time.Millisecond<<(n-1), 2*time.Second)
}
