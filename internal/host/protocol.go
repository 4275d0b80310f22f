package host

import (
	"context"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/protocol"
)

// multiplexer is what the mux-mode host needs of a protocol's multiplexer.
type multiplexer = protocol.Multiplexer

// newMultiplexer returns the multiplexer of the spec's protocol (see
// package protocol); start starts (or takes the prestarted) server
// process; stderrTail and failureHint go into the failure messages.
func (b *backend) newMultiplexer(start func(context.Context) (mux.Server, error), stderrTail func() string, failureHint string) (multiplexer, error) {
	proto, err := protocol.Lookup(b.spec.Protocol)
	if err != nil {
		return nil, err
	}
	return proto.NewMux(protocol.MuxConfig{
		Spec:        b.spec,
		Start:       start,
		Logger:      b.log,
		StopTimeout: b.stopTimeout,
		StderrTail:  stderrTail,
		FailureHint: failureHint,
	})
}
