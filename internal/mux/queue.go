package mux

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/procref/procref/internal/wire"
)

// Framing frames message bodies for a queue's destination: the protocol
// policy's wire format (LSP's Content-Length headers, MCP's lines). The
// core never looks inside a frame.
type Framing interface {
	// AppendFrame appends the framed message of body with edits applied
	// (edits in order, not overlapping).
	AppendFrame(dst, body []byte, edits []wire.Edit) []byte
	// WriteFrame writes the framed message of body with edits applied;
	// for a large body, without copying it where the format allows.
	WriteFrame(w io.Writer, body []byte, edits []wire.Edit) error
}

// Item is one message in a queue: Body with Edits applied (ids, tokens:
// spliced in while writing, so a large body is never copied to rewrite
// them). Release, if set, is called once the item has been written or
// dropped (it returns the owner's in-flight quota). Recycle says Body came
// from wire.Reader and nothing else refers to it: the writer hands it
// back to wire's pool once written.
type Item struct {
	Body    []byte
	Edits   []wire.Edit
	Release func()
	Recycle bool
	// Turn, if set, is the client in whose turn the item is written
	// (see Queue: a client's request that may be served round-robin);
	// nil keeps the item's place in push order.
	Turn   any
	framed bool // Body is already framed (the rest of a partly written message)
}

// write frames the item onto w with f and recycles its body if it may.
func (it *Item) write(f Framing, w io.Writer) error {
	if it.framed {
		_, err := w.Write(it.Body)
		return err
	}
	err := f.WriteFrame(w, it.Body, it.Edits)
	if it.Recycle {
		wire.Recycle(it.Body)
	}
	return err
}

// release calls Release once, if set.
func (it *Item) release() {
	if it.Release != nil {
		it.Release()
	}
}

// Queue is an unbounded-by-itself queue of messages toward one destination
// (a client, or the server), with one consumer; producers never block.
// Bounds are applied by the callers (a Quota for server-bound traffic,
// the byte limit in Push for client-bound traffic, a Bound on each
// client's requests in flight).
//
// Order (the round-robin rule). Items with a Turn (clients' requests
// toward the server) are kept per client and written one client at a
// time in turn, one item per turn, each client's in its push order; a
// client with nothing queued is skipped, and one whose first item comes
// while others are queued joins at the end of the turn. Items without a
// Turn (every message toward a client; toward the server the host's own
// messages, answers to the server, and the clients' notifications and
// the requests whose effect the host keeps count of) keep their place:
// each is written after everything pushed before it and before
// everything pushed after it. They never starve, and no message is
// written before a state change the host made before it was pushed (a
// document's new text, to which another window's positions were mapped).
// So while one client floods the server, another's request waits here
// behind at most one of the flooder's per turn (and the batch being
// written when it came, up to batchMax bytes), and at the server behind
// at most the flooder's Bound. Turn values are compared with ==: a
// client's pointer.
//
// The consumer is normally the destination's writer goroutine (Run), but
// a producer that finds the queue empty and nobody writing may write its
// message itself (PushItem with an owner, then drainWith): that saves the
// hand-off to the writer goroutine (a wake-up, often of another thread)
// on the round-trip path. busy says who owns the destination: at most one
// goroutine writes to it at a time, in queue order.
type Queue struct {
	frame Framing

	mu          sync.Mutex
	groups      fifo[*group] // the items, in the order they leave (turns.go)
	n           int          // items queued
	bytes       int64        // their body bytes
	spareLanes  []*lane      // emptied, for reuse
	spareGroups []*group
	closed      bool
	busy        bool          // the writer goroutine or a draining producer is writing
	writerOwns  bool          // busy is the writer goroutine's (taken in pop)
	owner       any           // busy is this draining producer's (PushItem)
	room        chan struct{} // closed when bytes drop (WaitRoom); nil if nobody waits
	wake        chan struct{} // cap 1: something was pushed, the queue closed, or a drainer let go

	// frozenAfter, if set, refuses pushes onto a queue from which nothing
	// was taken for that long while it held something (see Frozen).
	frozenAfter time.Duration
	since       time.Time // last take, or the push that made the queue non-empty
	frozen      bool      // a push was refused by frozenAfter
}

// newQueue returns an empty queue whose messages are framed with f.
func newQueue(f Framing) *Queue { return &Queue{frame: f, wake: make(chan struct{}, 1)} }

// NewClientQueue is a queue toward a client, refusing pushes once it has
// taken nothing for frozen while holding something (0: never).
func NewClientQueue(f Framing, frozen time.Duration) *Queue {
	q := newQueue(f)
	q.frozenAfter = frozen
	return q
}

// Framing returns the queue's framing.
func (q *Queue) Framing() Framing { return q.frame }

// Push appends body unless the queue is closed or limit > 0 and the queue
// already holds something and would exceed limit bytes. It reports whether
// the body was queued; if not, release (if any) is called.
func (q *Queue) Push(body []byte, limit int64, release func()) bool {
	ok, _ := q.PushItem(Item{Body: body, Release: release}, limit, nil)
	return ok
}

// PushItem is Push for an item with edits. With a non-nil owner (the
// caller's identity), if the queue was empty and nobody was writing, the
// caller becomes the writer: claimed is true, the writer goroutine is not
// woken, and the caller must call q.drainWith (or drainTo) before it blocks on anything
// (and without holding locks that writes must not block). While owner
// holds the queue, its further pushes just append.
func (q *Queue) PushItem(it Item, limit int64, owner any) (ok, claimed bool) {
	n := int64(len(it.Body))
	q.mu.Lock()
	if q.closed || (limit > 0 && q.bytes > 0 && q.bytes+n > limit) || q.stuck() {
		q.mu.Unlock()
		it.release()
		return false, false
	}
	quiet := false // no need to wake the writer goroutine
	if owner != nil {
		switch {
		case q.busy && !q.writerOwns && q.owner == owner:
			quiet = true // owner's drain will write it
		case !q.busy && q.empty():
			q.busy, q.owner = true, owner
			quiet, claimed = true, true
		}
	}
	if q.frozenAfter > 0 && q.empty() {
		q.since = time.Now()
	}
	q.add(it)
	q.mu.Unlock()
	if quiet {
		return true, claimed
	}
	q.signal()
	return true, false
}

// Frozen reports whether a push was refused because nothing was taken
// from the queue for its frozen bound (NewClientQueue), rather than for
// its byte bound or because it was closed.
func (q *Queue) Frozen() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.frozen
}

// stuck reports (and records in frozen) whether the queue holds
// something and nothing was taken from it for frozenAfter: its reader has
// read nothing for that long while its queue grows. Called with mu held.
func (q *Queue) stuck() bool {
	if q.frozenAfter <= 0 || q.empty() || time.Since(q.since) < q.frozenAfter {
		return false
	}
	q.frozen = true
	return true
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes the item whose turn is next (takeNext) and notes the
// progress. Called with mu held and the queue not empty.
func (q *Queue) take() Item {
	it := q.takeNext()
	if q.frozenAfter > 0 {
		q.since = time.Now()
	}
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	return it
}

// Over reports whether over(queued bytes) holds on an open queue.
func (q *Queue) Over(over func(queued int64) bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.closed && over(q.bytes)
}

// WaitRoom blocks while over(queued bytes) holds and the queue is open,
// rechecking whenever the writer takes something (and every stall). It
// returns ErrStalled if more than stallAt bytes stay queued while the
// writer takes nothing for stall (the client is not reading at all), and
// ErrCanceled if cancel closed first.
func (q *Queue) WaitRoom(over func(queued int64) bool, stallAt int64, cancel <-chan struct{}, stall time.Duration) error {
	t := time.NewTimer(stall)
	defer t.Stop()
	for {
		q.mu.Lock()
		if q.closed || !over(q.bytes) {
			q.mu.Unlock()
			return nil
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		ch := q.room
		q.mu.Unlock()
		select {
		case <-ch: // progress
			t.Reset(stall)
		case <-t.C:
			q.mu.Lock()
			stuck := q.room == ch && q.bytes > stallAt // nothing taken since
			q.mu.Unlock()
			if stuck {
				return ErrStalled
			}
			t.Reset(stall)
		case <-cancel:
			return ErrCanceled
		}
	}
}

// Errors of Queue.WaitRoom.
var (
	ErrStalled  = errors.New("queue stalled")
	ErrCanceled = errors.New("wait canceled")
)

// drainWith is called by the producer that PushItem made the writer: it
// writes what is queued when it is called (in batches of up to batchMax
// bytes, in turn order) with write, then lets go; what others push
// meanwhile is the writer goroutine's. (Not until the queue is empty: a
// client's reader would then write another client's flood for as long
// as it lasted, reading nothing of its own client meanwhile.) write may
// hand back a rest
// (messages it could not write without blocking, the first maybe partly
// written): the rest goes back to the head of the queue for the writer
// goroutine, and drainWith returns. A write error is returned after letting
// go; the caller deals with the destination.
func (q *Queue) drainWith(write func(items []Item) (rest []Item, err error)) error {
	var batch []Item
	left := -1 // items still to write: those queued at the first look
	for {
		q.mu.Lock()
		if left < 0 {
			left = q.n
		}
		if q.empty() || left == 0 {
			q.busy, q.owner = false, nil
			wake := q.closed || !q.empty() // a writer goroutine waiting to see the close, or the rest
			q.mu.Unlock()
			if wake {
				q.signal()
			}
			return nil
		}
		batch = batch[:0]
		n := 0
		for left > 0 && !q.empty() && (len(batch) == 0 || n+q.nextLen() <= batchMax) {
			it := q.take()
			n += len(it.Body)
			batch = append(batch, it)
			left--
		}
		q.mu.Unlock()
		rest, err := write(batch)
		if len(rest) > 0 || err != nil {
			q.mu.Lock()
			if len(rest) > 0 {
				q.putBack(rest)
			}
			q.busy, q.owner = false, nil
			q.mu.Unlock()
			q.signal()
			return err
		}
	}
}

// drainTo is drainWith writing every batch to w (writeBatch) and releasing
// its items: for a producer that took over a destination it may block on
// (the server's stdin).
func (q *Queue) drainTo(w io.Writer) error {
	var buf []byte
	return q.drainWith(func(items []Item) ([]Item, error) {
		var err error
		buf, err = q.writeBatch(w, items, buf)
		for i := range items {
			items[i].release()
		}
		return nil, err
	})
}

// pop blocks until an item is available (ok) or the queue is closed and
// drained or stop is closed (!ok). Only the writer goroutine calls it; the
// item is its to write until its next pop.
func (q *Queue) pop(stop <-chan struct{}) (Item, bool) {
	for {
		q.mu.Lock()
		if q.writerOwns {
			q.busy, q.writerOwns = false, false
		}
		if !q.busy && !q.empty() {
			it := q.take()
			q.busy, q.writerOwns = true, true
			q.mu.Unlock()
			return it, true
		}
		done := q.closed && !q.busy && q.empty()
		q.mu.Unlock()
		if done {
			return Item{}, false
		}
		select {
		case <-q.wake:
		case <-stop:
			return Item{}, false
		}
	}
}

// popBatch is pop that also takes the items queued behind the first one,
// up to batchMax bytes in all, so the writer can hand a stream of small
// messages to the kernel in one write (see writeBatch). The items are
// appended to dst[:0].
func (q *Queue) popBatch(stop <-chan struct{}, dst []Item) ([]Item, bool) {
	it, ok := q.pop(stop)
	if !ok {
		return dst[:0], false
	}
	dst = append(dst[:0], it)
	n := len(it.Body)
	q.mu.Lock()
	for !q.empty() && n+q.nextLen() <= batchMax {
		it := q.take()
		n += len(it.Body)
		dst = append(dst, it)
	}
	q.mu.Unlock()
	return dst, true
}

// Run is the destination's writer goroutine: it writes what is queued to
// w, in batches, releasing every item, until the queue is closed and
// drained or stop closes (nil), or a write fails. After a failed write
// the queue is closed and what is left is dropped (releases run); the
// error is returned.
func (q *Queue) Run(w io.Writer, stop <-chan struct{}) error {
	var batch []Item
	var buf []byte
	for {
		var ok bool
		batch, ok = q.popBatch(stop, batch)
		if !ok {
			return nil
		}
		var err error
		buf, err = q.writeBatch(w, batch, buf)
		for i := range batch {
			batch[i].release()
		}
		clear(batch)
		if err != nil {
			q.Close(true)
			// drain what is left so pushes' releases run
			for {
				it, ok := q.pop(nil)
				if !ok {
					return err
				}
				it.release()
			}
		}
	}
}

// batchMax bounds the bytes of one popBatch.
const batchMax = 256 << 10

// writeBatch writes items in order with the queue's framing, small ones
// gathered in buf (reused across calls: it is returned) and written
// together. It stops at the first error. It does not release the items.
func (q *Queue) writeBatch(w io.Writer, items []Item, buf []byte) ([]byte, error) {
	if len(items) == 1 {
		return buf, items[0].write(q.frame, w)
	}
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	buf = buf[:0]
	for i := range items {
		it := &items[i]
		switch {
		case it.framed:
			buf = append(buf, it.Body...)
		case len(it.Body) <= directMax:
			buf = q.frame.AppendFrame(buf, it.Body, it.Edits)
			if it.Recycle {
				wire.Recycle(it.Body)
			}
		default:
			if err := flush(); err != nil {
				return buf, err
			}
			if err := it.write(q.frame, w); err != nil {
				return buf, err
			}
		}
	}
	return buf, flush()
}

// directMax is the largest body written directly by a producer (see
// PushItem with an owner): larger ones are left to the writer goroutines,
// where their time on the wire blocks nobody else.
const directMax = 64 << 10

// Close stops accepting items; the writer still drains what is queued
// unless drop is set, in which case queued items are released and
// discarded.
func (q *Queue) Close(drop bool) {
	q.mu.Lock()
	q.closed = true
	var dropped []Item
	if drop {
		dropped = q.dropAll()
	}
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	q.mu.Unlock()
	for i := range dropped {
		dropped[i].release()
	}
	q.signal()
}

// TouchWriter returns w writing in pieces of at most touchChunk bytes,
// each piece written counting as progress of q (see NewClientQueue), so
// a client that reads a large message slowly is not taken for a frozen
// one.
func (q *Queue) TouchWriter(w io.Writer) io.Writer {
	if q.frozenAfter <= 0 {
		return w
	}
	return &touchWriter{w: w, q: q}
}

type touchWriter struct {
	w io.Writer
	q *Queue
}

const touchChunk = 64 << 10

func (t *touchWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := t.w.Write(p[n:min(len(p), n+touchChunk)])
		n += k
		t.q.mu.Lock()
		t.q.since = time.Now()
		t.q.mu.Unlock()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
