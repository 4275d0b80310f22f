//go:build !(linux && amd64)

package waiter

import "syscall"

var code []byte

const machine = 0

func execWaiter(dir string, conn syscall.Conn, name, message string) error { return ErrUnsupported }
