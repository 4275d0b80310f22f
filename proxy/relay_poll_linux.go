//go:build linux

package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"golang.org/x/sys/unix"
)

// pollBuffer is the size of each direction's buffer in the poll loop: one
// read takes what a grown pipe (256 KiB, see growPipes) holds.
const pollBuffer = 256 << 10

// relayPoll is Relay as one poll(2) loop over raw descriptors. ok is false
// (and nothing has been touched) when the descriptors are not suitable; the
// caller then uses relayCopy.
//
// Why not Go's poller: there, a message from the backend wakes the thread
// parked in epoll_wait, which hands the goroutine to a P, which may need
// another thread woken — two or three wake-ups per message on a 2-core
// machine, ~50 µs more per round trip than a C relay (bench/results.md).
// Here the thread blocked in poll is the one that reads and writes.
func relayPoll(ctx context.Context, ed editorIO, conn, presence net.Conn) (outcome, bool) {
	inF, ok1 := ed.In.(*os.File)
	outF, ok2 := ed.Out.(*os.File)
	if !ok1 || !ok2 || !pipeOrSocket(inF) || !pipeOrSocket(outF) {
		return 0, false
	}
	sock, ok := rawFD(conn)
	if !ok {
		return 0, false
	}
	pres := -1
	if presence != nil {
		if pres, ok = rawFD(presence); !ok {
			return 0, false
		}
	}
	in, ok1 := rawFD(inF)
	out, ok2 := rawFD(outF)
	if !ok1 || !ok2 {
		return 0, false
	}
	// The wake pipe ends poll when ctx is canceled.
	wr, ww, err := os.Pipe()
	if err != nil {
		return 0, false
	}
	defer wr.Close()
	defer ww.Close()
	wake := int(wr.Fd())
	stopWake := context.AfterFunc(ctx, func() { ww.Write([]byte{0}) })
	defer stopWake()

	// Non-blocking editor descriptors, restored afterwards: the proxy's
	// stdin and stdout may be shared with a parent (a shell, a test).
	for _, fd := range []int{in, out} {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return 0, false
		}
		if fl&unix.O_NONBLOCK == 0 {
			if err := unix.SetNonblock(fd, true); err != nil {
				return 0, false
			}
			defer unix.SetNonblock(fd, false)
		}
	}
	defer conn.Close()

	l := &pollLoop{in: in, out: out, sock: sock, pres: pres, wake: wake}
	l.up.buf = make([]byte, 0, max(pollBuffer, len(ed.Pending)))
	l.gate = newLSPGate(ed.LSP)
	l.rbuf = make([]byte, pollBuffer)
	l.up.buf = l.gate.Filter(l.up.buf, ed.Pending)
	l.gateCheck()
	l.tail, l.inflight, l.note = ed.Tail, ed.Inflight, ed.Note
	l.gate.seen = l.inflight
	// Tail and Inflight follow the backend's bytes: those are read. Inflight
	// keeps only a large body's ends, and splicing its middle measured
	// +11–23% for 16 MiB messages and −11–16% proxy CPU, nothing a user
	// notices, so the tracked path stays this plain one (bench/results.md,
	// "tcp mode: splicing large answers past the tracking").
	l.spliceOut = canSplice(outF) && l.tail == nil && l.inflight == nil
	l.spliceIn = canSplice(inF)
	return l.run(), true
}

// pipeOrSocket reports whether f is a pipe or a socket: descriptors whose
// non-blocking mode is safe to toggle and that poll(2) reports on. A
// terminal or a regular file keeps the goroutine relay.
func pipeOrSocket(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	m := fi.Mode()
	return m&os.ModeNamedPipe != 0 || m&os.ModeSocket != 0
}

// rawFD returns the descriptor of c (a connection or an *os.File), or
// false if it has none. Unlike os.File.Fd it leaves the descriptor's mode
// alone. It stays owned by c: the loop uses it only until Relay returns.
func rawFD(c any) (int, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd = int(s) }) != nil {
		return -1, false
	}
	return fd, fd >= 0
}

// half is one direction's buffer: bytes read but not yet written.
type half struct {
	buf []byte
	off int
}

func (h *half) pending() bool { return h.off < len(h.buf) }

type pollLoop struct {
	in, out, sock, pres, wake int

	up, down half            // editor→backend, backend→editor
	gate     *lspGate        // follows the framing; withholds exit with editorIO.LSP
	tail     *hostproto.Tail // editorIO.Tail: gets a copy of backend→editor bytes
	inflight *inflight       // editorIO.Inflight: follows backend→editor bytes
	note     *hostproto.Note // editorIO.Note: what the host sends on presence
	rbuf     []byte          // what was read, before the gate

	editorEOF   bool // the editor closed its end (or reading it failed)
	backendEOF  bool // the backend closed its end
	shutWritten bool // conn half-closed after the editor's EOF
	editorGone  bool // writing to the editor failed: discard what is left

	// spliceOut: backend→editor bytes move socket→pipe inside the kernel
	// (Linux splice(2), when the editor's end is a pipe), never copied
	// through buf. outFull: the last splice found the pipe full.
	spliceOut, outFull bool

	// spliceIn: editor→backend bulk moves pipe→socket inside the kernel
	// (Linux). bulk: the last read took a full pipe's worth, so more is
	// likely queued.
	spliceIn, bulk bool

	grown bool // the editor's pipes were grown for bulk traffic
}

// run is the loop. Each round: poll for what can make progress, then
// read and immediately try to write what was read.
func (l *pollLoop) run() outcome {
	var deadline time.Time // set once one side has ended
	var fds [4]unix.PollFd
	for {
		// Flush what can be flushed before deciding to wait.
		if err := l.flushUp(); err != nil && l.backendLost() {
			return l.backendGoneOutcome()
		}
		l.flushDown()
		if l.editorEOF && !l.up.pending() && !l.shutWritten {
			unix.Shutdown(l.sock, unix.SHUT_WR)
			l.shutWritten = true
		}
		switch {
		case l.backendEOF && !l.down.pending():
			if l.editorEOF || l.gate.exit || l.editorGone {
				return editorClosed
			}
			if (l.tail.EndReason() != "" || l.note.Reason() != "") && !l.draining() {
				return backendClosed // the host said why: no need to wait for the editor
			}
			// After an LSP exit the server closes first and the
			// editor follows; give it backendGrace.
			if deadline.IsZero() {
				deadline = time.Now().Add(backendGrace)
			}
		case l.editorEOF && !l.up.pending():
			if deadline.IsZero() {
				deadline = time.Now().Add(editorGrace)
			}
		}

		n := l.pollSet(&fds)
		timeout := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				if l.backendEOF && !l.editorEOF && !l.gate.exit {
					return backendClosed
				}
				return editorClosed
			}
			timeout = int(left/time.Millisecond) + 1
		}
		if _, err := unix.Poll(fds[:n], timeout); err != nil {
			if err == unix.EINTR {
				continue
			}
			return backendClosed
		}
		for i := 0; i < n; i++ {
			re := fds[i].Revents
			if re == 0 {
				continue
			}
			switch int(fds[i].Fd) {
			case l.wake:
				return canceled
			case l.pres:
				var b [512]byte
				m, err := readFD(l.pres, b[:])
				if m == 0 && err != unix.EAGAIN {
					l.note.Close()
					return backendClosed // the host is gone
				}
				if m > 0 && l.note != nil {
					l.note.Write(b[:m])
				}
			}
		}
		// Reads are attempted by readiness, but a spurious wake-up only
		// costs an EAGAIN.
		if !l.editorEOF && !l.up.pending() && ready(fds[:n], l.in) {
			if l.spliceIn && l.bulk && !l.backendEOF {
				if err := l.spliceUp(); err != nil && l.backendLost() {
					return l.backendGoneOutcome()
				}
			} else {
				l.readUp()
			}
		}
		if l.spliceOut {
			if l.outFull && ready(fds[:n], l.out) {
				l.outFull = false
				l.spliceDown()
			} else if !l.outFull && !l.backendEOF && ready(fds[:n], l.sock) {
				l.spliceDown()
			}
		} else if !l.backendEOF && !l.down.pending() && ready(fds[:n], l.sock) {
			l.readDown()
		}
	}
}

// pollSet fills fds with what can make progress now and returns how many
// it set.
func (l *pollLoop) pollSet(fds *[4]unix.PollFd) int {
	n := 0
	add := func(fd int, ev int16) {
		for i := 0; i < n; i++ {
			if int(fds[i].Fd) == fd {
				fds[i].Events |= ev
				return
			}
		}
		fds[n] = unix.PollFd{Fd: int32(fd), Events: ev}
		n++
	}
	add(l.wake, unix.POLLIN)
	if l.pres >= 0 {
		add(l.pres, unix.POLLIN)
	}
	if !l.editorEOF && !l.up.pending() {
		add(l.in, unix.POLLIN)
	}
	if l.up.pending() && !l.backendEOF {
		add(l.sock, unix.POLLOUT)
	}
	switch {
	case l.spliceOut && l.outFull:
		add(l.out, unix.POLLOUT)
	case l.spliceOut:
		if !l.backendEOF {
			add(l.sock, unix.POLLIN)
		}
	case l.down.pending():
		add(l.out, unix.POLLOUT)
	case !l.backendEOF:
		add(l.sock, unix.POLLIN)
	}
	return n
}

// backendLost is a write to the backend failing: it reports whether the
// loop ends now. It goes on while the editor is in the middle of a large
// message (draining): the rest is read and dropped until the message's
// end, whose last bytes may name the request in flight (an id after the
// params, as Helix and Go's jsonrpc2 write it), so that it is answered
// too. The backendGrace deadline bounds that.
func (l *pollLoop) backendLost() bool {
	if !l.draining() {
		return true
	}
	l.backendEOF = true
	l.up.buf, l.up.off = l.up.buf[:0], 0
	return false
}

// draining: the backend is gone (or going) while the editor is in the
// middle of a large message whose end Inflight still wants to see.
func (l *pollLoop) draining() bool {
	return l.inflight != nil && !l.editorEOF && l.gate.inLargeBody()
}

// backendGoneOutcome is the outcome when writing to the backend failed.
func (l *pollLoop) backendGoneOutcome() outcome {
	if l.gate.exit || l.editorEOF {
		return editorClosed
	}
	return backendClosed
}

func ready(fds []unix.PollFd, fd int) bool {
	for _, p := range fds {
		if int(p.Fd) == fd {
			return p.Revents != 0
		}
	}
	return false
}

// gateCheck ends the editor's side once the gate has withheld exit: what
// came before it is flushed, then the connection is half-closed.
func (l *pollLoop) gateCheck() {
	if l.gate.stopped() {
		l.editorEOF = true
	}
}

func (l *pollLoop) readUp() {
	b := l.rbuf // filtered into up.buf
	m, err := readFD(l.in, b)
	switch {
	case m > 0:
		l.up.buf = l.gate.Filter(l.up.buf[:0], b[:m])
		l.gateCheck()
		l.up.off = 0
		l.bulk = m >= bulkRead
		if l.bulk {
			l.growPipes()
		}
		if l.backendEOF {
			l.up.buf = l.up.buf[:0] // nobody to send it to; only watch for exit
		}
	case err == unix.EAGAIN:
	default: // EOF or error: the editor is gone
		l.editorEOF = true
	}
}

func (l *pollLoop) readDown() {
	if l.down.buf == nil {
		l.down.buf = make([]byte, 0, pollBuffer)
	}
	b := l.down.buf[:cap(l.down.buf)]
	m, err := readFD(l.sock, b)
	switch {
	case m > 0:
		l.down.buf, l.down.off = b[:m], 0
		if l.tail != nil {
			l.tail.Write(b[:m])
		}
		if l.inflight != nil {
			l.inflight.Write(b[:m])
		}
		if l.editorGone {
			l.down.buf = l.down.buf[:0]
		}
	case err == unix.EAGAIN:
	default:
		l.backendEOF = true
	}
}

// flushUp writes pending editor bytes to the backend as far as it takes
// them; an error means the backend is gone.
func (l *pollLoop) flushUp() error {
	for l.up.pending() {
		if l.backendEOF {
			l.up.buf, l.up.off = l.up.buf[:0], 0
			return nil
		}
		m, err := nbWrite(l.sock, l.up.buf[l.up.off:])
		if m > 0 {
			l.up.off += m
		}
		switch {
		case err == nil:
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return nil
		default:
			l.up.buf, l.up.off = l.up.buf[:0], 0
			return err
		}
	}
	l.up.buf, l.up.off = l.up.buf[:0], 0
	return nil
}

// flushDown writes pending backend bytes to the editor as far as it takes
// them. A failed write (EPIPE) means the editor is gone: the rest is
// dropped and the loop ends as a detach.
func (l *pollLoop) flushDown() {
	for l.down.pending() {
		m, err := nbWrite(l.out, l.down.buf[l.down.off:])
		if m > 0 {
			l.down.off += m
		}
		switch {
		case err == nil:
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default:
			l.editorGone, l.editorEOF = true, true
			l.down.buf, l.down.off = l.down.buf[:0], 0
			return
		}
	}
	l.down.buf, l.down.off = l.down.buf[:0], 0
}

// readFD reads once, retrying EINTR. It returns (0, nil) at EOF.
func readFD(fd int, b []byte) (int, error) {
	for {
		m, err := nbRead(fd, b)
		if err == unix.EINTR {
			continue
		}
		if m < 0 {
			m = 0
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			return 0, err
		}
		return m, err
	}
}
