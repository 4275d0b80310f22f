//go:build unix

package discovery

import "syscall"

// oNonBlock keeps open from blocking on a FIFO swapped in after the Stat
// check (Read then refuses it as not a regular file); the dir handle's
// OpenFile adds O_NOFOLLOW itself.
const oNonBlock = syscall.O_NONBLOCK
