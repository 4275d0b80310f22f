package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Framing is how JSON-RPC messages are delimited on a stream.
type Framing string

// Framings.
const (
	// NDJSON is one JSON message per line (MCP's stdio transport).
	NDJSON Framing = "ndjson"
	// Header is LSP's Content-Length header framing (see [Reader]).
	Header Framing = "header"
)

// MessageReader reads one message at a time. It is not safe for concurrent
// use.
type MessageReader interface {
	// Read blocks until the next message and returns its body (without
	// framing). io.EOF means a clean end between messages.
	Read() ([]byte, error)
}

// NewReader returns a MessageReader of f-framed messages on r, refusing
// bodies over max bytes (max <= 0 means [DefaultMaxMessage]) with an error
// wrapping [ErrTooLarge]. It buffers; do not read r elsewhere.
func (f Framing) NewReader(r io.Reader, max int64) MessageReader {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	if f == Header {
		return NewReader(r, max)
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &lineReader{br: br, max: max}
}

// lineReader reads NDJSON: blank lines are skipped, "\r\n" is accepted.
// A line over the bound ends the stream: unlike a header, nothing says
// where the next message starts.
type lineReader struct {
	br  *bufio.Reader
	max int64
}

func (l *lineReader) Read() ([]byte, error) {
	for {
		var line []byte
		for {
			chunk, err := l.br.ReadSlice('\n')
			if int64(len(line)+len(chunk)) > l.max+2 {
				return nil, fmt.Errorf("%w: a line over %d bytes", ErrTooLarge, l.max)
			}
			line = append(line, chunk...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF && len(bytes.TrimSpace(line)) > 0 {
				return nil, io.ErrUnexpectedEOF // a message without its newline
			}
			if err != nil {
				return nil, err
			}
			break
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, nil
		}
	}
}

// Write writes body as one f-framed message with one Write call.
func (f Framing) Write(w io.Writer, body []byte) error {
	if f == Header {
		return Write(w, body)
	}
	buf := make([]byte, 0, len(body)+1)
	buf = append(append(buf, body...), '\n')
	_, err := w.Write(buf)
	return err
}

// AppendFrame appends to dst the f-framed message of body with edits (if
// any) applied (see [AppendFrame] for the rules on edits).
func (f Framing) AppendFrame(dst, body []byte, edits ...Edit) []byte {
	if f == Header {
		return AppendFrame(dst, body, edits...)
	}
	return append(appendEdits(dst, body, sortEdits(edits)), '\n')
}

// WriteFrame writes body with edits applied as one f-framed message (with
// Header framing as [WriteEdited] does).
func (f Framing) WriteFrame(w io.Writer, body []byte, edits ...Edit) error {
	if f == Header {
		return WriteEdited(w, body, edits...)
	}
	_, err := w.Write(f.AppendFrame(make([]byte, 0, len(body)+1), body, edits...))
	return err
}

// DetectFraming peeks at the first bytes of br (blocking until the client
// sends something) and returns NDJSON if the first non-blank byte starts a
// JSON value, Header otherwise. Nothing is consumed.
func DetectFraming(br *bufio.Reader) (Framing, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			return "", err
		}
		switch c := b[n-1]; c {
		case ' ', '\t', '\r', '\n':
			if n >= 4096 {
				return "", errors.New("the client sent only blank lines")
			}
			continue
		case '{', '[':
			return NDJSON, nil
		default:
			return Header, nil
		}
	}
}
