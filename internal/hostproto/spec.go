// Package hostproto is the protocol between a procref proxy (package proxy,
// one per editor window) and the host (package host, one per shared
// backend), both halves of it. A proxy finds or starts its host through the
// launcher (package launcher: kernel reference, hint file, startup lock,
// the authenticated session connection, status and stop); what the two
// then say on that session is defined here:
//
//   - [Spec]: what the host runs, handed to `procref host` in [EnvSpec];
//     it is the service key, so a proxy never tells a running host what
//     to run.
//   - tcp mode: the host names the backend's address ([WriteBackendAddr],
//     [ReadBackendAddr]) and the session only proves the proxy's presence.
//   - mux mode: the session carries the client's stream, or (Linux) the
//     proxy hands its stdin and stdout to the host ([Handoff],
//     [ReceiveHandoff]) and waits for the end ([WaitHandedOff]).
//   - the end of a session with its reason: out of band after a handoff
//     ([EndLine]), in band as the last message otherwise ([EndMethod],
//     [Tail]).
package hostproto

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// Protocols a mux-mode host multiplexes.
const (
	ProtocolLSP     = "lsp"
	ProtocolMCP     = "mcp"
	ProtocolJSONRPC = "jsonrpc"
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
	// Protocol is a protocol's name in internal/protocol's registry
	// (mux mode; "" and ProtocolLSP are LSP, keyed alike); Framing is
	// the client's JSON-RPC framing (wire.NDJSON or wire.Header);
	// MCPVersion the protocol version of the first client's first message
	// (informative: it is not in the key, since legacy (initialize) and
	// 2026-07-28 (stateless, _meta on every request) sessions share one
	// server; a version the server cannot serve gets the server's error).
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
	// Identity is what the executables were when the first proxy looked:
	// see [Spec.Stamp]. It is part of the key and travels to the host in
	// the JSON, so the host never re-reads files that may have been
	// replaced since.
	Identity string `json:"identity,omitempty"`
	// Dir and LogDir override the runtime and state dirs (tests).
	RuntimeDir string `json:"runtime_dir,omitempty"`
	LogDir     string `json:"log_dir,omitempty"`
}

// ModeFor returns the mode a command implies: tcp if any argument contains
// the socket or the port placeholder.
func ModeFor(command []string) string {
	if Uses(command, SocketPlaceholder) || Uses(command, PortPlaceholder) {
		return ModeTCP
	}
	return ModeMux
}

// Uses reports whether an argument of command (not the program) contains
// placeholder.
func Uses(command []string, placeholder string) bool {
	for _, a := range command[1:] {
		if strings.Contains(a, placeholder) {
			return true
		}
	}
	return false
}

// Key returns the service key: uid, protocol and framing, mode, absolute command
// path, arguments, share scope, root or share key, KeyEnv, and the file
// identities recorded by [Spec.Stamp].
func (s *Spec) Key() string {
	parts := []string{"mode=" + s.Mode, "share=" + s.Share, "identity=" + s.Identity}
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
		parts = append(parts, "protocol="+s.Protocol, "framing="+s.Framing)
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

// Stamp records in s.Identity the file identity (device, inode, size,
// modification time) of exe (the procref executable that runs the host),
// of the backend executable and of every argument that names an existing
// regular file (`node index.js`; relative to s.Dir). A rebuilt procref or
// an upgraded server (`go install`, a package manager renaming a new file
// over the old one) therefore gets a new key, so a new backend, while old
// windows keep the old one until they leave. Stat only: no hashing, so it
// costs microseconds per window.
func (s *Spec) Stamp(exe string) {
	s.Identity = Identity(exe, s.Dir, s.Command)
}

// Identity is what [Spec.Stamp] records: one "i:arg=dev:ino:size:mtime"
// entry per existing regular file, "procref:exe=..." first for exe. A file that
// cannot be stat'ed or is no regular file contributes nothing: it is an
// ordinary argument, already in the key.
func Identity(exe, dir string, command []string) string {
	var parts []string
	if exe != "" {
		parts = append(parts, "procref:"+exe+"="+fileID(exe))
	}
	for i, a := range command {
		p := a
		if !filepath.IsAbs(p) {
			if i == 0 || a == "" || strings.HasPrefix(a, "-") {
				continue // a flag, or a program found by PATH (made absolute)
			}
			p = filepath.Join(dir, a)
		}
		if id := fileID(p); id != "" {
			parts = append(parts, fmt.Sprintf("%d:%s=%s", i, a, id))
		}
	}
	return strings.Join(parts, "\x00")
}

// fileID is "dev:ino:size:mtime-ns" of the regular file at path (following
// symlinks: an upgraded symlink target counts), or "".
func fileID(path string) string {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	dev, ino := devIno(fi)
	return fmt.Sprintf("%d:%d:%d:%d", dev, ino, fi.Size(), fi.ModTime().UnixNano())
}

// Superseded reports whether a host started with command in dir, whose
// files had identity then, would no longer be chosen by a new window: the
// procref executable it recorded, the backend executable or a file
// argument changed since. A host that recorded no identity (an older
// procref) is never superseded.
func Superseded(identity, dir string, command []string) bool {
	if identity == "" || len(command) == 0 {
		return false
	}
	exe := ""
	if first, _, _ := strings.Cut(identity, "\x00"); strings.HasPrefix(first, "procref:") {
		exe = first[len("procref:"):strings.LastIndexByte(first, '=')]
	}
	return identity != Identity(exe, dir, command)
}

// Service returns the launcher service for s, as seen by a proxy: starting
// it spawns `EXE host` with the spec in the environment. exe is the procref
// executable; if s is not stamped yet, Service stamps it (see [Spec.Stamp]).
func (s *Spec) Service(exe string) (*launcher.Service, error) {
	if s.Identity == "" && exe != "" {
		s.Stamp(exe)
	}
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
		About:        launcher.About{Mode: s.Mode, Command: s.Command, Root: s.Root, Dir: s.Dir, Identity: s.Identity},
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
