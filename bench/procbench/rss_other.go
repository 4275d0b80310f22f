//go:build !linux

package main

import (
	"errors"
	"fmt"
)

// peakRSS is only implemented on Linux.
func peakRSS(pid int) (uint64, error) {
	return 0, fmt.Errorf("peak rss: %w", errors.ErrUnsupported)
}

// cpuSeconds is only implemented on Linux.
func cpuSeconds(pid int) (float64, error) {
	return 0, fmt.Errorf("cpu time: %w", errors.ErrUnsupported)
}
