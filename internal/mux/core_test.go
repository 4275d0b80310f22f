package mux

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/wire"
)

// recPolicy records what the core calls, and checks the lock contract:
// Crashed with the lock held, the others without it.
type recPolicy struct {
	t      *testing.T
	mu     sync.Mutex
	events chan string
	msgs   chan string
	core   *Core
	block  chan struct{} // Started waits for it when set
	fail   error         // Started's answer
}

func newRecPolicy(t *testing.T) *recPolicy {
	return &recPolicy{t: t, events: make(chan string, 64), msgs: make(chan string, 64)}
}

func (p *recPolicy) unlocked(hook string) {
	if !p.mu.TryLock() {
		p.t.Errorf("%s called with the lock held", hook)
		return
	}
	p.mu.Unlock()
}

func (p *recPolicy) Started(inst *Instance) error {
	p.unlocked("Started")
	p.mu.Lock()
	if p.core.Current() != inst || p.core.Phase() == Running {
		p.t.Errorf("Started: current %v, phase %v", p.core.Current(), p.core.Phase())
	}
	p.mu.Unlock()
	p.events <- "started"
	if p.block != nil {
		<-inst.Ended()
		return errors.New("ended while starting")
	}
	return p.fail
}

func (p *recPolicy) FromServer(inst *Instance, body []byte) {
	p.unlocked("FromServer")
	p.msgs <- string(body)
}

func (p *recPolicy) Crashed(inst *Instance, cause error) {
	if p.mu.TryLock() {
		p.mu.Unlock()
		p.t.Error("Crashed called without the lock")
	}
	if p.core.Phase() != Restarting || p.core.Current() != nil {
		p.t.Errorf("Crashed: phase %v, current %v", p.core.Phase(), p.core.Current())
	}
	p.events <- "crashed"
}

func (p *recPolicy) NeverUp(inst *Instance, cause error) {
	p.unlocked("NeverUp")
	p.events <- "neverup: " + cause.Error()
}

func (p *recPolicy) GaveUp(cause error, restarts int, window time.Duration) {
	p.unlocked("GaveUp")
	p.events <- "gaveup"
}

// next returns the next hook call, failing after a bound.
func (p *recPolicy) next(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-p.events:
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no hook call within 30s")
		return ""
	}
}

func (p *recPolicy) want(t *testing.T, ev string) {
	t.Helper()
	if got := p.next(t); got != ev {
		t.Fatalf("hook %q, want %q", got, ev)
	}
}

// newTestCore runs `sh -c script` as the server (a real process, its
// stdout read as lines).
func newTestCore(t *testing.T, script string, maxRestarts int) (*Core, *recPolicy) {
	p := newRecPolicy(t)
	p.core = NewCore(Config{
		Start: func(ctx context.Context) (Server, error) {
			if script == "" {
				return nil, errors.New("no such server")
			}
			return Exec(exec.Command("sh", "-c", script))
		},
		Framing:     lineFraming{},
		NewReader:   func(r io.Reader) wire.MessageReader { return wire.NDJSON.NewReader(r, 0) },
		Lock:        &p.mu,
		MaxRestarts: maxRestarts,
	}, p)
	t.Cleanup(func() { stop(t, p) })
	return p.core, p
}

func stop(t *testing.T, p *recPolicy) {
	p.mu.Lock()
	inst := p.core.Shut()
	p.mu.Unlock()
	if err := p.core.Stop(context.Background(), inst, 2*time.Second, nil); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func (p *recPolicy) current() *Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.core.Current()
}

func (p *recPolicy) waitPhase(t *testing.T, want Phase) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		ph, ch := p.core.Phase(), p.core.Changed()
		p.mu.Unlock()
		if ph == want {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("phase %v, want %v", ph, want)
		}
	}
}

// The core starts on Start, relays both ways, restarts a killed server
// (Crashed with the lock held, a new instance numbered 2), and gives up
// when the budget is spent.
func TestCoreCrashRestartGiveUp(t *testing.T) {
	c, p := newTestCore(t, "cat", 1)
	p.mu.Lock()
	if !c.Start() || c.Start() {
		t.Fatal("Start from Idle must start once")
	}
	p.mu.Unlock()
	p.want(t, "started")
	p.waitPhase(t, Running)
	inst := p.current()
	inst.Push([]byte(`{"n":1}`))
	if got := <-p.msgs; got != `{"n":1}` {
		t.Fatalf("server echoed %q", got)
	}
	inst.Server().Kill()
	p.want(t, "crashed")
	p.want(t, "started")
	p.waitPhase(t, Running)
	if n := p.current().N(); n != 2 {
		t.Fatalf("restarted instance N = %d, want 2", n)
	}
	p.current().Server().Kill()
	p.want(t, "crashed")
	p.want(t, "gaveup")
	p.waitPhase(t, Stopped)
	if err := inst.ExitErr(); err == nil {
		t.Fatal("the killed server's exit status is nil")
	}
}

// A server that does not start is NeverUp, and the core is Idle again, so
// the next Start tries anew.
func TestCoreNeverUpBackToIdle(t *testing.T) {
	c, p := newTestCore(t, "", 3)
	for range 2 {
		p.mu.Lock()
		if !c.Start() {
			t.Fatal("Start from Idle refused")
		}
		p.mu.Unlock()
		if ev := p.next(t); ev != "neverup: cannot start the server: no such server" {
			t.Fatalf("hook %q", ev)
		}
		p.waitPhase(t, Idle)
	}
}

// A server that ends while Started waits (an initialize it never
// answered) is NeverUp with the instance, whose exit status is in.
func TestCoreEndsWhileStarting(t *testing.T) {
	c, p := newTestCore(t, "exit 3", 3)
	p.block = make(chan struct{})
	p.mu.Lock()
	c.Start()
	p.mu.Unlock()
	p.want(t, "started")
	if ev := p.next(t); ev != "neverup: ended while starting" {
		t.Fatalf("hook %q", ev)
	}
	p.waitPhase(t, Idle)
}

// Stop kills a server that does not leave when its stdin closes, and
// also ends one whose Started is blocked.
func TestCoreStopKillsStubbornServer(t *testing.T) {
	c, p := newTestCore(t, `trap "" TERM; cat >/dev/null; exec sleep 1000`, 3)
	p.block = make(chan struct{})
	p.mu.Lock()
	c.Start()
	p.mu.Unlock()
	p.want(t, "started")
	inst := p.current()
	p.mu.Lock()
	if got := c.Shut(); got != inst {
		t.Fatal("Shut did not return the current instance")
	}
	p.mu.Unlock()
	if err := c.Stop(context.Background(), inst, 200*time.Millisecond, nil); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var ws syscall.WaitStatus
	if err := inst.ExitErr(); err == nil {
		t.Fatal("the stubborn server exited cleanly")
	} else if ee, ok := err.(*exec.ExitError); ok {
		ws = ee.Sys().(syscall.WaitStatus)
	}
	if !ws.Signaled() {
		t.Fatalf("exit %v: want killed by a signal", inst.ExitErr())
	}
	select {
	case ev := <-p.events:
		t.Fatalf("hook %q after Stop", ev)
	default:
	}
}
