//go:build !linux

package proxy

import (
	"context"
	"net"
)

// relayPoll is not used here: Relay copies with goroutines.
func relayPoll(ctx context.Context, ed Editor, conn, presence net.Conn) (Outcome, bool) {
	return 0, false
}
