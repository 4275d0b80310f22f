//go:build linux

package proxy

import (
	"os"

	"golang.org/x/sys/unix"
)

// spliceChunk is the most one splice(2) call moves.
const spliceChunk = 1 << 20

// canSplice reports whether backend bytes can be spliced into out: it must
// be a pipe.
func canSplice(out *os.File) bool {
	fi, err := out.Stat()
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

// spliceDown moves what the backend has sent into the editor's pipe until
// the socket is empty, the pipe is full, or one side ended. EAGAIN does not
// say which of the first two happened; a zero-timeout poll of the pipe does.
func (l *pollLoop) spliceDown() {
	for {
		n, err := unix.Splice(l.sock, nil, l.out, nil, spliceChunk, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
		switch {
		case n > 0:
			continue
		case err == unix.EINTR:
			continue
		case err == nil: // n == 0: the backend closed its end
			l.backendEOF = true
			return
		case err == unix.EAGAIN:
			p := []unix.PollFd{{Fd: int32(l.out), Events: unix.POLLOUT}}
			if m, _ := unix.Poll(p, 0); m == 0 {
				l.outFull = true
			}
			return
		case err == unix.EPIPE:
			// The editor stopped reading: drop the rest.
			l.editorGone, l.editorEOF = true, true
			l.spliceOut = false
			return
		default:
			// Not supported for this pair (or an odd error): copy.
			l.spliceOut = false
			return
		}
	}
}
