//go:build !linux

package proxy

import (
	"context"
	"net"
)

// relayPoll is not used here: relay copies with goroutines.
func relayPoll(ctx context.Context, ed editorIO, conn, presence net.Conn) (outcome, bool) {
	return 0, false
}
