//go:build !linux

package hostproto

import (
	"net"

	"github.com/procref/procref/platform"
)

// Descriptor passing is implemented on Linux only; proxies relay elsewhere.

func handoff(session net.Conn, d *platform.PrivateDir, socket string, hostPID, in, out int, pending []byte) error {
	return ErrNoHandoff
}

// ListenHandoff is not available here: it returns ErrNoHandoff.
func ListenHandoff(d *platform.PrivateDir, name string) (*platform.UnixListener, error) {
	return nil, ErrNoHandoff
}

// ReceiveHandoff is not available here: it returns ErrNoHandoff.
func ReceiveHandoff(c *net.UnixConn) (Handed, error) { return Handed{}, ErrNoHandoff }
