//go:build unix

package discovery

import "syscall"

// oNoFollow refuses a symlink at open time; oNonBlock keeps open from
// blocking on a FIFO swapped in after the Lstat check (Read then refuses it
// as not a regular file).
const (
	oNoFollow = syscall.O_NOFOLLOW
	oNonBlock = syscall.O_NONBLOCK
)
