package lspmux

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/procref/procref/internal/pipeio"
	"github.com/procref/procref/internal/wire"
)

// item is one message in a queue: body with edits applied (ids, tokens:
// spliced in while writing, so a large body is never copied to rewrite
// them). release, if set, is called once the item has been written or
// dropped (it returns the owner's in-flight quota). recycle says body came
// from wire.Reader and nothing else refers to it: the writer hands it
// back to wire's pool once written.
type item struct {
	body    []byte
	edits   []wire.Edit
	release func()
	recycle bool
	framed  bool // body is already framed (the rest of a partly written message)
}

// write frames the item onto w and recycles its body if it may.
func (it *item) write(w io.Writer) error {
	if it.framed {
		_, err := w.Write(it.body)
		return err
	}
	err := wire.WriteEdited(w, it.body, it.edits...)
	if it.recycle {
		wire.Recycle(it.body)
	}
	return err
}

// queue is an unbounded-by-itself FIFO of message bodies with one consumer;
// producers never block. Bounds are applied by the callers (quota for
// server-bound traffic, the byte limit in push for client-bound traffic).
//
// The consumer is normally the destination's writer goroutine, but a
// producer that finds the queue empty and nobody writing may write its
// message itself (pushItem with direct, then drain): that saves the
// hand-off to the writer goroutine (a wake-up, often of another thread)
// on the round-trip path. busy says who owns the destination: at most one
// goroutine writes to it at a time, in queue order.
type queue struct {
	mu         sync.Mutex
	items      []item
	head       int
	bytes      int64
	closed     bool
	busy       bool          // the writer goroutine or a draining producer is writing
	writerOwns bool          // busy is the writer goroutine's (taken in pop)
	owner      any           // busy is this draining producer's (pushItem)
	room       chan struct{} // closed when bytes drop (waitRoom); nil if nobody waits
	wake       chan struct{} // cap 1: something was pushed, the queue closed, or a drainer let go

	// frozenAfter, if set, refuses pushes onto a queue from which nothing
	// was taken for that long while it held something (see client.push).
	frozenAfter time.Duration
	since       time.Time // last take, or the push that made the queue non-empty
	frozen      bool      // a push was refused by frozenAfter
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

// newClientQueue is a queue toward a client, refusing pushes once it has
// taken nothing for frozen while holding something (0: never).
func newClientQueue(frozen time.Duration) *queue {
	q := newQueue()
	q.frozenAfter = frozen
	return q
}

// push appends body unless the queue is closed or limit > 0 and the queue
// already holds something and would exceed limit bytes. It reports whether
// the body was queued; if not, release (if any) is called.
func (q *queue) push(body []byte, limit int64, release func()) bool {
	ok, _ := q.pushItem(item{body: body, release: release}, limit, nil)
	return ok
}

// pushItem is push for an item with edits. With a non-nil owner (the
// caller's identity), if the queue was empty and nobody was writing, the
// caller becomes the writer: claimed is true, the writer goroutine is not
// woken, and the caller must call q.drain before it blocks on anything
// (and without holding locks that writes must not block). While owner
// holds the queue, its further pushes just append.
func (q *queue) pushItem(it item, limit int64, owner any) (ok, claimed bool) {
	n := int64(len(it.body))
	q.mu.Lock()
	if q.closed || (limit > 0 && q.bytes > 0 && q.bytes+n > limit) || q.stuck() {
		q.mu.Unlock()
		if it.release != nil {
			it.release()
		}
		return false, false
	}
	quiet := false // no need to wake the writer goroutine
	if owner != nil {
		switch {
		case q.busy && !q.writerOwns && q.owner == owner:
			quiet = true // owner's drain will write it
		case !q.busy && q.head == len(q.items):
			q.busy, q.owner = true, owner
			quiet, claimed = true, true
		}
	}
	if q.frozenAfter > 0 && q.head == len(q.items) {
		q.since = time.Now()
	}
	q.items = append(q.items, it)
	q.bytes += n
	q.mu.Unlock()
	if quiet {
		return true, claimed
	}
	q.signal()
	return true, false
}

// stuck reports (and records in frozen) whether the queue holds
// something and nothing was taken from it for frozenAfter: its reader has
// read nothing for that long while its queue grows. Called with mu held.
func (q *queue) stuck() bool {
	if q.frozenAfter <= 0 || q.head == len(q.items) || time.Since(q.since) < q.frozenAfter {
		return false
	}
	q.frozen = true
	return true
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes the head item. Called with mu held and the queue not empty.
func (q *queue) take() item {
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
	if q.frozenAfter > 0 {
		q.since = time.Now()
	}
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	return it
}

// over reports whether over(queued bytes) holds on an open queue.
func (q *queue) over(over func(queued int64) bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.closed && over(q.bytes)
}

// waitRoom blocks while over(queued bytes) holds and the queue is open,
// rechecking whenever the writer takes something (and every stall). It
// returns errStalled if more than stallAt bytes stay queued while the
// writer takes nothing for stall (the client is not reading at all), and
// errCanceled if cancel closed first.
func (q *queue) waitRoom(over func(queued int64) bool, stallAt int64, cancel <-chan struct{}, stall time.Duration) error {
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
				return errStalled
			}
			t.Reset(stall)
		case <-cancel:
			return errCanceled
		}
	}
}

var (
	errStalled  = errors.New("queue stalled")
	errCanceled = errors.New("wait canceled")
)

// drain is called by the producer that pushItem made the writer: it
// writes what is queued (in batches of up to batchMax bytes) with write
// until the queue is empty, then lets go. write may hand back a rest
// (messages it could not write without blocking, the first maybe partly
// written): the rest goes back to the head of the queue for the writer
// goroutine, and drain returns. A write error is returned after letting
// go; the caller deals with the destination.
func (q *queue) drain(write func(items []item) (rest []item, err error)) error {
	var batch []item
	for {
		q.mu.Lock()
		if q.head == len(q.items) {
			q.busy, q.owner = false, nil
			closed := q.closed
			q.mu.Unlock()
			if closed {
				q.signal() // a writer goroutine waiting to see the close
			}
			return nil
		}
		batch = batch[:0]
		n := 0
		for q.head < len(q.items) && (len(batch) == 0 || n+len(q.items[q.head].body) <= batchMax) {
			n += len(q.items[q.head].body)
			batch = append(batch, q.take())
		}
		q.mu.Unlock()
		rest, err := write(batch)
		if len(rest) > 0 || err != nil {
			q.mu.Lock()
			if len(rest) > 0 {
				q.items = append(append([]item(nil), rest...), q.items[q.head:]...)
				q.head = 0
				for _, it := range rest {
					q.bytes += int64(len(it.body))
				}
			}
			q.busy, q.owner = false, nil
			q.mu.Unlock()
			q.signal()
			return err
		}
	}
}

// pop blocks until an item is available (ok) or the queue is closed and
// drained or stop is closed (!ok). Only the writer goroutine calls it; the
// item is its to write until its next pop.
func (q *queue) pop(stop <-chan struct{}) (item, bool) {
	for {
		q.mu.Lock()
		if q.writerOwns {
			q.busy, q.writerOwns = false, false
		}
		if !q.busy && q.head < len(q.items) {
			it := q.take()
			q.busy, q.writerOwns = true, true
			q.mu.Unlock()
			return it, true
		}
		done := q.closed && !q.busy && q.head == len(q.items)
		q.mu.Unlock()
		if done {
			return item{}, false
		}
		select {
		case <-q.wake:
		case <-stop:
			return item{}, false
		}
	}
}

// popBatch is pop that also takes the items queued behind the first one,
// up to batchMax bytes in all, so the writer can hand a stream of small
// messages to the kernel in one write (see writeBatch). The items are
// appended to dst[:0].
func (q *queue) popBatch(stop <-chan struct{}, dst []item) ([]item, bool) {
	it, ok := q.pop(stop)
	if !ok {
		return dst[:0], false
	}
	dst = append(dst[:0], it)
	n := len(it.body)
	q.mu.Lock()
	for q.head < len(q.items) && n+len(q.items[q.head].body) <= batchMax {
		n += len(q.items[q.head].body)
		dst = append(dst, q.take())
	}
	q.mu.Unlock()
	return dst, true
}

// batchMax bounds the bytes of one popBatch.
const batchMax = 256 << 10

// writeBatch writes items in order, small ones gathered in buf (reused
// across calls: it is returned) and written together. It stops at the
// first error.
func writeBatch(w io.Writer, items []item, buf []byte) ([]byte, error) {
	if len(items) == 1 {
		return buf, items[0].write(w)
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
			buf = append(buf, it.body...)
		case len(it.body) <= directMax:
			buf = wire.AppendFrame(buf, it.body, it.edits...)
			if it.recycle {
				wire.Recycle(it.body)
			}
		default:
			if err := flush(); err != nil {
				return buf, err
			}
			if err := it.write(w); err != nil {
				return buf, err
			}
		}
	}
	return buf, flush()
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
	if q.room != nil {
		close(q.room)
		q.room = nil
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

// tryAcquire is acquire that does not wait: it reports false where
// acquire would block.
func (q *quota) tryAcquire(n int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.used == 0 || q.used+n <= q.limit {
		q.used += n
		return true
	}
	return false
}

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

// send queues body toward the client. A client whose queue is over its
// bound is not reading: it is disconnected (never block the router).
// Called with or without m.mu held.
func (c *client) send(body []byte) {
	c.sendItem(item{body: body})
}

// sendItem is send for an item with edits.
func (c *client) sendItem(it item) {
	c.push(it, nil)
}

// sendDirect is sendItem from the session reader, which may write to the
// client itself: when nothing is queued for the client and its writer is
// idle, the reader takes the client over, keeps adding what it routes
// there, and writes it all at once before it next waits for the backend
// (flushClients), saving the hand-off to the writer goroutine on the
// round-trip path and batching a burst into one write. That write is
// never waits where the connection has a non-blocking write (TryWrite: the
// editor's pipes after a handoff), else is bounded by a deadline of
// directWait, so a client that does not read costs the reader at most
// that once: what did not fit goes back to the queue for the writer
// goroutine, which then owns the client. Called without m.mu held.
func (s *session) sendDirect(c *client, it item) {
	if c.deadline == nil && c.try == nil {
		c.push(it, nil)
		return
	}
	if c.push(it, s) {
		s.direct = append(s.direct, c)
	}
}

// flushClients writes what the session reader gathered for the clients it
// took over (sendDirect). Called by the session reader before it blocks.
func (s *session) flushClients() {
	for i, c := range s.direct {
		if err := c.out.drain(c.writeDirect); err != nil {
			c.kill(fmt.Errorf("write to client: %w", err))
		}
		s.direct[i] = nil
	}
	s.direct = s.direct[:0]
}

// directWait bounds a direct write to a client (see sendDirect).
const directWait = 200 * time.Microsecond

// writeDirect writes a batch to the client for flushClients: the small
// messages at its head in one write, without waiting (TryWrite) or under a
// deadline; it hands back what it did not write.
func (c *client) writeDirect(items []item) ([]item, error) {
	frame := c.dbuf[:0]
	i := 0
	for ; i < len(items); i++ {
		it := &items[i]
		if it.framed || len(it.body) > directMax {
			break // large or partly written: the writer goroutine's
		}
		frame = wire.AppendFrame(frame, it.body, it.edits...)
		if it.recycle {
			wire.Recycle(it.body)
		}
	}
	c.dbuf = frame
	if len(frame) == 0 {
		return items, nil
	}
	var rest []item
	if c.try != nil {
		n, err := c.try.TryWrite(frame)
		if err == nil {
			if n < len(frame) {
				// The editor's pipe is full: the rest is the writer
				// goroutine's, which waits for room.
				rest = append(rest, item{body: append([]byte(nil), frame[n:]...), framed: true})
				c.m.event("direct-rest")
			}
			return append(rest, items[i:]...), nil
		}
		if !errors.Is(err, pipeio.ErrWouldBlock) {
			return nil, err
		}
	}
	if c.deadline == nil {
		rest = append(rest, item{body: append([]byte(nil), frame...), framed: true})
		return append(rest, items[i:]...), nil
	}
	if err := c.deadline.SetWriteDeadline(time.Now().Add(directWait)); err != nil {
		rest = append(rest, item{body: append([]byte(nil), frame...), framed: true})
		return append(rest, items[i:]...), nil
	}
	n, err := c.conn.Write(frame)
	if derr := c.deadline.SetWriteDeadline(time.Time{}); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		rest = append(rest, item{body: append([]byte(nil), frame[n:]...), framed: true})
	}
	return append(rest, items[i:]...), nil
}

// directMax is the largest body written directly (sendDirect, toServer
// with direct): larger ones are left to the writer goroutines, where their
// time on the wire blocks nobody else.
const directMax = 64 << 10

// push queues it (for owner, see queue.pushItem; the result is then
// whether the caller has taken the client's queue over and must drain
// it). A client over its bound is disconnected.
func (c *client) push(it item, owner any) bool {
	ok, drain := c.out.pushItem(it, c.m.cfg.ClientQueue, owner)
	if !ok {
		c.out.mu.Lock()
		frozen := c.out.frozen
		c.out.mu.Unlock()
		select {
		case <-c.stop:
		default:
			if frozen {
				c.log.Warn("lsp client read nothing while its messages queued; disconnecting it", "after", c.m.cfg.ClientFrozen)
				go c.kill(errFrozenClient)
			} else {
				c.log.Warn("lsp client is not reading its messages; disconnecting it", "queued_limit", c.m.cfg.ClientQueue)
				go c.kill(errSlowClient)
			}
		}
	}
	return drain
}

// toServer queues body for the current backend. release (if set) is called
// once it has been written or dropped. Called with mu held; never blocks.
func (m *Mux) toServer(body []byte, release func()) bool {
	return m.toServerItem(item{body: body, release: release})
}

// toServerItem is toServer for an item with edits.
func (m *Mux) toServerItem(it item) bool {
	if m.sess == nil {
		if it.release != nil {
			it.release()
		}
		return false
	}
	ok, _ := m.sess.q.pushItem(it, 0, nil)
	return ok
}

// toServerDirect is toServerItem for c's reader: when the backend's queue
// is empty and idle, or already c's, c's reader becomes (or stays) its
// writer and writes what gathered before it next blocks (flushServer):
// no hand-off to the session writer goroutine on the round-trip path, and
// a burst of small messages leaves in one write. Large items always go to
// the writer goroutine. Called with mu held, from c's reader.
func (m *Mux) toServerDirect(c *client, it item) {
	if m.sess == nil {
		if it.release != nil {
			it.release()
		}
		return
	}
	if len(it.body) > directMax || (c.claimed != nil && c.claimed != m.sess) {
		m.sess.q.pushItem(it, 0, nil)
		return
	}
	if _, claimed := m.sess.q.pushItem(it, 0, c); claimed {
		c.claimed = m.sess
	}
}

// flushServer writes what c's reader gathered for the backend (see
// toServerDirect). c's reader calls it before anything that may block:
// reading the client, waiting for quota or for the backend to run.
// Called without m.mu held.
func (m *Mux) flushServer(c *client) {
	if s := c.claimed; s != nil {
		c.claimed = nil
		m.drainTo(s)
	}
}

// broadcast sends body to every client that has sent initialize (used for
// notifications that concern all of them). Called with mu held.
func (m *Mux) broadcast(body []byte) {
	for c := range m.clients {
		if c.sentInit {
			c.send(body)
		}
	}
}

// touchWriter writes to w in pieces of at most touchChunk bytes and counts
// each piece written as progress of q (see queue.stuck), so a client that
// reads a large message slowly is not taken for a frozen one.
type touchWriter struct {
	w io.Writer
	q *queue
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
