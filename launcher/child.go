package launcher

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/procref/procref/platform"
)

// StartChild is the common OnFirstAcquire (and OnRecover): it starts cmd as
// a child bound to the supervisor (it dies with it, see
// platform.StartBound), reaps it when it exits, and calls ready every 20 ms
// until it returns nil, the child exits, or ctx is done. It returns an Info
// with the child's PID and StartTime, which the supervisor watches and
// [StopChild] uses, so that a reused pid is never signalled. Pass the hook's
// ctx; a nil ready means "started is ready". On error the child is stopped.
func StartChild(ctx context.Context, cmd *exec.Cmd, ready func(ctx context.Context) error) (Info, error) {
	if err := platform.StartBound(cmd); err != nil {
		return Info{}, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	id, err := platform.Lookup(cmd.Process.Pid)
	if err != nil { // exited at once; not reaped yet, so the pid is not reused
		return Info{}, fmt.Errorf("%s exited at once: %v", cmd.Path, <-exited)
	}
	info := Info{PID: id.PID, StartTime: id.StartTime}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if ready == nil || ready(ctx) == nil {
			return info, nil
		}
		select {
		case err := <-exited:
			return Info{}, fmt.Errorf("%s (pid %d) exited before it was ready: %v", cmd.Path, id.PID, err)
		case <-ctx.Done():
			id.Stop(2 * time.Second)
			return Info{}, fmt.Errorf("%s (pid %d) not ready: %w", cmd.Path, id.PID, ctx.Err())
		case <-t.C:
		}
	}
}

// StopChild is the common OnLastRelease: it stops the process that info
// describes (SIGTERM, then SIGKILL after grace) and returns once it is gone.
// It checks the start time, so it never signals a process that merely
// reuses the pid; a process already gone is not an error.
func StopChild(info Info, grace time.Duration) error {
	if info.PID <= 0 {
		return nil
	}
	return platform.Identity{PID: info.PID, StartTime: info.StartTime}.Stop(grace)
}
