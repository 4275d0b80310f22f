//go:build !linux

package pipeio

import "syscall"

// fast: no raw system calls here; File uses the *os.File's methods.
const fast = false

func nonblocking(syscall.RawConn) bool { return false }

// RawRead and RawWrite exist only on Linux; File does not call them here.
func RawRead(uintptr, []byte) (int, syscall.Errno)  { return 0, syscall.ENOSYS }
func RawWrite(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }
