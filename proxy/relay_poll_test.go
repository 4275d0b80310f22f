//go:build linux || darwin || freebsd

package proxy

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func nonblocking(t *testing.T, f *os.File) bool {
	fl, err := unix.FcntlInt(uintptr(rawFile(f)), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

func setBlocking(t *testing.T, f *os.File) {
	if err := unix.SetNonblock(rawFile(f), false); err != nil {
		t.Fatal(err)
	}
}

func pollRelaysRun() int64 { return pollRelays.Load() }
