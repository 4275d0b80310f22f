package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/procref/procref/internal/restarts"
	"github.com/procref/procref/internal/wire"
)

// Policy is a protocol's rules on top of the Core: what to do with the
// server's messages, at a start and at an end. Each protocol (lspmux for
// LSP, mcp for MCP and plain JSON-RPC) is one. A client's side is the
// Client's, with the policy's ClientPolicy (client.go).
type Policy interface {
	// Started is called on the Core's goroutine with each new instance,
	// after its reader and writer run and before it takes traffic (the
	// phase is still Starting or Restarting; Current is inst). It may
	// block (LSP initializes the server here); an error ends the instance
	// as a failed start. The instance takes traffic (phase Running) when
	// Started returns nil, or earlier where Started calls Core.Up.
	Started(inst *Instance) error
	// FromServer routes one message the server wrote, on the instance's
	// reader goroutine, in order, without the lock held.
	FromServer(inst *Instance, body []byte)
	// Crashed is called with the lock held when an instance that came up
	// ended unasked (cause says how), or when a restart failed to start
	// (inst nil). The phase is Restarting and Current nil: the policy
	// answers what was in flight. It must not block.
	Crashed(inst *Instance, cause error)
	// NeverUp is called without the lock when the first instance since
	// the Core left Idle failed: it did not start, Started failed, or it
	// ended before Started returned (inst then set; its exit status is
	// in). The Core is Idle again: the next Start tries a new server.
	NeverUp(inst *Instance, cause error)
	// GaveUp is called without the lock when a crash found the restart
	// budget spent (restarts within window). The Core is Stopped.
	GaveUp(cause error, restarts int, window time.Duration)
}

// Config configures a Core. Start, Framing, NewReader and Lock are
// required.
type Config struct {
	// Start starts a server process; called at Start and again for each
	// restart. ctx ends when the Core stops.
	Start func(ctx context.Context) (Server, error)
	// Framing frames messages on the server's stdin, NewReader reads them
	// from its stdout.
	Framing   Framing
	NewReader func(io.Reader) wire.MessageReader
	// Lock is the policy's lock; it guards the Core's state too, so a
	// policy sees the phase and the current instance change atomically
	// with its routing tables.
	Lock sync.Locker
	// MaxRestarts crashes within RestartWindow are restarted (defaults 3,
	// one minute; negative: none). Restarts after the first within the
	// window wait a growing backoff (restarts.Budget).
	MaxRestarts   int
	RestartWindow time.Duration
	Logger        *slog.Logger
}

// Core runs the one shared server of a multiplexer: start on demand,
// supervision, bounded restart with backoff, stop. Its state changes in
// one place (supervise, with Start and Shut) under Config.Lock.
type Core struct {
	cfg    Config
	pol    Policy
	log    *slog.Logger
	ctx    context.Context // ends at Stop; passed to Start
	cancel context.CancelFunc
	wg     sync.WaitGroup // supervise and every instance's goroutines

	// guarded by cfg.Lock
	life   lifecycle
	cur    *Instance
	starts int
	shut   bool
	budget restarts.Budget
}

// NewCore returns a Core in phase Idle; nothing starts before Start.
func NewCore(cfg Config, pol Policy) *Core {
	if cfg.MaxRestarts == 0 {
		cfg.MaxRestarts = 3
	}
	if cfg.RestartWindow <= 0 {
		cfg.RestartWindow = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Core{cfg: cfg, pol: pol, log: cfg.Logger, ctx: ctx, cancel: cancel,
		budget: restarts.Budget{Max: cfg.MaxRestarts, Window: cfg.RestartWindow}}
}

// Phase returns the server's phase. Callers hold the lock.
func (c *Core) Phase() Phase { return c.life.Phase() }

// Changed returns a channel closed at the next phase change. Callers hold
// the lock.
func (c *Core) Changed() <-chan struct{} { return c.life.Changed() }

// Current returns the instance that takes traffic (or is starting), nil
// if none. Callers hold the lock.
func (c *Core) Current() *Instance { return c.cur }

// Starts returns how many server processes were started. Callers hold the
// lock.
func (c *Core) Starts() int { return c.starts }

// Recent returns the restarts within the window. Callers hold the lock.
func (c *Core) Recent() int { return c.budget.Recent() }

// Start leaves Idle: the phase becomes Starting and a server is started
// on the Core's goroutine. It reports false, doing nothing, in any other
// phase. Callers hold the lock; it does not block.
func (c *Core) Start() bool {
	if c.life.Phase() != Idle || c.shut {
		return false
	}
	c.life.Set(Starting)
	c.wg.Add(1)
	go c.supervise()
	return true
}

// supervise runs servers from Start until the Core stops or the first
// instance fails: start, Started, wait for the end, restart.
func (c *Core) supervise() {
	defer c.wg.Done()
	up := false // an instance came up since Start
	for {
		inst, cause := c.runOnce(&up)
		if c.stopping() {
			// Stop owns the end: a backend being asked to leave must not
			// be killed here because Stop closed its pipes.
			return
		}
		if inst != nil {
			inst.teardown()
			if cause == nil {
				cause = endCause(inst.ExitErr())
			}
		}
		if !up {
			c.toIdle()
			c.pol.NeverUp(inst, cause)
			return
		}
		if !c.crashed(inst, cause) || !c.backoff() {
			return
		}
	}
}

// runOnce starts one instance and waits for its end. It returns the
// instance (nil if none started) and, if it did not come up, why; a nil
// error means it came up and has ended since.
func (c *Core) runOnce(up *bool) (*Instance, error) {
	inst, err := c.start()
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Error("starting the server failed", "err", err)
		}
		return nil, fmt.Errorf("cannot start the server: %w", err)
	}
	if err := c.pol.Started(inst); err != nil {
		return inst, err
	}
	c.cfg.Lock.Lock()
	*up = c.Up(inst)
	c.cfg.Lock.Unlock()
	<-inst.Ended()
	return inst, nil
}

func endCause(exit error) error {
	if exit == nil {
		return errors.New("the server exited")
	}
	return fmt.Errorf("the server exited (%w)", exit)
}

// start starts a server process as the current instance.
func (c *Core) start() (*Instance, error) {
	srv, err := c.cfg.Start(c.ctx)
	if err != nil {
		return nil, err
	}
	c.cfg.Lock.Lock()
	c.starts++
	inst := &Instance{n: c.starts, srv: srv, q: newQueue(c.cfg.Framing), log: c.log,
		readerDone: make(chan struct{}), writerDone: make(chan struct{}),
		exited: make(chan struct{}), ended: make(chan struct{})}
	inst.run(&c.wg, c.cfg.NewReader, c.pol.FromServer)
	shut := c.shut
	if !shut {
		c.cur = inst
	}
	c.cfg.Lock.Unlock()
	if shut {
		inst.teardown()
		return nil, errors.New("stopped")
	}
	return inst, nil
}

func (c *Core) stopping() bool {
	c.cfg.Lock.Lock()
	defer c.cfg.Lock.Unlock()
	return c.shut
}

func (c *Core) toIdle() {
	c.cfg.Lock.Lock()
	c.cur = nil
	c.life.Set(Idle)
	c.cfg.Lock.Unlock()
}

// crashed handles the end nobody asked for: the policy answers what was
// in flight, and unless the budget is spent the caller restarts (true).
//
// Known race, answered here: between the instance's end and this point
// the phase was still Running, so clients may have sent into its closed
// queue. Those sends were dropped; requests among them are in the
// policy's tables and get their answer in Crashed.
func (c *Core) crashed(inst *Instance, cause error) bool {
	c.cfg.Lock.Lock()
	if c.shut {
		c.cfg.Lock.Unlock()
		return false
	}
	c.log.Error("the server ended unexpectedly", "err", cause)
	c.cur = nil
	c.life.Set(Restarting)
	c.pol.Crashed(inst, cause)
	if c.budget.Spend(time.Now()) {
		c.cfg.Lock.Unlock()
		return true
	}
	c.shut = true
	c.life.Set(Stopped)
	n := c.budget.Recent()
	c.cfg.Lock.Unlock()
	c.pol.GaveUp(cause, n, c.cfg.RestartWindow)
	return false
}

// backoff waits before a restart when the server was already restarted
// within the window (restarts.Budget), so a server that dies at once does
// not burn the budget in a blink. The first restart is immediate. It
// reports false if the Core stopped meanwhile.
func (c *Core) backoff() bool {
	c.cfg.Lock.Lock()
	d := c.budget.Backoff()
	c.cfg.Lock.Unlock()
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// Up marks inst as taking traffic (phase Running) if it is still the
// current instance, and reports whether it is. A policy calls it from
// Started, with the lock held, where the change must be atomic with its
// own (LSP: with the waiting clients admitted); otherwise the Core calls
// it when Started returns.
func (c *Core) Up(inst *Instance) bool {
	if c.cur != inst || c.shut {
		return false
	}
	if c.life.Phase() != Running {
		c.life.Set(Running)
	}
	return true
}

// WaitRunning blocks until the server takes traffic (true), or the Core
// stopped or gone closed (false). before, if set, runs before each wait:
// a client's reader flushes what it claimed (Claim), so that it never
// waits while holding the server's queue. Called without the lock.
func (c *Core) WaitRunning(gone <-chan struct{}, before func()) bool {
	for {
		c.cfg.Lock.Lock()
		p, changed := c.life.Phase(), c.life.Changed()
		c.cfg.Lock.Unlock()
		switch p {
		case Running:
			return true
		case Stopped:
			return false
		}
		if before != nil {
			before()
		}
		select {
		case <-changed:
		case <-gone:
			return false
		}
	}
}

// Shut stops the Core for good (phase Stopped; nothing starts after it)
// and returns the current instance, nil if none, for the caller to Stop.
// Callers hold the lock.
func (c *Core) Shut() *Instance {
	c.shut = true
	if c.life.Phase() != Stopped {
		c.life.Set(Stopped)
	}
	inst := c.cur
	c.cur = nil
	return inst
}

// Stop ends inst (from Shut; nil is fine) and waits for every goroutine
// of the Core. goodbye, if set, asks the server to leave (LSP: shutdown,
// exit) and may block up to timeout; then what is queued is written,
// stdin closed, and the server killed unless it exited within timeout
// (each step also bounded by ctx). Called without the lock; it returns
// the error of a kill that was needed and failed.
func (c *Core) Stop(ctx context.Context, inst *Instance, timeout time.Duration, goodbye func(*Instance)) error {
	var err error
	if inst != nil {
		if goodbye != nil {
			goodbye(inst)
		}
		inst.q.Close(false) // the writer sends what is queued, then stops
		wait(ctx, inst.writerDone, timeout)
		inst.srv.Close()
		if !wait(ctx, inst.exited, timeout) {
			if ctx.Err() != nil {
				c.log.Info("stopping at once: killing the server", "why", context.Cause(ctx))
			} else {
				c.log.Warn("the server did not exit after its stdin closed; killing it", "waited", timeout)
			}
			err = inst.srv.Kill()
		}
		inst.teardown()
	}
	c.cancel()
	c.wg.Wait()
	return err
}

// wait reports whether ch closed within d (and before ctx ended).
func wait(ctx context.Context, ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
