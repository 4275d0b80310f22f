//go:build linux && 386

package refcount

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// semtimedop is semtimedop(2) for one operation; timeout nil blocks.
// linux/386 has only the time64 variant of the call (its struct
// __kernel_timespec has 64-bit fields, unlike unix.Timespec here).
func semtimedop(id int, op *sembuf, timeout *unix.Timespec) unix.Errno {
	var ts *[2]int64
	if timeout != nil {
		ts = &[2]int64{int64(timeout.Sec), int64(timeout.Nsec)}
	}
	_, _, e := unix.Syscall6(unix.SYS_SEMTIMEDOP_TIME64, uintptr(id), uintptr(unsafe.Pointer(op)), 1, uintptr(unsafe.Pointer(ts)), 0, 0)
	return e
}
