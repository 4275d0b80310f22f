package launcher

import (
	"context"
	"errors"
	"time"

	"github.com/procref/procref/discovery"
)

// hintCheckInterval is how often a supervisor checks that its hint file is
// still there and still its own.
const hintCheckInterval = time.Second

// keepHint rewrites the hint whenever the file is gone or is not this
// supervisor's (a tmp cleaner removed it, someone overwrote or truncated
// it), until ctx ends. Without it every new acquirer would wait for a
// hint that never comes while the supervisor keeps running. Sessions
// already attached do not use the file and are not disturbed. It blocks.
func (sv *supervisor) keepHint(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false // log a failure to rewrite once, not every tick
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		h, err := discovery.Read(sv.dir, sv.s.Name)
		if err == nil && h.Nonce == sv.nonce && h.Socket == sv.hint.Socket && h.Port == sv.hint.Port && h.Host == sv.hint.Host {
			failing = false
			continue
		}
		if err == nil {
			err = errors.New("the file names another supervisor")
		}
		// Under mu, like the drain's decision: a drain that has begun
		// removes the hint, and it must stay removed.
		sv.mu.Lock()
		if sv.draining {
			sv.mu.Unlock()
			return
		}
		mine := sv.hint
		werr := discovery.Write(sv.dir, &mine)
		sv.mu.Unlock()
		switch {
		case werr != nil && !failing:
			sv.log.Error("the hint file is gone or damaged and cannot be rewritten; new clients cannot find this supervisor", "why", err, "err", werr)
			failing = true
		case werr == nil:
			sv.log.Warn("rewrote the hint file", "why", err)
			failing = false
		}
	}
}
