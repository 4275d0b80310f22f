package mcp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/procref/procref/internal/lspframe"
)

// Framing is how JSON-RPC messages are delimited on a stream.
type Framing string

// Framings.
const (
	// NDJSON is one JSON message per line (MCP's stdio transport).
	NDJSON Framing = "ndjson"
	// Header is LSP's Content-Length header framing.
	Header Framing = "header"
)

// ErrTooLarge is returned (wrapped) by a [Reader] for a line longer than
// its bound; the session that sent it cannot continue.
var ErrTooLarge = errors.New("json-rpc message exceeds size limit")

// Reader reads one message at a time. It is not safe for concurrent use.
type Reader interface {
	// Read blocks until the next message and returns its body (without
	// framing). io.EOF means a clean end between messages.
	Read() ([]byte, error)
}

// NewReader returns a Reader of f-framed messages on r, refusing bodies
// over max bytes (max <= 0 means lspframe.DefaultMaxMessage).
func NewReader(f Framing, r io.Reader, max int64) Reader {
	if max <= 0 {
		max = lspframe.DefaultMaxMessage
	}
	if f == Header {
		return lspframe.NewReader(r, max)
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &lineReader{br: br, max: max}
}

// lineReader reads NDJSON: blank lines are skipped, "\r\n" is accepted.
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
func Write(f Framing, w io.Writer, body []byte) error {
	if f == Header {
		return lspframe.Write(w, body)
	}
	buf := make([]byte, 0, len(body)+1)
	buf = append(append(buf, body...), '\n')
	_, err := w.Write(buf)
	return err
}

// Detect peeks at the first bytes of br (blocking until the client sends
// something) and returns NDJSON if the first non-blank byte starts a JSON
// value, Header otherwise. Nothing is consumed.
func Detect(br *bufio.Reader) (Framing, error) {
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
