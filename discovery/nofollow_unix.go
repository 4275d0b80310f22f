//go:build unix

package discovery

import "syscall"

const oNoFollow = syscall.O_NOFOLLOW
