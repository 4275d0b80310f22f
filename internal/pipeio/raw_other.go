//go:build !linux

package pipeio

import "syscall"

// fast: no raw system calls here; File uses the *os.File's methods.
const fast = false

func nonblocking(syscall.RawConn) bool                   { return false }
func rawRead(fd uintptr, b []byte) (int, syscall.Errno)  { panic("pipeio: unreachable") }
func rawWrite(fd uintptr, b []byte) (int, syscall.Errno) { panic("pipeio: unreachable") }
