//go:build darwin || freebsd

package proxy

import (
	"os"

	"golang.org/x/sys/unix"
)

func nbRead(fd int, b []byte) (int, error)  { return unix.Read(fd, b) }
func nbWrite(fd int, b []byte) (int, error) { return unix.Write(fd, b) }

// canSplice: no splice(2) here; the loop copies.
func canSplice(out *os.File) bool { return false }

func (l *pollLoop) spliceDown() {}

const bulkRead = 64 << 10

func (l *pollLoop) spliceUp() error { l.readUp(); return nil }

func (l *pollLoop) growPipes() {}
