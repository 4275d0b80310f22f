package hostproto

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Addr is where a tcp-mode backend listens: Network "unix" with a socket
// path ({socket}) or "tcp" with 127.0.0.1:PORT ({port}).
type Addr struct {
	Network, Address string
}

func (a Addr) String() string { return a.Network + " " + a.Address }

// PortWarning is what procref says wherever a {port} backend shows up.
func PortWarning(a Addr) string {
	return fmt.Sprintf("the backend listens on %s, which every local user can connect to without procref's token; use {socket} instead of {port} if the server can listen on a unix socket (gopls: -listen=unix;{socket})", a.Address)
}

// WriteBackendAddr is the tcp-mode host's first and only line on a
// session: "backend NETWORK ADDRESS\n".
func WriteBackendAddr(w io.Writer, a Addr) error {
	_, err := fmt.Fprintf(w, "backend %s\n", a)
	return err
}

// ReadBackendAddr reads the host's "backend NETWORK ADDRESS" line in tcp
// mode, waiting at most timeout.
func ReadBackendAddr(conn net.Conn, timeout time.Duration) (Addr, error) {
	conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	// The host writes one line and nothing more until its backend
	// crashes (WriteEnded), long after: a buffered reader cannot swallow
	// that line.
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return Addr{}, fmt.Errorf("reading the backend address from the host: %w", err)
	}
	rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "backend ")
	network, address, _ := strings.Cut(rest, " ")
	if !ok || (network != "unix" && network != "tcp") || address == "" {
		return Addr{}, fmt.Errorf("host sent %q, want \"backend NETWORK ADDRESS\"", line)
	}
	return Addr{Network: network, Address: address}, nil
}
