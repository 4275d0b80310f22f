//go:build darwin || freebsd

package proxy

import "os"

// canSplice: no splice(2) here; the loop copies.
func canSplice(out *os.File) bool { return false }

func (l *pollLoop) spliceDown() {}
