//go:build linux

package pipeio

import (
	"syscall"
	"unsafe"
)

// fast: raw read and write inside the RawConn.
const fast = true

// rawRead is read(2) as a raw system call (the runtime is not told: it
// never blocks on a non-blocking descriptor), retried on EINTR.
func rawRead(fd uintptr, b []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// rawWrite is write(2) as rawRead is read(2). A write is at most
// maxWrite bytes, so one call never holds the thread for long.
func rawWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) > maxWrite {
		b = b[:maxWrite]
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
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
