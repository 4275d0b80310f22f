//go:build linux

package pipeio

import (
	"syscall"
	"unsafe"
)

// fast: raw read and write inside the RawConn.
const fast = true

// RawRead is read(2) as a raw system call (the runtime is not told: it
// never blocks on a non-blocking descriptor), retried on EINTR. It is the
// one raw-syscall layer: the host's File and the proxy's poll relay both
// read through it. Only for non-blocking descriptors.
func RawRead(fd uintptr, b []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(ptr(b)), uintptr(len(b)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// RawWrite is write(2) as RawRead is read(2). A write is at most
// maxWrite bytes, so one call never holds the thread for long.
func RawWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) > maxWrite {
		b = b[:maxWrite]
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(ptr(b)), uintptr(len(b)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// RawSplice is splice(2) between two non-blocking descriptors without
// offsets, as a raw system call, retried on EINTR.
func RawSplice(in, out uintptr, n int, flags int) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_SPLICE, in, 0, out, 0, uintptr(n), uintptr(flags))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// ptr is b's first byte, or nil for an empty b.
func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// nonblocking reports whether rc's descriptor has O_NONBLOCK set.
func nonblocking(rc syscall.RawConn) bool {
	ok := false
	rc.Control(func(fd uintptr) {
		fl, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		ok = e == 0 && fl&syscall.O_NONBLOCK != 0
	})
	return ok
}

// maxWrite bounds one raw write (a pipe takes at most its buffer, 1 MiB
// at the most for an unprivileged process, anyway).
const maxWrite = 1 << 20
