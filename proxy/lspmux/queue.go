package lspmux

import (
	"io"
	"sync"

	"github.com/procref/procref/proxy/lspframe"
)

// item is one message in a queue: body with edits applied (ids, tokens:
// spliced in while writing, so a large body is never copied to rewrite
// them). release, if set, is called once the item has been written or
// dropped (it returns the owner's in-flight quota). recycle says body came
// from lspframe.Reader and nothing else refers to it: the writer hands it
// back to lspframe's pool once written.
type item struct {
	body    []byte
	edits   []lspframe.Edit
	release func()
	recycle bool
}

// write frames the item onto w and recycles its body if it may.
func (it *item) write(w io.Writer) error {
	err := lspframe.WriteEdited(w, it.body, it.edits...)
	if it.recycle {
		lspframe.Recycle(it.body)
	}
	return err
}

// queue is an unbounded-by-itself FIFO of message bodies with one consumer;
// producers never block. Bounds are applied by the callers (quota for
// server-bound traffic, the byte limit in push for client-bound traffic).
type queue struct {
	mu     sync.Mutex
	items  []item
	head   int
	bytes  int64
	closed bool
	wake   chan struct{} // cap 1: something was pushed or the queue closed
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

// push appends body unless the queue is closed or limit > 0 and the queue
// already holds something and would exceed limit bytes. It reports whether
// the body was queued; if not, release (if any) is called.
func (q *queue) push(body []byte, limit int64, release func()) bool {
	return q.pushItem(item{body: body, release: release}, limit)
}

// pushItem is push for an item with edits.
func (q *queue) pushItem(it item, limit int64) bool {
	n := int64(len(it.body))
	q.mu.Lock()
	if q.closed || (limit > 0 && q.bytes > 0 && q.bytes+n > limit) {
		q.mu.Unlock()
		if it.release != nil {
			it.release()
		}
		return false
	}
	q.items = append(q.items, it)
	q.bytes += n
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// pop blocks until an item is available (ok) or the queue is closed and
// drained or stop is closed (!ok).
func (q *queue) pop(stop <-chan struct{}) (item, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			it := q.items[q.head]
			q.items[q.head] = item{}
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			} else if q.head > 1024 && q.head*2 > len(q.items) {
				q.items = append([]item(nil), q.items[q.head:]...)
				q.head = 0
			}
			q.bytes -= int64(len(it.body))
			q.mu.Unlock()
			return it, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return item{}, false
		}
		select {
		case <-q.wake:
		case <-stop:
			return item{}, false
		}
	}
}

// close stops accepting items; pop still drains what is queued unless
// drop is set, in which case queued items are released and discarded.
func (q *queue) close(drop bool) {
	q.mu.Lock()
	q.closed = true
	var dropped []item
	if drop {
		dropped = q.items[q.head:]
		q.items, q.head, q.bytes = nil, 0, 0
	}
	q.mu.Unlock()
	for _, it := range dropped {
		if it.release != nil {
			it.release()
		}
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// quota is a byte budget: acquire blocks while the budget is spent (but a
// request always succeeds when nothing is held, so one oversized message
// can pass alone).
type quota struct {
	mu    sync.Mutex
	used  int64
	limit int64
	wake  chan struct{}
}

func newQuota(limit int64) *quota { return &quota{limit: limit, wake: make(chan struct{})} }

func (q *quota) acquire(n int64, cancel <-chan struct{}) bool {
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

func (q *quota) release(n int64) {
	q.mu.Lock()
	q.used -= n
	close(q.wake)
	q.wake = make(chan struct{})
	q.mu.Unlock()
}
