package host

import (
	"context"
	"io"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/lspmux"
	"github.com/procref/procref/internal/mcp"
	"github.com/procref/procref/internal/wire"
)

// multiplexer is what the mux-mode host needs of a protocol's multiplexer
// (lspmux.Mux, mcp.Mux).
type multiplexer interface {
	ServeClient(ctx context.Context, conn io.ReadWriteCloser) error
	Clients() int
	Backends() int
	Close(ctx context.Context) error
	Done() <-chan struct{}
}

// newMultiplexer returns the multiplexer for the spec's protocol; start
// starts (or takes the prestarted) server process; stderrTail and
// failureHint go into the LSP multiplexer's failure messages.
func (b *backend) newMultiplexer(start func(context.Context) (lspmux.Backend, error), stderrTail func() string, failureHint string) (multiplexer, error) {
	switch b.spec.Protocol {
	case hostproto.ProtocolMCP, hostproto.ProtocolJSONRPC:
		policy := mcp.MCP
		if b.spec.Protocol == hostproto.ProtocolJSONRPC {
			policy = mcp.Plain
		}
		return mcp.New(mcp.Config{
			Start:      start,
			Policy:     policy,
			Framing:    wire.Framing(b.spec.Framing),
			MaxMessage: b.spec.MaxMessage,
			Logger:     b.log,
		})
	}
	m, err := lspmux.New(lspmux.Config{
		Start:           start,
		MaxMessage:      b.spec.MaxMessage,
		Logger:          b.log,
		ShareGlobal:     b.spec.Share == hostproto.ShareGlobal,
		ShutdownTimeout: b.stopTimeout,
		StderrTail:      stderrTail,
		FailureHint:     failureHint,
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}
