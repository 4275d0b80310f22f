//go:build unix

package lspmux

import "syscall"

// freeze stops a process (SIGSTOP) so requests can be in flight at it.
func freeze(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }
