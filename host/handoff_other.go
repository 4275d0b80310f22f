//go:build !linux

package host

import (
	"log/slog"
	"net"
)

// startHandoff: descriptor passing is implemented on Linux only; proxies
// relay elsewhere.
func startHandoff(path string, log *slog.Logger) (*handoffServer, error) {
	return nil, ErrNoHandoff
}

func handoff(session net.Conn, socket string, pending []byte) error {
	return ErrNoHandoff
}
