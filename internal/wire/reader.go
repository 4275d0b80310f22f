package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// writevMin is the body size from which Write hands header and body to
// writev instead of copying them into one buffer.
const writevMin = 256 << 10

// firstChunk is the initial body allocation for bodies whose announced
// length exceeds it; the buffer then doubles as bytes arrive (so memory
// follows what the peer really sent, at most twice over).
const firstChunk = 256 << 10

var contentLength = []byte("content-length")

func (r *Reader) read() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.discard > 0 {
		n, err := r.br.Discard(int(min(r.discard, int64(^uint(0)>>1))))
		r.discard -= int64(n)
		if err != nil {
			return nil, r.fail(eofMid(err))
		}
	}
	n, err := r.header()
	if err != nil {
		return nil, r.fail(err)
	}
	if n > r.max {
		r.discard = n
		return nil, errf(ErrTooLarge, "%d bytes announced, limit %d", n, r.max)
	}
	body, err := r.body(int(n))
	if err != nil {
		return nil, r.fail(eofMid(err))
	}
	return body, nil
}

// Ready reports whether a whole message has been received and not yet
// returned, so that the next Read will not block. It may report false for
// some messages that are there (it only recognises "\r\n" header lines);
// a router uses it to flush what it gathered before Read may wait.
func (r *Reader) Ready() bool {
	if r.err != nil || r.discard > 0 {
		return false
	}
	n := r.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.br.Peek(n)
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return false
	}
	length := -1
	for h := b[:end]; len(h) > 0; {
		line := h
		if i := bytes.Index(h, []byte("\r\n")); i >= 0 {
			line, h = h[:i], h[i+2:]
		} else {
			h = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return false // Read reports it
		}
		if bytes.EqualFold(bytes.TrimSpace(line[:colon]), contentLength) {
			v, err := strconv.Atoi(string(bytes.TrimSpace(line[colon+1:])))
			if err != nil || v < 0 {
				return false
			}
			length = v
		}
	}
	return length >= 0 && int64(length) <= r.max && end+4+length <= n
}

// fail makes err sticky unless it is ErrTooLarge (recoverable).
func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

func eofMid(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// header reads one header block and returns the Content-Length.
func (r *Reader) header() (int64, error) {
	length := int64(-1)
	total := 0
	for first := true; ; first = false {
		line, err := r.br.ReadSlice('\n')
		total += len(line)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, errf(ErrBadHeader, "header line longer than %d bytes", r.br.Size())
			}
			if errors.Is(err, io.EOF) {
				if first && len(line) == 0 {
					return 0, io.EOF
				}
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if total > MaxHeaderBytes {
			return 0, errf(ErrBadHeader, "header block longer than %d bytes", MaxHeaderBytes)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if err := headerLine(line, &length); err != nil {
			return 0, err
		}
	}
	if length < 0 {
		return 0, errf(ErrBadHeader, "no Content-Length")
	}
	return length, nil
}

// headerLine takes one header line (without its line end) into length,
// the Content-Length so far (-1: none yet).
func headerLine(line []byte, length *int64) error {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return errf(ErrBadHeader, "header line without colon: %.40q", line)
	}
	name := bytes.TrimSpace(line[:colon])
	if !bytes.EqualFold(name, contentLength) {
		return nil // Content-Type and anything else: tolerated, ignored
	}
	val := bytes.TrimSpace(line[colon+1:])
	n, perr := strconv.ParseInt(string(val), 10, 64)
	if perr != nil || n < 0 {
		return errf(ErrBadHeader, "bad Content-Length %.40q", val)
	}
	if *length >= 0 && *length != n {
		return errf(ErrBadHeader, "conflicting Content-Length %d and %d", *length, n)
	}
	*length = n
	return nil
}

// ParseHeader returns the Content-Length of one complete header block (its
// lines up to the empty line that ends it), by the rules Reader.Read
// applies; a block it cannot trust is a wrapped [ErrBadHeader].
func ParseHeader(block []byte) (int64, error) {
	if len(block) > MaxHeaderBytes {
		return 0, errf(ErrBadHeader, "header block longer than %d bytes", MaxHeaderBytes)
	}
	length := int64(-1)
	for _, line := range bytes.Split(block, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		if err := headerLine(line, &length); err != nil {
			return 0, err
		}
	}
	if length < 0 {
		return 0, errf(ErrBadHeader, "no Content-Length")
	}
	return length, nil
}

func (r *Reader) body(n int) ([]byte, error) {
	if n < 1<<poolMinShift {
		b := make([]byte, n)
		_, err := io.ReadFull(r.br, b)
		return b, err
	}
	if b := pooled(n); b != nil {
		// a warm buffer costs no new memory, whatever the peer sends
		if _, err := io.ReadFull(r.br, b); err != nil {
			recycle(b)
			return nil, err
		}
		return b, nil
	}
	b := alloc(min(n, firstChunk))[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			// grow 8x: few copies for big bodies, while a peer that
			// announces much and sends little costs at most 8x what it sent
			nb := alloc(min(8*cap(b), n))
			copy(nb, b)
			recycle(b)
			b = nb[:len(b)]
		}
		m, err := r.br.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			recycle(b)
			return nil, err
		}
	}
	return b, nil
}
