package handshake

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Guard limits what unauthenticated peers can cost a host: any local user
// can connect to its loopback port. At most [MaxPending] accepted
// connections wait for their handshake line at once (a new one pushes out
// the oldest once that has waited 100 ms, so a peer that holds connections
// open cannot keep a real client out, and descriptors stay bounded; the
// pushed-out one is told "busy" and a real client dials again); accept
// errors (EMFILE, ENFILE, ...) back off instead of spinning; and refused
// handshakes and accept errors are logged as one summary line per
// [SummaryInterval], not a line each. The caller keeps a short deadline on each handshake. A Guard is
// safe for concurrent use.
type Guard struct {
	log      *slog.Logger
	interval time.Duration // SummaryInterval; shorter in tests

	mu        sync.Mutex
	pending   map[net.Conn]time.Time // accepted, handshake not yet read
	refused   int                    // since the last summary
	acceptErr int                    // since the last summary
	last      error                  // the latest refusal or accept error
	scheduled bool                   // a summary is due
}

// MaxPending bounds the connections waiting for their handshake.
const MaxPending = 64

// minPushOut is how long a pending connection has before a new one may
// push it out.
const minPushOut = 100 * time.Millisecond

// SummaryInterval is how often, at most, a Guard logs its summary.
const SummaryInterval = 10 * time.Second

// Accept back-off bounds.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// NewGuard returns a Guard that logs to log.
func NewGuard(log *slog.Logger) *Guard {
	return &Guard{log: log, interval: SummaryInterval, pending: map[net.Conn]time.Time{}}
}

// Accept blocks until ln gives a connection, which is then pending until
// [Guard.Done]; it closes the oldest pending connection if MaxPending are
// already waiting. A failed accept waits (5 ms, doubling up to 1 s while
// failures continue) and tries again. Accept returns an error only when ln
// is closed or ctx is done.
func (g *Guard) Accept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	backoff := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err == nil {
			g.admit(conn)
			return conn, nil
		}
		if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
			return nil, err
		}
		g.count(false, err)
		backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// admit makes conn pending. With MaxPending already waiting it first
// pushes out the oldest, once that one has had minPushOut: a real client
// sends its line right after connecting, so only a burst of real clients
// can fill the set with young connections, and they are waited for.
func (g *Guard) admit(conn net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.pending) >= MaxPending {
		var oldest net.Conn
		var at time.Time
		for c, t := range g.pending {
			if oldest == nil || t.Before(at) {
				oldest, at = c, t
			}
		}
		if wait := minPushOut - time.Since(at); wait > 0 {
			g.mu.Unlock()
			time.Sleep(wait)
			g.mu.Lock()
			continue
		}
		delete(g.pending, oldest)
		// Tell a real client to try again (a fresh socket's buffer takes
		// the line at once; the deadline only guards against a stuck one).
		// Its handler's read fails now and reports through Done.
		oldest.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		io.WriteString(oldest, busyAnswer+"\n")
		oldest.Close()
	}
	g.pending[conn] = time.Now()
}

// Done ends conn's pending state once its handshake line has been read;
// err is ReadRequest's error (nil: authenticated), counted as a refusal.
func (g *Guard) Done(conn net.Conn, err error) {
	g.mu.Lock()
	delete(g.pending, conn)
	g.mu.Unlock()
	if err != nil {
		g.count(true, err)
	}
}

// count adds one refusal or accept error to the summary and schedules it.
func (g *Guard) count(refused bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if refused {
		g.refused++
	} else {
		g.acceptErr++
	}
	g.last = err
	if !g.scheduled {
		g.scheduled = true
		time.AfterFunc(g.interval, g.summary)
	}
}

// Flush logs the summary now if anything is counted (a host that exits
// calls it, so the last interval is not lost).
func (g *Guard) Flush() { g.summary() }

// summary logs and resets the counts.
func (g *Guard) summary() {
	g.mu.Lock()
	refused, acceptErr, last := g.refused, g.acceptErr, g.last
	g.refused, g.acceptErr, g.last, g.scheduled = 0, 0, nil, false
	g.mu.Unlock()
	if refused == 0 && acceptErr == 0 {
		return
	}
	g.log.Warn("summary: refused handshakes (no or wrong token, not a handshake, too slow, or pushed out by newer ones) and failed accepts",
		"refused", refused, "accept_errors", acceptErr, "interval", g.interval, "last_err", last)
}
