//go:build linux && (386 || mips || mipsle)

package launcher_test

import "golang.org/x/sys/unix"

// sysSemtimedop: 32-bit Linux without the old call has only the time64
// variant (the same call with a nil timeout).
const sysSemtimedop = unix.SYS_SEMTIMEDOP_TIME64
