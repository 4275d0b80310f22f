package refcount

import (
	"context"
	"time"

	"github.com/procref/procref/platform"
)

func openFile(name string, d *platform.PrivateDir) (backend, error) {
	return openFileCounter(d, name+".ref", true)
}

func lookupFile(name string, d *platform.PrivateDir) (backend, error) {
	return openFileCounter(d, name+".ref", false)
}

// fileSlots is the number of one-byte lock slots in a .ref file, so the
// maximum number of references held at once with FileLock. The locks lie
// beyond the end of the (empty) file, which every platform allows.
const fileSlots = 4096

// filePollPeriod is how often FileLock's WaitZero re-counts: file locks
// offer no wait-for-unlocked-range event.
const filePollPeriod = 10 * time.Millisecond

// lockProbe reports one lock (held by someone other than the prober) that
// overlaps [lo, hi), as its start and length (length 0: to the end).
type lockProbe func(lo, hi int64) (start, length int64, found bool, err error)

// countLocked counts the locked bytes in [lo, hi). The kernel reports one
// conflicting lock per query, not necessarily the lowest, so each found lock
// splits the range into the parts below and above it, which are probed in
// turn: about 2k+1 queries for k locks.
func countLocked(lo, hi int64, probe lockProbe) (int, error) {
	n := 0
	stack := [][2]int64{{lo, hi}}
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if r[0] >= r[1] {
			continue
		}
		s, l, found, err := probe(r[0], r[1])
		if err != nil {
			return 0, err
		}
		if !found {
			continue
		}
		e := r[1]
		if l > 0 {
			e = min(s+l, r[1])
		}
		s = max(s, r[0])
		if s >= e {
			// A lock outside the range we asked about: the kernel
			// never does this; do not loop on it.
			continue
		}
		n += int(e - s)
		stack = append(stack, [2]int64{r[0], s}, [2]int64{e, r[1]})
	}
	return n, nil
}

// pollZero calls count every filePollPeriod until it reports zero.
func pollZero(ctx context.Context, count func() (int, error)) error {
	t := time.NewTicker(filePollPeriod)
	defer t.Stop()
	for {
		n, err := count()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
