package lspmux

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// ErrInitFailed is the cause (wrapped) ServeClient returns for a client
// whose initialize failed because the backend could not start, exited
// before answering, or refused it: the client was answered with an error
// and disconnected.
var ErrInitFailed = mux.NewError("language server did not start", mux.ErrNotStarted)

// withOutput appends the backend's last stderr lines (Config.StderrTail)
// to a description of its failure.
func (m *Mux) withOutput(msg string) string {
	if m.cfg.StderrTail == nil {
		return msg
	}
	if tail := strings.TrimSpace(m.cfg.StderrTail()); tail != "" {
		msg += "; its last output: " + strings.ReplaceAll(tail, "\n", " | ")
	}
	return msg
}

// withHint appends Config.FailureHint (where the log is) to a message
// for the user.
func (m *Mux) withHint(msg string) string {
	if m.cfg.FailureHint == "" {
		return msg
	}
	return msg + " (" + m.cfg.FailureHint + ")"
}

// refuseStopped serves a client that arrives after the mux stopped: its
// initialize (if it sends one within a second) is answered with why, then
// the connection is closed. It blocks for at most a second.
func (m *Mux) refuseStopped(conn io.ReadWriteCloser, why error) {
	t := time.AfterFunc(time.Second, func() { conn.Close() })
	defer t.Stop()
	defer conn.Close()
	body, err := wire.NewReader(conn, m.cfg.MaxMessage).Read()
	if err != nil {
		return
	}
	f, err := wire.Scan(body)
	if err != nil || f.Kind() != wire.Request {
		return
	}
	msg := m.withHint(fmt.Sprintf("language server unavailable: %v", why))
	wire.Write(conn, msgError(f.ID.Of(body), codeRequestFailed, msg))
}
