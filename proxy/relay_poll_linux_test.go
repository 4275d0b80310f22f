//go:build linux

package proxy

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func nonblocking(t *testing.T, f *os.File) bool {
	fl, err := unix.FcntlInt(uintptr(rawFDOf(t, f)), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

func setBlocking(t *testing.T, f *os.File) {
	if err := unix.SetNonblock(rawFDOf(t, f), false); err != nil {
		t.Fatal(err)
	}
}

func rawFDOf(t *testing.T, f *os.File) int {
	fd, ok := rawFD(f)
	if !ok {
		t.Fatalf("%s has no descriptor", f.Name())
	}
	return fd
}
