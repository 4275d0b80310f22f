//go:build unix

package host

import "syscall"

// freePort returns a loopback TCP port that is free now: the kernel picks
// it for a socket bound to 127.0.0.1:0, which is then closed. Plain system
// calls, not package net: this runs first thing in a cold start, and net's
// first listener (poller setup) costs up to milliseconds more.
func freePort() (int, error) {
	// Held until the socket is closed, so no child started meanwhile
	// inherits it (SOCK_CLOEXEC is not portable across unixes).
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	return sa.(*syscall.SockaddrInet4).Port, nil
}
