// Package host is procref's per-service host: the detached process that owns
// one backend (a language server), listens on loopback for authenticated
// proxies, and shuts the backend down when the last proxy is gone. It is the
// launcher's supervisor with backend-specific hooks.
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
//   - mux mode (default): the backend is any stdio language server; the host
//     runs the LSP multiplexer (package lspmux). On Linux a proxy hands
//     its stdin and stdout to the host ([Handoff]), which then reads and
//     writes the editor's pipes itself; elsewhere (or if the handoff is not
//     possible) the proxy's session connection carries the LSP stream.
//
// A client never tells a host which command to run: the host runs only the
// [Spec] it was started with, and the spec is part of the service key.
package host

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/launcher"
	"github.com/procref/procref/refcount"
)

// Modes.
const (
	ModeTCP = "tcp"
	ModeMux = "mux"
)

// Share scopes.
const (
	ShareRoot   = "root"   // one backend per workspace root (default)
	ShareGlobal = "global" // one backend for all roots
	ShareKey    = "key"    // one backend per explicit --share-key
)

// Placeholders in a backend argument select tcp mode. SocketPlaceholder
// becomes a unix socket path in the private runtime dir; PortPlaceholder a
// free loopback TCP port, which every local user can connect to.
const (
	SocketPlaceholder = "{socket}"
	PortPlaceholder   = "{port}"
)

// EnvSpec carries the JSON spec from the proxy to `procref host`.
const EnvSpec = "PROCREF_HOST_SPEC"

// ErrBackendStart means the backend could not be started; the text says how.
var ErrBackendStart = errors.New("backend did not start")

// Spec is everything that defines one shared backend.
type Spec struct {
	Mode     string   `json:"mode"`
	Command  []string `json:"command"` // Command[0] is an absolute path
	Dir      string   `json:"dir"`     // backend working directory
	Share    string   `json:"share"`
	ShareKey string   `json:"share_key,omitempty"`
	Root     string   `json:"root,omitempty"`
	// KeyEnv are environment entries (NAME=value) that are part of the key.
	KeyEnv []string `json:"key_env,omitempty"`
	// Protocol is "" (LSP), ProtocolMCP or ProtocolJSONRPC (mux mode);
	// Framing is the JSON-RPC framing (mcp.NDJSON or mcp.Header);
	// MCPVersion the protocolVersion of the first client's initialize.
	Protocol   string `json:"protocol,omitempty"`
	Framing    string `json:"framing,omitempty"`
	MCPVersion string `json:"mcp_version,omitempty"`
	// Name overrides the base of the service name (default: command base).
	Name         string        `json:"name,omitempty"`
	Linger       time.Duration `json:"linger"`
	StartTimeout time.Duration `json:"start_timeout"`
	MaxMessage   int64         `json:"max_message,omitempty"`
	LogLevel     string        `json:"log_level,omitempty"`
	Impl         string        `json:"impl,omitempty"`
	// Dir and LogDir override the runtime and state dirs (tests).
	RuntimeDir string `json:"runtime_dir,omitempty"`
	LogDir     string `json:"log_dir,omitempty"`
}

// ModeFor returns the mode a command implies: tcp if any argument contains
// the socket or the port placeholder.
func ModeFor(command []string) string {
	for _, a := range command[1:] {
		if strings.Contains(a, SocketPlaceholder) || strings.Contains(a, PortPlaceholder) {
			return ModeTCP
		}
	}
	return ModeMux
}

// Key returns the service key: uid, protocol version, mode, absolute command
// path, arguments, share scope, root or share key, and KeyEnv.
func (s *Spec) Key() string {
	parts := []string{"mode=" + s.Mode, "share=" + s.Share}
	switch s.Share {
	case ShareRoot:
		parts = append(parts, "root="+s.Root)
	case ShareKey:
		parts = append(parts, "key="+s.ShareKey)
	}
	parts = append(parts, "argc="+fmt.Sprint(len(s.Command)))
	parts = append(parts, s.Command...)
	parts = append(parts, s.KeyEnv...)
	if s.Protocol != "" && s.Protocol != ProtocolLSP {
		parts = append(parts, "protocol="+s.Protocol, "framing="+s.Framing, "mcp-version="+s.MCPVersion)
	}
	return launcher.Key(parts...)
}

// ServiceName returns "<name or command base>-<12 hex of key>".
func (s *Spec) ServiceName() string {
	base := s.Name
	if base == "" {
		base = filepath.Base(s.Command[0])
	}
	return launcher.Name(base, s.Key())
}

// Service returns the launcher service for s, as seen by a proxy: starting
// it spawns `EXE host` with the spec in the environment. exe is the procref
// executable.
func (s *Spec) Service(exe string) (*launcher.Service, error) {
	impl, err := refcount.ParseImpl(s.Impl)
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return &launcher.Service{
		Name:         s.ServiceName(),
		Key:          s.Key(),
		Linger:       s.Linger,
		StartTimeout: s.StartTimeout + 5*time.Second,
		Dir:          s.RuntimeDir,
		LogDir:       s.LogDir,
		Impl:         impl,
		// A window that arrives while a host drains starts a new host at
		// once instead of waiting for the old backend to shut down: every
		// file of a host instance is its own (sockets carry its pid), the
		// backend's port is picked fresh, and a mux backend is private to
		// its host.
		Overlap: true,
		Spawn: func() (*exec.Cmd, error) {
			cmd := exec.Command(exe, "host")
			cmd.Env = append(os.Environ(), EnvSpec+"="+string(spec))
			cmd.Dir = s.Dir
			return cmd, nil
		},
	}, nil
}

// ErrNoHandoff means the descriptor handoff is not possible here (not
// Linux, no handoff socket, an editor side that is not a pipe or socket);
// the proxy relays instead.
var ErrNoHandoff = errors.New("no descriptor handoff")

// HandoffSocket is the unix socket, in the private runtime dir, on which
// the mux-mode host of serviceName with process id hostPID takes editors'
// descriptors from their proxies. One per host: a draining host and its
// successor run side by side (see the Overlap in Service).
func HandoffSocket(runtimeDir, serviceName string, hostPID int) string {
	return filepath.Join(runtimeDir, serviceName+"."+strconv.Itoa(hostPID)+".fd.sock")
}

// Handoff passes the proxy's stdin and stdout (descriptors 0 and 1) to the
// mux-mode host at the other end of session, an attached session
// connection; pending are editor bytes the proxy has already read (they are
// served first). It blocks until the host has the descriptors. After a nil
// return the proxy must not read stdin or write stdout again; it waits with
// [WaitHandedOff]. An error wrapping [ErrNoHandoff] means nothing was sent
// and the proxy can relay instead; any other error leaves the session
// unusable.
func Handoff(session net.Conn, socket string, pending []byte) error {
	return handoff(session, socket, pending)
}

// WaitHandedOff blocks until the window's session, handed off with
// [Handoff], ends. It returns nil when it ended normally (the host said
// "bye": the editor sent exit or closed its end) or ctx ended (a signal:
// the caller exits, which ends the session). Otherwise it returns why: the
// host's reason (its "end REASON" line), or that the host went away.
func WaitHandedOff(ctx context.Context, session net.Conn) error {
	done := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(io.LimitReader(session, 64<<10)).ReadString('\n')
		switch {
		case line == "bye\n":
			done <- nil
		case strings.HasPrefix(line, "end ") && err == nil:
			done <- errors.New(strings.TrimSpace(strings.TrimPrefix(line, "end ")))
		default:
			done <- ErrHostGone
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

// ErrHostGone is WaitHandedOff's answer when the host closed the session
// without saying why (it crashed or was killed).
var ErrHostGone = errors.New("the host went away")
