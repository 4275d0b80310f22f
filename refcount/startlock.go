package refcount

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// lockPoll retries TryLock, 1 ms rising to 20 ms between tries, until it
// succeeds or ctx is done.
func (l *Lock) lockPoll(ctx context.Context) (func() error, error) {
	delay := time.Millisecond
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		release, err := l.TryLock()
		if err == nil {
			return release, nil
		}
		if !errors.Is(err, ErrLocked) {
			return nil, err
		}
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-ctx.Done():
			pid, _ := l.Holder()
			if pid == 0 {
				return nil, fmt.Errorf("startup lock %s held by another process (pid unknown): %w (%w)", l.path, ErrLocked, ctx.Err())
			}
			return nil, fmt.Errorf("startup lock %s held by pid %d: %w (%w)", l.path, pid, ErrLocked, ctx.Err())
		case <-timer.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}
