//go:build !unix

package host

import "net"

// freePort returns a loopback TCP port that is free now: the one the
// kernel picks for a listener on 127.0.0.1:0, which is then closed.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
