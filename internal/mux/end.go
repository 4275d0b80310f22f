package mux

import (
	"errors"
	"io"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/wire"
)

// The ends of a client's session the core knows, for every protocol. A
// policy names them in its own words with NewError (lspmux: "language
// server keeps failing") and they still match here (errors.Is).
var (
	// ErrClosed: the multiplexer was stopped (Close: `procref stop`, or
	// the host shut down).
	ErrClosed = errors.New("the shared server was stopped")
	// ErrServerFailing: the server crashed more often than the restart
	// budget allows; the multiplexer stopped.
	ErrServerFailing = errors.New("the server keeps failing")
	// ErrNotStarted: the server could not start, or did not come up (LSP:
	// exited before answering initialize, or refused it).
	ErrNotStarted = errors.New("the server did not start")
	// ErrClientDone: the client ended its session itself (LSP exit); a
	// normal end, as EOF is.
	ErrClientDone = errors.New("the client ended its session")
)

// NewError returns an error with its own text that matches kind with
// errors.Is: a policy's name for one of the core's ends.
func NewError(text string, kind error) error { return &kindError{text, kind} }

type kindError struct {
	text string
	kind error
}

func (e *kindError) Error() string { return e.text }
func (e *kindError) Unwrap() error { return e.kind }

// EndReason says in one line why a client's session ended with err, for
// the user ("" for a normal end: nil, EOF, ErrClientDone). It is what the
// end notice (hostproto.EndNotice) and the handoff's end line carry.
func EndReason(err error) string {
	var why string
	switch {
	case err == nil, errors.Is(err, ErrClientDone), errors.Is(err, io.EOF):
		return ""
	case errors.Is(err, ErrClosed):
		why = "the shared backend was stopped (`procref stop`, or its host shut down)"
	case errors.Is(err, ErrServerFailing), errors.Is(err, ErrNotStarted):
		why = err.Error()
	case errors.Is(err, wire.ErrBadHeader):
		why = "procref dropped this window: it sent a malformed frame (" + err.Error() + ")"
	default:
		why = "procref dropped this window: " + err.Error()
	}
	return hostproto.CleanLine(why)
}
