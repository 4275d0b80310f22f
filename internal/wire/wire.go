// Package wire is the JSON-RPC wire layer every protocol shares: it reads
// and writes framed messages with a size bound (LSP's Content-Length
// headers, see [Reader], and newline-delimited JSON, see [Framing]), builds
// and edits messages, and inspects message bodies
// without decoding them: it finds the top-level "id", "method", "params",
// "result" and "error" members and nested members such as
// params.textDocument.uri as byte spans, so that a router can splice a
// rewritten id into the original bytes instead of decoding and re-encoding a
// 16 MiB message.
//
// Nothing in this package retains a body after returning, except where a
// function documents that its result aliases its input.
package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// ErrTooLarge is returned (wrapped, with the size) by [Reader.Read] when a
// header announces a body larger than the reader's bound (the stream stays
// in step: the next Read first discards that body), and by an NDJSON
// [MessageReader] for a line over its bound (the stream is lost).
var ErrTooLarge = errors.New("json-rpc message exceeds size limit")

// ErrBadHeader is returned (wrapped, with detail) by [Reader.Read] for a
// header block that cannot be trusted: no Content-Length, a negative or
// unparsable one, two that disagree, a line without a colon, or a header
// block over [MaxHeaderBytes]. The stream cannot be resynchronised after it,
// so every later Read returns the same error.
var ErrBadHeader = errors.New("malformed lsp header")

// ErrBadJSON is returned (wrapped, with the offset) by [Scan] and [Lookup]
// for a body that is not one valid JSON value of the expected shape.
var ErrBadJSON = errors.New("malformed json-rpc message")

// DefaultMaxMessage is the body size bound used when a caller passes 0.
const DefaultMaxMessage = 64 << 20

// MaxHeaderBytes bounds one header block (all header lines together).
const MaxHeaderBytes = 16 << 10

// Reader reads framed messages from a stream. It is not safe for concurrent
// use; one goroutine owns it.
type Reader struct {
	br      *bufio.Reader
	max     int64
	err     error // sticky: ErrBadHeader or a read error after which the stream is lost
	discard int64 // body bytes of a rejected (too large) message still to skip
}

// NewReader returns a Reader over r that refuses bodies over max bytes
// (max <= 0 means [DefaultMaxMessage]). It buffers; do not read r elsewhere.
func NewReader(r io.Reader, max int64) *Reader {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Read blocks until the next message and returns its body in a slice that
// the caller owns (large bodies reuse buffers handed back with [Recycle]). It returns io.EOF at a clean end of stream (between
// messages), io.ErrUnexpectedEOF when the stream ends inside a message,
// a wrapped [ErrBadHeader] for a header block it cannot trust, and a wrapped
// [ErrTooLarge] for a body over the bound (after which Read may be called
// again: the oversized body is skipped). Header names are matched
// case-insensitively; Content-Type and unknown headers are ignored. Memory
// grows with the bytes actually received, not with the announced length, so
// a peer that announces 60 MiB and sends nothing costs little.
func (r *Reader) Read() ([]byte, error) {
	return r.read()
}

// Buffered returns how many bytes have been received but not yet returned
// by Read: when it is 0, the next Read will block for input. A router uses
// it to flush what it gathered before waiting.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Max returns the reader's body size bound.
func (r *Reader) Max() int64 { return r.max }

// Write writes body as one framed message with a single Write call on w
// (or a single writev for a *net.TCPConn or *net.UnixConn with a large
// body), so that writers sharing w under a mutex interleave whole messages.
func Write(w io.Writer, body []byte) error {
	if len(body) >= writevMin {
		switch w.(type) {
		case *net.TCPConn, *net.UnixConn:
			var hb [40]byte
			bufs := net.Buffers{AppendHeader(hb[:0], len(body)), body}
			_, err := bufs.WriteTo(w)
			return err
		}
	}
	var hb [40]byte
	// append (not make+copy) so the runtime does not zero what it copies
	buf := append(AppendHeader(hb[:0], len(body)), body...)
	_, err := w.Write(buf)
	return err
}

// WriteEdited writes body with edits applied (see [AppendFrame]) as one
// framed message without building the edited body: a small message is
// copied into one buffer and written with one Write; in a large one the
// header, the edits and the short stretches between them are gathered into
// small buffers and the long unchanged stretches of body are handed to w
// as they are, with one writev for a net.Conn and consecutive Writes
// otherwise (so w must have no other writer meanwhile). Edits must not
// overlap. body is not modified or retained.
func WriteEdited(w io.Writer, body []byte, edits ...Edit) error {
	return writeEdited(w, body, edits)
}

// Recycle hands a body returned by [Reader.Read] back to the package's
// buffer pool, for a later Read of a large message to reuse. The caller
// must hold no reference to body or any slice of it afterwards; not
// calling Recycle is always safe (the garbage collector takes the body).
// Slices that did not come from Read are ignored unless their capacity is
// a pool size class, in which case they are pooled too.
func Recycle(body []byte) { recycle(body) }

// AppendHeader appends the "Content-Length: N\r\n\r\n" header for a body of
// n bytes to dst.
func AppendHeader(dst []byte, n int) []byte {
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, "\r\n\r\n"...)
}

// Span is the byte range [Start, End) of a JSON value inside a body. The
// zero Span means "absent".
type Span struct{ Start, End int }

// Ok reports whether the span is present.
func (s Span) Ok() bool { return s.End > s.Start }

// Of returns the bytes of the span in b (aliasing b), or nil if absent.
func (s Span) Of(b []byte) []byte {
	if !s.Ok() {
		return nil
	}
	return b[s.Start:s.End]
}

// Fields holds the spans of the top-level members of a JSON-RPC message.
// Method is the span of the raw string token, quotes included; use
// [Fields.MethodName] for its value.
type Fields struct {
	ID, Method, Params, Result, Error Span
	method                            string
}

// Kind of a JSON-RPC message, derived from which members are present.
type Kind int

// Kinds of message. Invalid covers a message with neither a method nor an
// id, or a method with a non-string value.
const (
	Invalid Kind = iota
	Request
	Notification
	Response
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case Notification:
		return "notification"
	case Response:
		return "response"
	}
	return "invalid"
}

// MethodName returns the decoded method name ("" if absent).
func (f *Fields) MethodName() string { return f.method }

// Kind classifies the message: a method and an id make a request, a method
// alone a notification, an id alone a response.
func (f *Fields) Kind() Kind {
	switch {
	case f.Method.Ok() && f.ID.Ok():
		return Request
	case f.Method.Ok():
		return Notification
	case f.ID.Ok():
		return Response
	}
	return Invalid
}

// Scan validates body as one JSON object (strings must be valid UTF-8;
// depth is bounded at [MaxDepth]) and returns the spans of its top-level
// "id", "method", "params", "result" and "error" members. It does not
// allocate except for an unknown method name or escaped member names. An
// object that names a member twice (at any depth) is refused: parsers
// disagree on which value wins. Errors wrap [ErrBadJSON].
func Scan(body []byte) (Fields, error) {
	return scan(body, false)
}

// ScanTrusted is [Scan] for a peer whose output is trusted to be valid
// JSON (the backend): it checks the structure but skips over strings
// without validating their contents (escapes, control characters, UTF-8)
// and does not look for duplicate names, which makes it several times
// faster on large string-heavy messages. The spans it returns are the same
// as Scan's for valid input.
func ScanTrusted(body []byte) (Fields, error) {
	return scan(body, true)
}

// MaxDepth bounds the nesting depth [Scan] and [Lookup] accept.
const MaxDepth = 512

// Lookup finds the member at path inside the JSON object raw (for example
// Lookup(params, "textDocument", "uri")) and returns its span within raw.
// It reports false (and a nil error) if a member on the path is absent or
// a value on the way is not an object. raw is assumed to be valid JSON
// (as after [Scan]); errors wrap [ErrBadJSON].
func Lookup(raw []byte, path ...string) (Span, bool, error) {
	return lookup(raw, path)
}

// Members finds several top-level members of the JSON object raw in one
// pass and returns their spans, in the order of keys (a zero Span for an
// absent key). raw is assumed valid; errors wrap [ErrBadJSON].
func Members(raw []byte, keys ...string) ([]Span, error) {
	return members(raw, keys)
}

// DeleteMember returns a new slice holding the JSON object raw without its
// top-level member key (and the comma that separated it), and whether the
// member was there. raw is not modified.
func DeleteMember(raw []byte, key string) ([]byte, bool, error) {
	return deleteMember(raw, key)
}

// Splice returns a new slice holding b with the span s replaced by repl.
// b is not modified.
func Splice(b []byte, s Span, repl []byte) []byte {
	// Built by appending (never make with a large capacity), so the
	// runtime copies without zeroing first.
	out := append([]byte(nil), b[:s.Start]...)
	out = append(out, repl...)
	return append(out, b[s.End:]...)
}

// Edit is one replacement for [WriteEdited] and [AppendFrame]: the
// span At in the original body is replaced by With.
type Edit struct {
	At   Span
	With []byte
}

// AppendFrame appends to dst the framed message (header and body) of body
// with edits (if any) applied. Edits must not overlap; they may come in any
// order. body is not modified or retained.
func AppendFrame(dst, body []byte, edits ...Edit) []byte {
	edits = sortEdits(edits)
	return appendEdits(AppendHeader(dst, editedLen(body, edits)), body, edits)
}

// Unquote decodes a raw JSON string token (quotes included). It returns an
// error wrapping [ErrBadJSON] if tok is not a string.
func Unquote(tok []byte) (string, error) {
	return unquote(tok)
}

// Quote returns s as a JSON string token.
func Quote(s string) []byte {
	return appendQuote(nil, s)
}

// AppendQuote appends s as a JSON string token to dst.
func AppendQuote(dst []byte, s string) []byte {
	return appendQuote(dst, s)
}

// errf wraps a sentinel with detail.
func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
