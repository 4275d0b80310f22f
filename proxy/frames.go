package proxy

import (
	"bytes"
	"math"

	"github.com/procref/procref/internal/wire"
)

const (
	// gateMaxHeader bounds an LSP header; longer means it is not LSP.
	gateMaxHeader = 4 << 10
	// gateSmallBody: bodies up to this size are kept whole and scanned;
	// of larger ones only the ends are kept (endKeep) and the middle may
	// bypass the process (splice).
	gateSmallBody = 4 << 10
	// endKeep is how much of each end of a large body is kept: enough for
	// the top-level members before and after the bulk value (jsonrpc, id,
	// method), which wire.ScanEnds reads.
	endKeep = 512
)

// frames follows the Content-Length framing of one direction of an LSP
// stream, keeping of each body what the relay needs to look at — the whole
// of a small one, the two ends of a large one — while the middle of a
// large body may go around it (Splicable, Skip): the one framing follower
// of both directions (lspGate, inflight). A stream that stops looking like
// LSP framing makes it raw: from then on every byte may go around it.
// Not safe for concurrent use.
type frames struct {
	hdr  []byte // the current header so far (need < 0)
	need int    // body bytes still to come; -1 in a header
	size int    // the current body's length
	skip bool   // the current body is kept not at all (want said so)
	body []byte // a small body, or a large body's first endKeep bytes
	last []byte // a large body's last endKeep bytes
	raw  bool

	// want, if set, is asked at each body's start whether to keep it.
	want func() bool
}

func newFrames() frames { return frames{need: -1} }

// small reports whether the current body is kept whole.
func (f *frames) small() bool { return f.size <= gateSmallBody }

// ends is what the ends of the large body that just ended tell.
func (f *frames) ends() wire.Ends { return wire.ScanEnds(f.body, f.last) }

// event is what a step of frames completed.
type event int

const (
	noEvent  event = iota
	headKept       // a large body's first endKeep bytes are in body
	bodyEnd        // a body ended: the kept bytes are in body and last
)

// step consumes the first bytes of chunk that belong to one part of the
// stream — header bytes, or body bytes up to the end of a large body's
// kept head or up to the body's end — and returns how many, whether they
// were body bytes, and what they completed (of a kept body; the kept
// bytes stay until the next step). Once raw it takes all of chunk.
func (f *frames) step(chunk []byte) (n int, inBody bool, ev event) {
	if f.raw {
		return len(chunk), false, noEvent
	}
	if f.need < 0 {
		return f.header(chunk)
	}
	k := min(f.need, len(chunk))
	pos := f.size - f.need
	head := !f.skip && !f.small() && pos < endKeep
	if head {
		k = min(k, endKeep-pos)
	}
	f.keep(chunk[:k])
	f.need -= k
	switch {
	case f.need == 0:
		f.need = -1
		if !f.skip {
			ev = bodyEnd
		}
	case head && pos+k == endKeep:
		ev = headKept
	}
	return k, true, ev
}

// header consumes header bytes of chunk, up to the header's end.
func (f *frames) header(chunk []byte) (n int, inBody bool, ev event) {
	old := len(f.hdr)
	f.hdr = append(f.hdr, chunk...)
	end := bytes.Index(f.hdr, []byte("\r\n\r\n"))
	if end < 0 {
		f.raw = len(f.hdr) > gateMaxHeader
		return len(chunk), false, noEvent
	}
	n64, err := wire.ParseHeader(f.hdr[:end+4])
	if err != nil || n64 > math.MaxInt {
		f.raw = true
		return len(chunk), false, noEvent
	}
	f.hdr = f.hdr[:0]
	f.size, f.need = int(n64), int(n64)
	f.body, f.last = f.body[:0], f.last[:0]
	f.skip = f.want != nil && !f.want()
	if f.need == 0 {
		f.need = -1
		if !f.skip {
			ev = bodyEnd
		}
	}
	return end + 4 - old, false, ev
}

// keep keeps what of p (the next body bytes) is to be kept.
func (f *frames) keep(p []byte) {
	if f.skip {
		return
	}
	if f.small() {
		f.body = append(f.body, p...)
		return
	}
	pos := f.size - f.need // p's offset in the body
	if pos < endKeep {
		f.body = append(f.body, p[:min(len(p), endKeep-pos)]...)
	}
	if from := f.size - endKeep - pos; from < len(p) {
		f.last = append(f.last, p[max(from, 0):]...)
	}
}

// Splicable is how many bytes may go around step right now: the middle of
// a large body (between its kept ends), all of a large body not kept, or
// anything once raw. A small body is not worth a system call of its own:
// it goes through step with the bytes read around it.
func (f *frames) Splicable() int {
	switch {
	case f.raw:
		return 1 << 30
	case f.need <= 0 || f.small():
		return 0
	case f.skip:
		return f.need
	case f.size-f.need < endKeep:
		return 0
	}
	return max(f.need-endKeep, 0)
}

// Skip notes that n bytes (at most Splicable) went around step.
func (f *frames) Skip(n int) {
	if f.raw || n <= 0 {
		return
	}
	f.need -= n
	if f.need == 0 { // only a body not kept ends here: nothing to look at
		f.need = -1
	}
}
