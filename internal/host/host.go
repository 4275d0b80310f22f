// Package host is procref's per-service host: the detached process that owns
// one backend (a language server), listens for authenticated proxies on a
// unix socket in the private runtime dir (loopback TCP only as the fallback
// for a path too long for one), and shuts the backend down when the last
// proxy is gone. It is the
// launcher's supervisor with backend-specific hooks; what it says to a proxy
// is package hostproto.
//
// Two modes:
//
//   - tcp mode (an argument contains "{socket}" or "{port}"): the host
//     substitutes a unix socket path in its private runtime dir ({socket},
//     reachable only by this user) or a free loopback port ({port},
//     reachable by every local user), starts the backend, waits until it
//     accepts, and supervises it. A proxy's session connection to the host
//     only proves presence; the host tells it the backend's address and the
//     proxy relays bytes to the backend directly (e.g. gopls serve
//     -listen=unix;{socket}).
//   - mux mode (default): the backend is any stdio server; the host runs
//     the protocol's multiplexer (package lspmux for LSP, package mcp for
//     MCP and plain JSON-RPC). On Linux a proxy hands its stdin and stdout
//     to the host (hostproto.Handoff), which then reads and writes the
//     editor's pipes itself; elsewhere (or if the handoff is not possible)
//     the proxy's session connection carries the stream.
//
// A client never tells a host which command to run: the host runs only the
// hostproto.Spec it was started with, and the spec is part of the service
// key.
package host

import (
	"errors"
)

// ErrBackendStart means the backend could not be started; the text says how.
var ErrBackendStart = errors.New("backend did not start")
