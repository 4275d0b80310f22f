//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
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

// relayExecPoll is `procbench relay -exec -poll`: the stdio relay to a
// command as one poll(2) loop over the four raw descriptors, with
// non-blocking reads and writes and a buffer per direction (what the
// proxy's tcp-mode relay does): the best a single Go thread does for one
// process hop, next to Go's poller (io.Copy) and the C relay.
func relayExecPoll(argv []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	if err := cmd.Start(); err != nil {
		return err
	}
	inR.Close()
	outW.Close()
	defer cmd.Wait()
	// Raw descriptors of our own (dups), non-blocking.
	toChild, err := unix.Dup(int(inW.Fd()))
	if err != nil {
		return err
	}
	fromChild, err := unix.Dup(int(outR.Fd()))
	if err != nil {
		return err
	}
	inW.Close()
	outR.Close()
	for _, fd := range []int{0, 1, toChild, fromChild} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return err
		}
	}
	runtime.LockOSThread()
	type dir struct {
		from, to int
		buf      []byte
		n, off   int // buffered bytes and how many are written
		eof      bool
	}
	up := &dir{from: 0, to: toChild, buf: make([]byte, 256<<10)}
	down := &dir{from: fromChild, to: 1, buf: make([]byte, 256<<10)}
	step := func(d *dir) error {
		if d.off < d.n { // flush what is pending
			m, err := unix.Write(d.to, d.buf[d.off:d.n])
			if err != nil && err != unix.EAGAIN {
				return err
			}
			if m > 0 {
				d.off += m
			}
			if d.off < d.n {
				return nil
			}
			d.n, d.off = 0, 0
		}
		n, err := unix.Read(d.from, d.buf)
		switch {
		case err == unix.EAGAIN:
			return nil
		case err != nil || n == 0:
			d.eof = true
			return nil
		}
		d.n = n
		m, err := unix.Write(d.to, d.buf[:n])
		if err != nil && err != unix.EAGAIN {
			return err
		}
		if m > 0 {
			d.off = m
		}
		if d.off == d.n {
			d.n, d.off = 0, 0
		}
		return nil
	}
	for !down.eof {
		fds := make([]unix.PollFd, 0, 4)
		add := func(d *dir) {
			if d.eof {
				return
			}
			if d.off < d.n {
				fds = append(fds, unix.PollFd{Fd: int32(d.to), Events: unix.POLLOUT})
			} else {
				fds = append(fds, unix.PollFd{Fd: int32(d.from), Events: unix.POLLIN})
			}
		}
		add(up)
		add(down)
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return err
		}
		for _, d := range []*dir{up, down} {
			if d.eof {
				continue
			}
			if err := step(d); err != nil {
				return err
			}
			if d == up && up.eof {
				unix.Close(toChild)
			}
		}
	}
	return nil
}
