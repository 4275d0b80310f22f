package protocol

import (
	"encoding/json"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/lspmux"
	"github.com/procref/procref/internal/wire"
)

// LSP is the Language Server Protocol: Content-Length framing, told by
// its first bytes alone; the multiplexer is lspmux.
var LSP = Protocol{
	Name:      hostproto.ProtocolLSP,
	Framing:   wire.Header,
	Detect:    func(wire.Framing, []byte) bool { return true },
	ErrorCode: -32002, // ServerNotInitialized: the editor shows the message
	Notice:    lspLogMessage,
	NewMux: func(c MuxConfig) (Multiplexer, error) {
		m, err := lspmux.New(lspmux.Config{
			Start:           c.Start,
			MaxMessage:      c.Spec.MaxMessage,
			Logger:          c.Logger,
			ShareGlobal:     c.Spec.Share == hostproto.ShareGlobal,
			ShutdownTimeout: c.StopTimeout,
			StderrTail:      c.StderrTail,
			FailureHint:     c.FailureHint,
		})
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return m, nil
	},
}

// lspLogMessage is a window/logMessage notification (type 3: info).
func lspLogMessage(message string) []byte {
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "method": "window/logMessage",
		"params": map[string]any{"type": 3, "message": message},
	})
	return b
}
