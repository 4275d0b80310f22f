package wire

import (
	"math/bits"
	"net"
	"slices"
	"sync"
)

// Large bodies are read into buffers drawn from a pool of power-of-two
// size classes, so that a stream of 16 MiB messages reuses a few warm
// buffers instead of allocating (zeroing, faulting in) 16 MiB per message
// and leaving the garbage collector to return it.
const (
	poolMinShift = 16 // 64 KiB: smaller bodies are plain allocations
	poolMaxShift = 27 // 128 MiB
)

var pools [poolMaxShift - poolMinShift + 1]sync.Pool // of *[]byte with len == cap == class size

// class returns the pool index for a buffer of at least n bytes, or -1.
func class(n int) int {
	if n <= 1<<poolMinShift {
		if n <= 0 {
			return -1
		}
		return 0
	}
	s := bits.Len(uint(n - 1))
	if s > poolMaxShift {
		return -1
	}
	return s - poolMinShift
}

// pooled returns a pooled buffer of n bytes (cap a class size) if the
// pool holds one, else nil.
func pooled(n int) []byte {
	c := class(n)
	if c < 0 {
		return nil
	}
	if p, _ := pools[c].Get().(*[]byte); p != nil {
		return (*p)[:n]
	}
	return nil
}

// alloc returns a buffer of n bytes whose capacity is its class size, so
// that it can be recycled (a fresh allocation if the pool is empty).
func alloc(n int) []byte {
	if b := pooled(n); b != nil {
		return b
	}
	c := class(n)
	if c < 0 {
		return make([]byte, n)
	}
	return make([]byte, n, 1<<(c+poolMinShift))
}

func recycle(b []byte) {
	c := class(cap(b))
	if c < 0 || cap(b) != 1<<(c+poolMinShift) || cap(b) < 1<<poolMinShift {
		return
	}
	b = b[:cap(b)]
	pools[c].Put(&b)
}

// smallFrame is the frame size up to which writeEdited copies the whole
// message into one buffer (one Write); coalesce is the piece size under
// which a piece is copied next to its neighbours rather than written on its
// own.
const (
	smallFrame = 64 << 10
	coalesce   = 16 << 10
)

func writeEdited(w interface{ Write([]byte) (int, error) }, body []byte, edits []Edit) error {
	edits = sortEdits(edits)
	n := editedLen(body, edits)
	var hb [40]byte
	head := AppendHeader(hb[:0], n)
	if len(head)+n <= smallFrame {
		buf := make([]byte, 0, len(head)+n)
		_, err := w.Write(appendEdits(append(buf, head...), body, edits))
		return err
	}
	// Large: the unchanged stretches of body go out as they are (writev on
	// a net.Conn, one Write each otherwise); only small pieces are copied.
	bufs := make(net.Buffers, 0, 2*len(edits)+3)
	cur := append(make([]byte, 0, 256), head...)
	add := func(p []byte) {
		if len(p) < coalesce {
			cur = append(cur, p...)
			return
		}
		if len(cur) > 0 {
			bufs = append(bufs, cur)
			cur = nil
		}
		bufs = append(bufs, p)
	}
	at := 0
	for _, e := range edits {
		add(body[at:e.At.Start])
		add(e.With)
		at = e.At.End
	}
	add(body[at:])
	if len(cur) > 0 {
		bufs = append(bufs, cur)
	}
	_, err := bufs.WriteTo(w)
	return err
}

// sortEdits returns edits in body order, cloned first if they must be
// sorted (the caller's slice is not reordered).
func sortEdits(edits []Edit) []Edit {
	byStart := func(x, y Edit) int { return x.At.Start - y.At.Start }
	if len(edits) > 1 && !slices.IsSortedFunc(edits, byStart) {
		edits = slices.Clone(edits)
		slices.SortFunc(edits, byStart)
	}
	return edits
}

// editedLen is the length of body with the edits applied.
func editedLen(body []byte, edits []Edit) int {
	n := len(body)
	for _, e := range edits {
		n += len(e.With) - (e.At.End - e.At.Start)
	}
	return n
}

// appendEdits appends body with the edits (in body order) applied to dst:
// the one edit applier of the package. Built by append, so the runtime
// copies without zeroing first.
func appendEdits(dst, body []byte, edits []Edit) []byte {
	at := 0
	for _, e := range edits {
		dst = append(dst, body[at:e.At.Start]...)
		dst = append(dst, e.With...)
		at = e.At.End
	}
	return append(dst, body[at:]...)
}
