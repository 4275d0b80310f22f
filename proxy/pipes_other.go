//go:build !linux

package proxy

import "os"

// growPipes is a no-op where pipe sizes cannot be set.
func growPipes(stdin, stdout *os.File) {}
