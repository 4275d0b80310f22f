package handshake

import (
	"context"
	"net"
)

// Dial connects to a host on 127.0.0.1:port and runs [Client]: the tests'
// shorthand for DialTarget(ctx, TCP(port), ...).
func Dial(ctx context.Context, port int, token, nonce string, pid int, verb string) (net.Conn, error) {
	return DialTarget(ctx, TCP(port), token, nonce, pid, verb)
}
