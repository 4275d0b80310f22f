// Package proxy is the proxy process, one per editor window: [Run] takes a
// kernel reference, finds or starts the shared host through the launcher,
// and connects the editor to it. In mux mode on Linux it hands the editor's
// stdin and stdout to the host (hostproto.Handoff) and waits for the end of
// the session; otherwise it relays ([Relay]: poll/splice on Linux,
// goroutines elsewhere). It reads the few messages it must itself: the
// editor's first message (the workspace root, the protocol), an error
// answer to initialize when the backend cannot start, and a
// window/logMessage during a slow cold start. It never imports the host:
// what the two say to each other is package hostproto.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/internal/hostproto"
)

// initializeParams is what the proxy learns from the editor's first message.
type initializeParams struct {
	// ID is the request's raw JSON id; nil if the message was not a request.
	ID json.RawMessage
	// Method is the first message's method.
	Method string
	// Root is the workspace root directory ("" if the message names none):
	// workspaceFolders[0], then rootUri, then rootPath.
	Root string
}

// parseInitialize reads the root out of an editor's first message.
func parseInitialize(body []byte) (initializeParams, error) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			WorkspaceFolders []struct {
				URI string `json:"uri"`
			} `json:"workspaceFolders"`
			RootURI  *string `json:"rootUri"`
			RootPath *string `json:"rootPath"`
		} `json:"params"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return initializeParams{}, err
	}
	in := initializeParams{ID: m.ID, Method: m.Method}
	if string(in.ID) == "null" {
		in.ID = nil
	}
	switch {
	case len(m.Params.WorkspaceFolders) > 0 && m.Params.WorkspaceFolders[0].URI != "":
		in.Root = uriToPath(m.Params.WorkspaceFolders[0].URI)
	case m.Params.RootURI != nil && *m.Params.RootURI != "":
		in.Root = uriToPath(*m.Params.RootURI)
	case m.Params.RootPath != nil && *m.Params.RootPath != "":
		in.Root = filepath.Clean(*m.Params.RootPath)
	}
	return in, nil
}

// uriToPath turns a file:// URI into a path (other URIs are returned as is).
func uriToPath(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return uri
	}
	p := u.Path
	if runtime.GOOS == "windows" {
		p = strings.TrimPrefix(p, "/")
	}
	return filepath.Clean(filepath.FromSlash(p))
}

// PathToURI returns the file:// URI of an absolute path (the inverse of
// URIToPath).
func PathToURI(path string) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

// errorResponse returns a JSON-RPC error response body for id.
func errorResponse(id json.RawMessage, code int, message string) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message}})
	return b
}

// outcome is how a relay ended.
type outcome int

const (
	// editorClosed: the editor closed its end (EOF on stdin): a clean detach.
	editorClosed outcome = iota
	// backendClosed: the backend or host closed the connection while the
	// editor was still attached.
	backendClosed
	// canceled: ctx was canceled (a signal).
	canceled
)

// editorGrace is how long, after the editor closes its end, the relay keeps
// delivering the backend's last bytes (e.g. the answer to shutdown).
const editorGrace = 2 * time.Second

// backendGrace is how long, after the backend closes, the relay waits for the
// editor to close too before calling it a failure: after an LSP exit the
// server closes first and the editor follows.
const backendGrace = 500 * time.Millisecond

// editorIO is the editor's side of a relay.
type editorIO struct {
	// In carries the editor's messages (the proxy's stdin).
	In io.Reader
	// Out goes to the editor (the proxy's stdout).
	Out io.Writer
	// Pending are bytes already read from In (for instance while peeking
	// at initialize); they reach the backend before anything else.
	Pending []byte
	// LSP says the editor's stream is LSP-framed and the backend is shared
	// as is (tcp mode): the relay then keeps the editor's exit
	// notification from the backend and half-closes the connection
	// instead, which ends only this window's session (gopls ends its whole
	// process on an exit without shutdown). The framing is followed
	// exactly; a stream that stops looking like LSP passes unchanged.
	LSP bool
	// Tail, if set, gets a copy of what the backend sends the editor (mux
	// mode: the host's reason for ending the session is its last message).
	// The backend→editor bytes then pass through the process (no splice).
	Tail *hostproto.Tail
	// Inflight, if set, follows the editor's requests and the server's
	// answers (tcp mode), so that those in flight when the server crashes
	// get an error. The backend→editor bytes then pass through the process
	// (Inflight keeps only what it must look at: headers, small bodies, the
	// ends of large ones).
	Inflight *inflight
	// Note, if set, gets what the host sends on the presence connection
	// (tcp mode: why the backend ended).
	Note *hostproto.Note
}

// copyNote reads what the host sends on presence into note (discarded if
// nil) until the connection ends, then closes note.
func copyNote(note *hostproto.Note, presence net.Conn) {
	if note == nil {
		io.Copy(io.Discard, presence)
		return
	}
	io.Copy(note, presence)
	note.Close()
}

// relay copies bytes editor→conn and conn→editor until one side ends, then
// tidies up: on editor EOF it half-closes conn and drains what is left; on
// backend EOF it waits briefly for the editor to close too. presence, if
// non-nil, is a connection whose end (EOF or error) means the host is gone.
// relay closes conn (not presence). It blocks.
//
// When In and Out are pipes or sockets (*os.File) and conn is a TCP or unix
// connection, on Linux relay runs one poll(2) loop on
// the raw descriptors — what a minimal C relay does — instead of two
// goroutines on Go's poller: a message then costs one wake-up and three
// system calls per direction. It puts In and Out in non-blocking mode for
// the duration and restores their flags before it returns. Otherwise (a
// terminal, a file, net.Pipe in tests, Windows) it copies with goroutines.
//
// PROCREF_RELAY=copy selects the portable relay everywhere, to measure
// what the poll(2) relay gains (bench/hover.sh).
func relay(ctx context.Context, ed editorIO, conn net.Conn, presence net.Conn) outcome {
	if os.Getenv("PROCREF_RELAY") != "copy" {
		if o, ok := relayPoll(ctx, ed, conn, presence); ok {
			return o
		}
	}
	return relayCopy(ctx, ed, conn, presence)
}

// relayCopy is the portable relay: one goroutine per direction.
func relayCopy(ctx context.Context, ed editorIO, conn net.Conn, presence net.Conn) outcome {
	editorDone := make(chan struct{})
	backendDone := make(chan struct{})
	hostGone := make(chan struct{})
	var once sync.Once
	closeConn := func() { once.Do(func() { conn.Close() }) }
	defer closeConn()

	watch := &exitWatcher{r: io.MultiReader(bytes.NewReader(ed.Pending), ed.In), gate: newLSPGate(ed.LSP)}
	watch.gate.seen = ed.Inflight
	go func() {
		defer close(editorDone)
		// Plain read/write with a large buffer: io.Copy would pick a
		// WriteTo/ReadFrom that falls back to 32 KiB chunks for pipes.
		io.CopyBuffer(struct{ io.Writer }{conn}, watch, make([]byte, copyBuffer))
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	go func() {
		defer close(backendDone)
		out := ed.Out
		if ed.Tail != nil {
			out = io.MultiWriter(out, ed.Tail)
		}
		if ed.Inflight != nil {
			out = io.MultiWriter(out, ed.Inflight)
		}
		io.Copy(out, conn)
	}()
	if presence != nil {
		go func() {
			defer close(hostGone)
			copyNote(ed.Note, presence)
		}()
	}
	select {
	case <-editorDone:
		t := time.NewTimer(editorGrace)
		defer t.Stop()
		select {
		case <-backendDone:
		case <-t.C:
		case <-ctx.Done():
		}
		return editorClosed
	case <-backendDone:
		if watch.sawExit() {
			// The editor sent LSP exit: the backend closing is the normal
			// end of the session even if the editor keeps stdin open
			// (Neovim 0.7 does until the process exits).
			return editorClosed
		}
		if ed.Tail.EndReason() != "" || ed.Note.Reason() != "" {
			return backendClosed // the host said why: no need to wait for the editor
		}
		t := time.NewTimer(backendGrace)
		defer t.Stop()
		select {
		case <-editorDone:
			return editorClosed
		case <-t.C:
			if watch.sawExit() {
				return editorClosed
			}
			return backendClosed
		case <-ctx.Done():
			return canceled
		}
	case <-hostGone:
		return backendClosed
	case <-ctx.Done():
		return canceled
	}
}

// copyBuffer is the editor→backend copy buffer; with grown pipes (see
// cmd/procref) a 16 MiB message crosses in a few system calls.
const copyBuffer = 256 << 10

// exitWatcher passes the editor's bytes through an lspGate (which, if it
// withholds exit, ends the stream there) and tells whether the editor sent
// exit.
type exitWatcher struct {
	r    io.Reader
	gate *lspGate
	out  []byte // gate output not yet returned
	buf  []byte
	mu   sync.Mutex // gate: Read writes, sawExit reads
}

func (w *exitWatcher) Read(p []byte) (int, error) {
	for len(w.out) == 0 {
		w.mu.Lock()
		stopped := w.gate.stopped()
		w.mu.Unlock()
		if stopped {
			return 0, io.EOF
		}
		if w.buf == nil {
			w.buf = make([]byte, 64<<10)
		}
		n, err := w.r.Read(w.buf)
		w.mu.Lock()
		w.out = w.gate.Filter(w.out[:0], w.buf[:n])
		w.mu.Unlock()
		if err != nil && len(w.out) == 0 {
			return 0, err
		}
	}
	n := copy(p, w.out)
	w.out = w.out[n:]
	return n, nil
}

func (w *exitWatcher) sawExit() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gate.exit
}

var exitMethod = []byte(`"exit"`)

// isStdinClosed reports whether err from reading stdin means the editor went
// away.
func isStdinClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}
