package launcher

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/procref/procref/platform"
)

// hookGrace is how long a hook may take to return once its ctx was
// cancelled (its timeout passed, or a stop signal came) before the
// supervisor gives up on it. StartChild needs up to 2 s to stop a child.
const hookGrace = 3 * time.Second

// ErrHookStuck is what the supervisor's errors wrap when a hook did not
// return within its timeout (StartTimeout, HealthTimeout, StopTimeout) plus
// a grace period after its ctx was cancelled: the supervisor stopped
// waiting for it, ended the service (its process and process group) and
// exited, and runs no hook again. The next Acquire starts a fresh one.
var ErrHookStuck = errors.New("hook did not return")

// errHookLate is runHook's error for a hook that returned, but only after
// its timeout had cancelled its ctx.
var errHookLate = errors.New("hook overran its timeout")

// runHook runs fn, the hook named hook, and waits for it at most timeout,
// then cancels its ctx (cancel) and waits hookGrace more; a stop signal
// cancels it at once and leaves it hookGrace. A hook that returns in time
// gives nil; after the timeout, an error wrapping errHookLate; one that does
// not return at all is abandoned (see abandon; the error wraps
// ErrHookStuck) and keeps running on its own goroutine, holding nothing.
//
// The caller holds hookMu, so hooks still run one at a time: once a hook
// is stuck, runHook runs none again.
func (sv *supervisor) runHook(hook string, timeout time.Duration, cancel func(), fn func()) error {
	if h := sv.stuckHook(); h != "" {
		return fmt.Errorf("%w: %s (not running %s)", ErrHookStuck, h, hook)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	start := time.Now()
	t := time.NewTimer(timeout)
	defer t.Stop()
	term, late := sv.term, false
	for {
		select {
		case <-done:
			if late {
				return fmt.Errorf("%w: %s took %v, longer than its timeout %v", errHookLate, hook, time.Since(start).Round(time.Millisecond), timeout)
			}
			return nil
		case <-term:
			term = nil
			cancel()
			t.Reset(hookGrace)
		case <-t.C:
			if !late {
				late = true
				cancel()
				t.Reset(hookGrace)
				continue
			}
			took := time.Since(start)
			sv.abandon(hook, took)
			return fmt.Errorf("%w: %s still running after %v (timeout %v); the service was ended", ErrHookStuck, hook, took.Round(time.Millisecond), timeout)
		}
	}
}

// stuckHook returns the hook the supervisor gave up on, or "".
func (sv *supervisor) stuckHook() string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.stuck
}

// abandon is the one place a supervisor becomes stuck: it marks it (no
// session or check is let in again, no hook runs again), logs which hook
// and how long, cancels the hooks' ctx, kills the service's process and its
// process group, and asks for the forced shutdown, which removes the hint
// and the counter so that the next acquirer starts afresh. What the hook
// started without telling us dies with the supervisor: bound children by
// their parent-death signal, others in the supervisor's process group
// (endOwnGroup).
func (sv *supervisor) abandon(hook string, took time.Duration) {
	sv.mu.Lock()
	if sv.stuck == "" {
		sv.stuck = hook
	}
	sv.draining = true
	info := sv.info
	sv.mu.Unlock()
	sv.log.Error("hook did not return: ending the service", "hook", hook, "after", took.Round(time.Millisecond).String())
	sv.svcCancel()
	if info.PID > 0 {
		if platform.ProcessGroupAlive(info.PID) {
			platform.KillProcessGroup(info.PID)
		}
		if id, err := serviceIdentity(info); err == nil {
			id.Kill()
		}
	}
	sv.requestStop()
}

// finish is Supervise's last step: a stuck supervisor fails (*err), says
// so on the ready pipe, and ends its process group.
func (sv *supervisor) finish(err *error, signalReady func(string)) {
	if h := sv.stuckHook(); h != "" && *err == nil {
		*err = fmt.Errorf("%w: %s; the service was ended (log: %s)", ErrHookStuck, h, sv.s.LogPath())
	}
	if *err != nil {
		signalReady("error: " + oneLine((*err).Error()))
	}
	sv.endOwnGroup()
}

// endOwnGroup is a stuck supervisor's last act: if it leads its own process
// group (the launcher starts it detached, in a session of its own), it kills
// the group, which ends whatever a stuck hook started there, and itself.
func (sv *supervisor) endOwnGroup() {
	if sv.stuckHook() == "" || !platform.LeadsProcessGroup() {
		return
	}
	sv.log.Error("ending the supervisor's process group", "pgid", os.Getpid())
	platform.KillProcessGroup(os.Getpid())
}
