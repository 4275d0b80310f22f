//go:build linux && !386 && !mips && !mipsle

package launcher_test

import "golang.org/x/sys/unix"

// sysSemtimedop is the semtimedop(2) system call number (with a nil timeout
// the two variants are the same call).
const sysSemtimedop = unix.SYS_SEMTIMEDOP
