// Package protocol is the seam between procref and the protocols it
// multiplexes: one [Protocol] value per protocol, and the registry the
// proxy and the host consult instead of naming protocols themselves. The
// proxy detects a client's protocol from its first bytes ([Detect]), reads
// its first message when the protocol needs it in the share key, answers
// with an error or shows a notice in the protocol's own terms; the host
// builds the protocol's multiplexer ([Protocol.NewMux]).
//
// A new protocol is its multiplexer (or policy) package, a file here with
// its Protocol value, and its line in [registry]. Every protocol here is
// JSON-RPC, so the end notice (hostproto.EndMethod, read back with
// hostproto.Tail) and the error answer's shape are shared.
package protocol

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// Protocol is what the proxy and the host need of one protocol. The
// functions are called concurrently and must not retain their arguments.
type Protocol struct {
	// Name is the --protocol value and hostproto.Spec.Protocol.
	Name string
	// Framing is the framing its clients use; "" means either, as
	// detected from the first bytes.
	Framing wire.Framing
	// Detect reports whether a client whose stream is in framing f and
	// whose first message is first is this protocol's. first is nil while
	// the proxy has not read it: a protocol that claims the client then
	// (LSP, on framing alone) is chosen without anything consumed.
	Detect func(f wire.Framing, first []byte) bool
	// ReadsFirst is whether the proxy reads the first message before
	// attaching, for the share key (otherwise only --share=root reads
	// it, for the workspace root).
	ReadsFirst bool
	// Version is the protocol version the first message shows
	// (informative, hostproto.Spec.MCPVersion); nil: none.
	Version func(first []byte) string
	// ErrorCode is the JSON-RPC error code of procref's answer to the
	// client's first request when it cannot serve it.
	ErrorCode int
	// Notice returns a notification the client shows its user (a slow
	// cold start); nil: the protocol has none, nothing is sent.
	Notice func(message string) []byte
	// NewMux returns the host's multiplexer for the protocol.
	NewMux func(MuxConfig) (Multiplexer, error)
}

// MuxConfig is what the host gives a protocol's multiplexer.
type MuxConfig struct {
	// Spec is the shared backend's spec (framing, share, message bound).
	Spec *hostproto.Spec
	// Start starts (or takes the prestarted) server process.
	Start func(context.Context) (mux.Server, error)
	// Logger is the host's log.
	Logger *slog.Logger
	// StopTimeout bounds a graceful server shutdown.
	StopTimeout time.Duration
	// StderrTail and FailureHint go into the failure messages clients
	// get: the server's last stderr lines, and where the log is.
	StderrTail  func() string
	FailureHint string
}

// Multiplexer is what the mux-mode host needs of a protocol's
// multiplexer.
type Multiplexer interface {
	// ServeClient serves one client session; it blocks until it ends.
	ServeClient(ctx context.Context, conn io.ReadWriteCloser) error
	Clients() int
	Backends() int
	Close(ctx context.Context) error
	Done() <-chan struct{}
}

// registry is every protocol, in detection order: the first whose
// Detect claims a client wins, so the catch-all (JSON-RPC) is last.
var registry = []*Protocol{&LSP, &MCP, &JSONRPC}

// Lookup returns the protocol named name; "" is LSP (a spec's default).
func Lookup(name string) (*Protocol, error) {
	if name == "" {
		return &LSP, nil
	}
	for _, p := range registry {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("unknown protocol %q: procref speaks %s", name, Names())
}

// Names lists the protocol names for messages ("lsp, mcp or jsonrpc").
func Names() string {
	s := ""
	for i, p := range registry {
		switch {
		case i == 0:
		case i == len(registry)-1:
			s += " or "
		default:
			s += ", "
		}
		s += p.Name
	}
	return s
}

// Detect returns the protocol of a client whose stream is in framing f
// and whose first message is first (nil: not read yet); nil if none
// claims it yet, and the first message must be read.
func Detect(f wire.Framing, first []byte) *Protocol {
	for _, p := range registry {
		if (p.Framing == "" || p.Framing == f) && p.Detect(f, first) {
			return p
		}
	}
	return nil
}
