package mux

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/procref/procref/internal/pipeio"
	"github.com/procref/procref/internal/wire"
)

// Writing directly. The server's reader routes a message to a client; if
// nothing is queued for that client and its writer goroutine is idle, the
// reader takes the client's queue over (PushItem with itself as owner),
// keeps adding what it routes there, and writes it all at once before it
// next waits for the server (Direct.Flush): no hand-off to the writer
// goroutine on the round-trip path, and a burst leaves in one write. The
// same holds the other way: a client's reader may write to the server's
// stdin itself (Queue.drainTo) before it next reads its client.

// DirectWriter writes batches to one client's connection for a producer
// that took the client's queue over. That write never waits where the
// connection has a non-blocking write (TryWrite: the editor's pipes after
// a handoff), else is bounded by a deadline of directWait, so a client
// that does not read costs the producer at most that once: what did not
// fit goes back to the queue for the writer goroutine, which then owns
// the client. A DirectWriter is used by one goroutine at a time: the one
// that owns the queue.
type DirectWriter struct {
	conn     io.Writer
	frame    Framing
	deadline interface{ SetWriteDeadline(time.Time) error } // conn's, if it has one
	try      interface{ TryWrite([]byte) (int, error) }     // conn's non-blocking write, if it has one
	buf      []byte                                         // the frame buffer
	// OnRest, if set, is called when a non-blocking write was partial
	// (tests use it to see the hand-over to the writer goroutine).
	OnRest func()
}

// NewDirectWriter returns the direct writer of conn, framing with f.
func NewDirectWriter(conn io.Writer, f Framing) *DirectWriter {
	d := &DirectWriter{conn: conn, frame: f}
	d.deadline, _ = conn.(interface{ SetWriteDeadline(time.Time) error })
	d.try, _ = conn.(interface{ TryWrite([]byte) (int, error) })
	return d
}

// Bounded reports whether a direct write to the connection can be
// bounded (a non-blocking write or a write deadline). If not, producers
// must leave the client to its writer goroutine.
func (d *DirectWriter) Bounded() bool { return d.try != nil || d.deadline != nil }

// directWait bounds a direct write to a client (see DirectWriter).
const directWait = 200 * time.Microsecond

// Write writes a batch for Queue.drainWith: the small messages at its head in
// one write, without waiting (TryWrite) or under a deadline; it hands back
// what it did not write.
func (d *DirectWriter) Write(items []Item) ([]Item, error) {
	frame := d.buf[:0]
	i := 0
	for ; i < len(items); i++ {
		it := &items[i]
		if it.framed || len(it.Body) > directMax {
			break // large or partly written: the writer goroutine's
		}
		frame = d.frame.AppendFrame(frame, it.Body, it.Edits)
		if it.Recycle {
			wire.Recycle(it.Body)
		}
	}
	d.buf = frame
	if len(frame) == 0 {
		return items, nil
	}
	rest := func(from int) []Item {
		r := []Item{{Body: append([]byte(nil), frame[from:]...), framed: true}}
		return append(r, items[i:]...)
	}
	if d.try != nil {
		n, err := d.try.TryWrite(frame)
		if err == nil {
			if n < len(frame) {
				// The editor's pipe is full: the rest is the writer
				// goroutine's, which waits for room.
				if d.OnRest != nil {
					d.OnRest()
				}
				return rest(n), nil
			}
			return items[i:], nil
		}
		if !errors.Is(err, pipeio.ErrWouldBlock) {
			return nil, err
		}
	}
	if d.deadline == nil {
		return rest(0), nil
	}
	if err := d.deadline.SetWriteDeadline(time.Now().Add(directWait)); err != nil {
		return rest(0), nil
	}
	n, err := d.conn.Write(frame)
	if derr := d.deadline.SetWriteDeadline(time.Time{}); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		return rest(n), nil
	}
	return items[i:], nil
}

// Direct is the set of client queues one producer (the server's reader)
// has taken over and must write before it blocks. It is owned by that
// producer.
type Direct struct {
	taken []*Client
}

// Add records that the producer took client c's queue over (PushItem
// reported claimed).
func (d *Direct) Add(c *Client) { d.taken = append(d.taken, c) }

// Flush writes what was gathered for every queue taken over, and lets
// them go. Called by the producer before it blocks, without locks that
// writes must not block.
func (d *Direct) Flush() {
	for i, c := range d.taken {
		if err := c.out.drainWith(c.direct.Write); err != nil {
			c.directFailed(err)
		}
		d.taken[i] = nil
	}
	d.taken = d.taken[:0]
}
