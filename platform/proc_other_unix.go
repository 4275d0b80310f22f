//go:build unix && !linux && !darwin && !freebsd

package platform

import (
	"errors"
	"fmt"
	"runtime"
)

// procState needs the kernel's process table (kinfo_proc or /proc), which
// is written for Linux, macOS and FreeBSD only. Without a start time no
// process identity can be checked, so every caller gets the error rather
// than a guess.
func procState(int) (start uint64, zombie bool, err error) {
	return 0, false, fmt.Errorf("process start time on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func rss(int) (uint64, error) {
	return 0, fmt.Errorf("rss on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
