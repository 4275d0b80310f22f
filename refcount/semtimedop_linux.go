//go:build linux && !386 && !mips && !mipsle

package refcount

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// semtimedop is semtimedop(2) for one operation; timeout nil blocks.
func semtimedop(id int, op *sembuf, timeout *unix.Timespec) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SEMTIMEDOP, uintptr(id), uintptr(unsafe.Pointer(op)), 1, uintptr(unsafe.Pointer(timeout)), 0, 0)
	return e
}
