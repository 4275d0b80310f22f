package mux

import "sync"

// Quota is a byte budget: a client's bytes queued toward the server.
// Acquire blocks while the budget is spent (but a request always succeeds
// when nothing is held, so one oversized message can pass alone).
type Quota struct {
	mu    sync.Mutex
	used  int64
	limit int64
	wake  chan struct{}
}

// NewQuota returns a budget of limit bytes.
func NewQuota(limit int64) *Quota { return &Quota{limit: limit, wake: make(chan struct{})} }

// TryAcquire is Acquire that does not wait: it reports false where
// Acquire would block.
func (q *Quota) TryAcquire(n int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.used == 0 || q.used+n <= q.limit {
		q.used += n
		return true
	}
	return false
}

// Acquire takes n bytes of the budget, waiting while it is spent; it
// reports false if cancel closed first.
func (q *Quota) Acquire(n int64, cancel <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.used == 0 || q.used+n <= q.limit {
			q.used += n
			q.mu.Unlock()
			return true
		}
		w := q.wake
		q.mu.Unlock()
		select {
		case <-w:
		case <-cancel:
			return false
		}
	}
}

// Release gives n bytes back and wakes the waiters.
func (q *Quota) Release(n int64) {
	q.mu.Lock()
	q.used -= n
	close(q.wake)
	q.wake = make(chan struct{})
	q.mu.Unlock()
}
