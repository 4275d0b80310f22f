//go:build linux

package proxy

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/procref/procref/internal/pipeio"
)

// The loop's reads, writes and splices are on non-blocking descriptors:
// they never wait, so they are raw system calls (internal/pipeio, the one
// raw-syscall layer). Through unix.Read and friends each would tell the
// scheduler it may block (entersyscall/exitsyscall); sysmon then hands the
// loop's P to another thread, which spins in epoll_pwait and nanosleep on
// the cores the relay's peers need (strace of a proxy moving 16 MiB
// messages: ~1200 epoll_pwait and ~1200 nanosleep calls a second by
// otherwise idle runtime threads). Only the blocking poll goes through the
// scheduler.

func nbRead(fd int, b []byte) (int, error) {
	n, e := pipeio.RawRead(uintptr(fd), b)
	return n, errnoErr(e)
}

func nbWrite(fd int, b []byte) (int, error) {
	n, e := pipeio.RawWrite(uintptr(fd), b)
	return n, errnoErr(e)
}

func nbSplice(in, out, n, flags int) (int64, error) {
	r, e := pipeio.RawSplice(uintptr(in), uintptr(out), n, flags)
	return int64(r), errnoErr(e)
}

// errnoErr is nil for 0, else the Errno (comparable with unix.EAGAIN).
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// bulkPipe is the pipe size for a proxy that moves bulk data: each wake-up
// then moves up to 1 MiB (16 MiB messages: ~590 → ~630–865 MB/s against
// 256 KiB pipes in interleaved runs). Every pipe buffer counts against the
// user's allowance (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default),
// so only a proxy that has seen a full pipe grows its two; the others keep
// cmd/procref's 256 KiB.
const bulkPipe = 1 << 20

// growPipes grows the editor's pipes to bulkPipe, once. Errors (not a
// pipe, over the allowance) leave them as they are.
func (l *pollLoop) growPipes() {
	if l.grown {
		return
	}
	l.grown = true
	for _, fd := range []int{l.in, l.out} {
		unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, bulkPipe)
	}
}

// spliceChunk is the most one splice(2) call moves.
const spliceChunk = 1 << 20

// canSplice reports whether backend bytes can be spliced into out: it must
// be a pipe.
func canSplice(out *os.File) bool {
	fi, err := out.Stat()
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

// bulkRead is a read size that suggests a bulk transfer (a full default
// pipe): the next wake-up splices instead of copying.
const bulkRead = 64 << 10

// spliceUp moves editor bytes into the socket without copying them
// through the process, then the rest is read as usual (readUp). It moves
// exactly what the LSP gate lets bypass it: the rest of a large message
// body, which is never inspected, or everything once the stream is not
// LSP.
//
// An error means the backend is gone.
func (l *pollLoop) spliceUp() error {
	k := min(l.gate.Splicable(), spliceChunk)
	if k == 0 {
		l.bulk = false
		l.readUp()
		return nil
	}
	n, err := nbSplice(l.in, l.sock, k, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	switch {
	case n > 0:
		l.gate.Skip(int(n))
	case err == unix.EAGAIN:
		// Either side: the pipe may be empty (k is what the body still
		// lacks, not what has arrived) or the socket full. Reading settles
		// it without losing anything.
		l.bulk = false
		l.readUp()
	case err == nil:
		l.editorEOF = true
	case err == unix.EPIPE || err == unix.ECONNRESET:
		return err
	case err != unix.EINTR:
		l.spliceIn = false // not supported for this pair: copy
	}
	return nil
}

// spliceDown moves what the backend has sent into the editor's pipe until
// the socket is empty, the pipe is full, or one side ended. EAGAIN does not
// say which of the first two happened; a zero-timeout poll of the pipe does.
func (l *pollLoop) spliceDown() {
	for {
		n, err := nbSplice(l.sock, l.out, spliceChunk, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
		switch {
		case n > 0:
			if n >= bulkRead {
				l.growPipes()
			}
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
