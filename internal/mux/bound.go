package mux

import "sync/atomic"

// Fairness between clients at the one shared server. Each client may have
// at most a bound of requests in flight at the server (DefaultMaxInflight
// unless the policy's Config says otherwise); its reader stops reading
// the client's input while it has that many (Bound.Wait), so one client
// that pipelines thousands of requests cannot put more than that many
// ahead of another client's request. Toward the server the clients'
// requests are then written round-robin (Item.Turn; the rule is at
// Queue): one client at a time in turn, one message per turn, a client
// with nothing queued skipped. So while one client floods, another's
// request waits in the host's queue behind at most one of the flooder's
// per turn, and at the server behind at most the bound of them.

// DefaultMaxInflight is the default bound N of one client's requests in
// flight at the server: N = 32.
const DefaultMaxInflight = 32

// Bound counts one client's requests in flight at the server against a
// maximum. Add and Done may be called from any goroutine (the
// multiplexer calls them with its lock held, where it changes its routing
// tables); Wait is called only by the client's reader.
type Bound struct {
	n    atomic.Int64
	max  int64
	room chan struct{} // cap 1: a request ended, or Wake
}

// NewBound returns a bound of max requests (DefaultMaxInflight if max <= 0).
func NewBound(max int) *Bound {
	if max <= 0 {
		max = DefaultMaxInflight
	}
	return &Bound{max: int64(max), room: make(chan struct{}, 1)}
}

// Add counts one more request in flight.
func (b *Bound) Add() { b.n.Add(1) }

// Done counts one request as no longer in flight (answered, failed or
// abandoned) and wakes the reader if it waits.
func (b *Bound) Done() {
	b.n.Add(-1)
	b.Wake()
}

// Wake makes a waiting reader look again (the policy's reason to let it
// through may have changed: LSP's server asked the client something).
func (b *Bound) Wake() {
	select {
	case b.room <- struct{}{}:
	default:
	}
}

// Count returns the requests in flight.
func (b *Bound) Count() int64 { return b.n.Load() }

// full reports whether the client has the maximum in flight.
func (b *Bound) full() bool { return b.n.Load() >= b.max }

// Wait blocks while the client has the maximum in flight. Before each
// wait it calls pass, if set: true lets the reader through at once (a
// server that holds the client's requests until the client answers it
// must get that answer, which is behind this request in its input); then
// before, if set (to write what the reader gathered: it may be those
// requests). It returns false if gone closed meanwhile.
func (b *Bound) Wait(gone <-chan struct{}, pass func() bool, before func()) bool {
	for b.full() {
		if pass != nil && pass() {
			return true
		}
		if before != nil {
			before()
		}
		select {
		case <-b.room:
		case <-gone:
			return false
		}
	}
	return true
}
