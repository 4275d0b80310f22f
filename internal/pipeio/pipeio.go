// Package pipeio reads and writes pipes and sockets that are in the Go
// runtime's poller with as little runtime work per call as the platform
// allows. The multiplexer's round trip is two pipe reads and two pipe
// writes in the host; on Linux, File makes each one a raw system call
// inside the descriptor's syscall.RawConn, so it neither enters the
// scheduler's system-call state (which wakes the sysmon thread and may
// hand the P to another thread) nor leaves the poller when it has to wait:
// a read that finds nothing parks the goroutine in the poller exactly as
// os.File does. Deadlines and Close behave as they do for the *os.File.
// On other systems File is the *os.File's own methods.
package pipeio

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// File is a pollable descriptor (an *os.File whose descriptor is
// non-blocking, as os.Pipe and os.NewFile of a non-blocking descriptor
// give) read and written without the runtime's system-call bookkeeping.
// One goroutine may Read while another Writes, as with *os.File.
type File struct {
	f  *os.File
	rc syscall.RawConn // nil: plain *os.File calls
}

// New wraps f; the File owns it from now on (Close closes f). Nobody may
// call f.Fd() after this: Fd puts the descriptor in blocking mode, and a
// raw read or write on a blocking descriptor could hold a thread (and the
// runtime's P with it) in the kernel. A descriptor that is blocking
// already when New sees it gets the plain *os.File methods.
func New(f *os.File) *File {
	p := &File{f: f}
	if fast {
		if rc, err := f.SyscallConn(); err == nil && nonblocking(rc) {
			p.rc = rc
		}
	}
	return p
}

// ErrWouldBlock is returned by TryWrite where it cannot write without
// blocking on this system; the caller should write another way.
var ErrWouldBlock = errors.New("pipeio: non-blocking write not supported here")

// Read reads up to len(b) bytes, waiting in the poller while there are
// none. At end of input it returns 0, io.EOF.
func (p *File) Read(b []byte) (int, error) {
	if p.rc == nil {
		return p.f.Read(b)
	}
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := p.rc.Read(func(fd uintptr) bool {
		n, errno = RawRead(fd, b)
		return errno != syscall.EAGAIN
	})
	if err != nil {
		return 0, p.wrap("read", err)
	}
	if errno != 0 {
		return 0, &os.PathError{Op: "read", Path: p.f.Name(), Err: errno}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of b, waiting in the poller while the descriptor is
// full (until the write deadline, if one is set).
func (p *File) Write(b []byte) (int, error) {
	if p.rc == nil {
		return p.f.Write(b)
	}
	return p.write(b, true)
}

// wrap gives a RawConn error the form *os.File's methods give it: the
// deadline error as is, anything else (the file was closed) as
// os.ErrClosed.
func (p *File) wrap(op string, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		err = os.ErrClosed
	}
	return &os.PathError{Op: op, Path: p.f.Name(), Err: err}
}

// TryWrite writes what of b fits now and never waits: n may be anything
// from 0 to len(b), with a nil error. It returns ErrWouldBlock (and writes
// nothing) on systems where File has no non-blocking write.
func (p *File) TryWrite(b []byte) (int, error) {
	if p.rc == nil {
		return 0, ErrWouldBlock
	}
	return p.write(b, false)
}

// write writes b with raw writes until it is all written, an error, or
// (wait false) the descriptor is full; with wait it waits in the poller
// while the descriptor is full.
func (p *File) write(b []byte, wait bool) (int, error) {
	done := 0
	var errno syscall.Errno
	err := p.rc.Write(func(fd uintptr) bool {
		for done < len(b) {
			n, e := RawWrite(fd, b[done:])
			if e == syscall.EAGAIN {
				return !wait
			}
			if e != 0 {
				errno = e
				return true
			}
			done += n
		}
		return true
	})
	if err != nil {
		return done, p.wrap("write", err)
	}
	if errno != 0 {
		err = &os.PathError{Op: "write", Path: p.f.Name(), Err: errno}
	}
	return done, err
}

// SetWriteDeadline is the *os.File's.
func (p *File) SetWriteDeadline(t time.Time) error { return p.f.SetWriteDeadline(t) }

// Close closes the *os.File; a Read or Write waiting in the poller returns
// os.ErrClosed.
func (p *File) Close() error { return p.f.Close() }
