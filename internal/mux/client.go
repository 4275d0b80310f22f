package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/wire"
)

// ClientPolicy is a protocol's rules for one client, called by
// Client.Serve on the client's reader goroutine, in order.
type ClientPolicy interface {
	// FromClient routes one message the client sent (body is valid until
	// the next read). It may block: waits for the server to run, for room
	// in a bound; the client's own reader is the only one waiting. A
	// non-nil error ends the client with it (the policy has queued its
	// error answer, if any).
	FromClient(body []byte) error
	// ReadFailed is told why reading the client stopped: io.EOF at a
	// clean end between messages, else a framing error or the
	// connection's. It may queue an answer for the client (a message
	// over the size limit) and returns the reason the client ends with.
	// It is not called for a client that was ending already.
	ReadFailed(err error) error
	// Left is called once the reader has stopped, before Serve returns:
	// the policy forgets the client (answers the server's requests it
	// held, cancels its requests in flight, drops its state). why is the
	// client's end reason (Err).
	Left(why error)
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Framing frames the messages written to the client.
	Framing Framing
	// MaxQueue bounds the bytes queued toward the client (0: none);
	// Frozen is how long it may take nothing while messages for it queue
	// (0: forever). Past either it is not reading: it is ended with
	// ErrClientStalled or ErrClientFrozen.
	MaxQueue int64
	Frozen   time.Duration
	// MaxInflight bounds its requests in flight at the server (Bound;
	// DefaultMaxInflight if 0).
	MaxInflight int
	Logger      *slog.Logger
}

// The ends of a client that stopped reading.
var (
	// ErrClientStalled: more was queued for the client than its bound.
	ErrClientStalled = errors.New("the client stopped reading its messages")
	// ErrClientFrozen: the client took nothing for the frozen time while
	// its messages queued (a frozen window).
	ErrClientFrozen = errors.New("the client read nothing while its messages queued (frozen window)")
)

// flushWait bounds how long an ending client's queue may take to be
// written before its connection is closed: a client that does not read
// loses what was left.
const flushWait = time.Second

// Client is one client's connection at the multiplexer, the same for
// every protocol: its queue toward the client (written by its writer
// goroutine, or directly by the server's reader when it was empty:
// SendFrom), its reader's claim on the server's queue (ToServer,
// FlushServer), its bound of requests in flight, and its end.
//
// A client ends once, for the first reason given (End): its end notice
// (hostproto.EndNotice, where EndReason says why) is queued as its last
// message, what is queued is written within flushWait, and then its
// connection is closed, which ends the reader. So an error answer queued
// before End always goes out first, and a client that does not read
// costs at most flushWait.
type Client struct {
	conn   io.ReadWriteCloser
	out    *Queue
	direct *DirectWriter
	claim  Claim // the reader's only
	bound  *Bound
	max    int64
	frozen time.Duration
	log    *slog.Logger

	ending chan struct{} // closed by End
	once   sync.Once
	err    error         // why; set before ending closes
	wrote  chan struct{} // the writer goroutine returned
}

// NewClient returns the client on conn and starts its writer goroutine.
// Its owner must call Serve, which returns once both have stopped; the
// client owns conn from here and closes it.
func NewClient(conn io.ReadWriteCloser, cfg ClientConfig) *Client {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{
		conn:   conn,
		out:    NewClientQueue(cfg.Framing, cfg.Frozen),
		direct: NewDirectWriter(conn, cfg.Framing),
		bound:  NewBound(cfg.MaxInflight),
		max:    cfg.MaxQueue,
		frozen: cfg.Frozen,
		log:    log,
		ending: make(chan struct{}),
		wrote:  make(chan struct{}),
	}
	go c.write()
	return c
}

// write is the writer goroutine: the queue until End closed it and it is
// written, then the connection is closed (which ends the reader).
func (c *Client) write() {
	defer close(c.wrote)
	if err := c.out.Run(c.out.TouchWriter(c.conn), nil); err != nil {
		c.End(fmt.Errorf("write to client: %w", err))
	}
	c.conn.Close()
}

// End ends the client for err (see Client); only the first call counts.
// last, if any, are queued before the end notice (the error answer or
// message that explains the end): with the reason in one step, so a
// client that reads them and leaves at once still ends for err, not for
// its EOF (Known race, answered here: sent apart, the client's reader
// could see that EOF and end the client first). It never blocks: call
// it from anywhere, with or without locks.
func (c *Client) End(err error, last ...[]byte) {
	c.once.Do(func() {
		c.err = err
		for _, b := range last {
			c.out.Push(b, 0, nil)
		}
		if why := EndReason(err); why != "" {
			c.out.Push(hostproto.EndNotice(why), 0, nil)
		}
		close(c.ending)
		// The writer closes the connection once the queue is written;
		// this closes it for a client that does not read (the writer's
		// Write then fails). Closing it twice is harmless.
		time.AfterFunc(flushWait, func() { c.conn.Close() })
		c.out.Close(false)
	})
}

// Ending is closed once the client is ending: waits on its behalf stop.
func (c *Client) Ending() <-chan struct{} { return c.ending }

// Err returns why the client ended (nil before End, and for End(nil)).
func (c *Client) Err() error {
	if !isEnding(c.ending) {
		return nil
	}
	return c.err
}

// Send queues it toward the client. It never blocks; a client that is not
// reading (over MaxQueue, or frozen) is ended instead.
func (c *Client) Send(it Item) { c.push(it, nil) }

// SendFrom is Send from inst's reader (in the policy's FromServer), which
// writes to the client itself when nothing is queued for it (DirectWriter)
// before it next reads the server.
func (c *Client) SendFrom(inst *Instance, it Item) {
	if !c.direct.Bounded() {
		c.push(it, nil)
		return
	}
	if c.push(it, inst) {
		inst.direct.Add(c) // written by inst's reader before it next reads the server
	}
}

// push queues it for owner (see Queue.PushItem) and reports whether owner
// took the queue over.
func (c *Client) push(it Item, owner any) bool {
	ok, claimed := c.out.PushItem(it, c.max, owner)
	if !ok && !isEnding(c.ending) {
		if c.out.Frozen() {
			c.log.Warn("client read nothing while its messages queued; disconnecting it", "after", c.frozen)
			c.End(fmt.Errorf("%w (none taken for %v)", ErrClientFrozen, c.frozen))
		} else {
			c.log.Warn("client is not reading its messages; disconnecting it", "queued_limit", c.max)
			c.End(fmt.Errorf("%w (over %d MiB queued)", ErrClientStalled, c.max>>20))
		}
	}
	return claimed
}

// directFailed ends the client after a failed direct write.
func (c *Client) directFailed(err error) { c.End(fmt.Errorf("write to client: %w", err)) }

// ToServer queues it toward inst from the client's reader, which writes
// it to the server itself when the server's queue is free (Claim) before
// it next blocks. Callers hold the policy's lock.
func (c *Client) ToServer(inst *Instance, it Item) { c.claim.Send(inst, it) }

// FlushServer writes what the reader gathered for the server (ToServer).
// The reader calls it before anything that may block; policies call it
// before their own waits. Called without the policy's lock.
func (c *Client) FlushServer() { c.claim.Flush() }

// WaitRunning blocks until core's server runs (true), or the client ends
// or core stops (false), writing what the reader gathered for the server
// before it waits: messages that need the server wait here while it
// starts or restarts. Called by the client's reader only.
func (c *Client) WaitRunning(core *Core) bool { return core.WaitRunning(c.ending, c.claim.Flush) }

// Bound is the client's bound of requests in flight at the server.
func (c *Client) Bound() *Bound { return c.bound }

// Queue is the client's queue (to wait for room in it).
func (c *Client) Queue() *Queue { return c.out }

// OnDirectRest sets a hook called when a direct write was partial (tests).
func (c *Client) OnDirectRest(f func()) { c.direct.OnRest = f }

// Serve reads the client's messages with r and hands each to p until the
// client ends: its input ended or failed (ReadFailed), p refused a message,
// End was called, or ctx ended (the client then ends with ErrClosed). What
// the reader gathered for the server is written before every read that
// may block. It calls p.Left, waits for the writer, and returns why the
// client ended (nil or io.EOF for a clean end).
func (c *Client) Serve(ctx context.Context, r wire.MessageReader, p ClientPolicy) error {
	stop := context.AfterFunc(ctx, func() { c.End(fmt.Errorf("%w: %w", ErrClosed, ctx.Err())) })
	defer stop()
	c.read(r, p)
	c.claim.Flush()
	p.Left(c.Err())
	<-c.wrote
	return c.Err()
}

// read is Serve's loop.
func (c *Client) read(r wire.MessageReader, p ClientPolicy) {
	ready, _ := r.(interface{ Ready() bool })
	for {
		if ready == nil || !ready.Ready() {
			c.claim.Flush() // Read may block: never while holding the server
		}
		body, err := r.Read()
		if isEnding(c.ending) {
			return // ended meanwhile: what it sent since is not routed
		}
		if err != nil {
			c.End(p.ReadFailed(err))
			return
		}
		if err := p.FromClient(body); err != nil {
			c.End(err)
			return
		}
	}
}

func isEnding(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
