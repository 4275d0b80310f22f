//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// setPipeSize resizes the stdin and stdout pipes (F_SETPIPE_SZ; an
// unprivileged process may go up to /proc/sys/fs/pipe-max-size, 1 MiB by
// default). Both ends of a pipe share its buffer, so the editor's side
// benefits too.
func setPipeSize(n int) error {
	var errs []error
	for _, fd := range []int{0, 1} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, n); err != nil {
			errs = append(errs, fmt.Errorf("F_SETPIPE_SZ on fd %d: %w", fd, err))
		}
	}
	return errors.Join(errs...)
}

// relayThreads relays with one blocking read/write loop per direction, each
// on its own locked OS thread: a readable fd wakes the blocked thread
// directly, with no trip through the poller and the scheduler.
func relayThreads(tc *net.TCPConn) error {
	f, err := tc.File() // a dup; the original is closed by the caller
	if err != nil {
		return err
	}
	defer f.Close()
	sock := int(f.Fd()) // Fd puts the descriptor in blocking mode
	for _, fd := range []int{0, 1, sock} {
		if err := unix.SetNonblock(fd, false); err != nil {
			return fmt.Errorf("blocking mode on fd %d: %w", fd, err)
		}
	}
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		copyFD(sock, 0)
		unix.Shutdown(sock, unix.SHUT_WR)
	}()
	go func() {
		runtime.LockOSThread()
		copyFD(1, sock)
		close(done)
	}()
	<-done
	return nil
}

// copyFD copies src to dst with blocking read and write until EOF or error.
func copyFD(dst, src int) {
	buf := make([]byte, 256<<10)
	for {
		n, err := unix.Read(src, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			return
		}
		for p := buf[:n]; len(p) > 0; {
			m, err := unix.Write(dst, p)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			p = p[m:]
		}
	}
}
