// Command procref lets many editor windows share one language server.
//
// Use it as the language-server command in each editor window:
//
//	procref [flags] -- SERVER ARGS...
//
// and every window shares one backend per server command and workspace root,
// started on demand and stopped when the last window detaches. See
// `procref help` and the README for the flags and subcommands.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/procref/procref/internal/handshake"
)

// version is set with -ldflags "-X main.version=..." in releases.
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		// `procref` alone: someone at a terminal, not an editor
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	{
		switch args[0] {
		case "status":
			return cmdStatus(args[1:], stdout, stderr)
		case "stop":
			return cmdStop(args[1:], stdout, stderr)
		case "logs":
			return cmdLogs(args[1:], stdout, stderr)
		case "version", "--version", "-version":
			return cmdVersion(stdout)
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		case "demo":
			return cmdDemo(args[1:], stdout, stderr)
		case "host":
			return cmdHost(args[1:], stderr)
		case "sample-server":
			return cmdSampleServer(args[1:], stdin, stdout, stderr)
		}
	}
	return cmdProxy(args, stdin, stdout, stderr)
}

func cmdVersion(w io.Writer) int {
	v, goVersion := version, "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(w, "procref %s (protocol %d, %s)\n", v, handshake.Version, goVersion)
	return 0
}

// newLogger returns a text logger on w at level (debug, info, warn, error).
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return nil, fmt.Errorf("bad log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

const usage = `procref — share one language server among all your editor windows

Usage:
  procref [flags] -- SERVER [ARGS...]   run as the editor's language server (the proxy)
  procref SERVER [ARGS...]             the same without flags: SERVER (not a subcommand) is run
  procref status [--wide|--json]       list shared backends (--wide: port, log, command)
  procref stop NAME | --all            stop a backend (graceful, then forceful)
  procref logs NAME [-f]               show (or follow) a backend's log
  procref demo [--mode mux|tcp|mcp]    run a self-contained demonstration
  procref sample-server [--listen ADDR] the built-in sample language server
  procref version                      print the version
  procref help                         this text

Modes:
  tcp mode   an argument contains {socket}: the host substitutes a unix socket
             path in its private runtime dir, the server listens there and
             serves many clients itself, e.g.
               procref -- gopls serve -listen=unix;{socket}
             {port} (a free loopback port) is for servers that only do TCP:
             every local user can connect to that port.
  mux mode   otherwise: any stdio language server, shared through procref's
             LSP multiplexer, e.g.
               procref -- clangd
               procref -- pylsp

Proxy flags (each also settable by environment, for editors that cannot pass flags):
  --share root|global     one backend per workspace root (default) or for all roots  (PROCREF_SHARE)
  --share-key KEY         one backend per KEY, whatever the root                       (PROCREF_SHARE_KEY)
  --linger DURATION       keep the backend this long after the last window (default 0)  (PROCREF_LINGER)
  --connect-timeout D     give up starting/connecting after D (default 30s)            (PROCREF_CONNECT_TIMEOUT)
  --log-level LEVEL       debug|info|warn|error on stderr (default warn)                (PROCREF_LOG_LEVEL)
  --name NAME             name the backend (default: the server's file name)           (PROCREF_NAME)
  --max-message BYTES     largest LSP message accepted in mux mode (default 64M)        (PROCREF_MAX_MESSAGE)
  --key-env NAME,...      environment variables that must match to share a backend      (PROCREF_KEY_ENV)
  --protocol lsp|mcp|jsonrpc  the client's protocol (default: detected)                 (PROCREF_PROTOCOL)
  --refcount auto|sysv|filelock   reference-count implementation                        (PROCREF_REFCOUNT)
                          0: relay through the proxy instead of handing stdio to the host (PROCREF_HANDOFF)

Editors (configs for each in editors/ of the source tree; run by a real
headless editor in the tests: Neovim 0.7 start_client and Emacs eglot (and
VS Code's wrapper scripts); the others are checked for syntax only):
  Neovim 0.11+:  vim.lsp.config('clangd', { cmd = { 'procref', '--', 'clangd' } })
  lspconfig:     require('lspconfig').clangd.setup({ cmd = { 'procref', '--', 'clangd' } })
  Helix:         [language-server.clangd]
                 command = "procref"
                 args = ["--", "clangd"]
  VS Code:       point the extension's server path at a script containing
                 exec procref -- /usr/bin/clangd "$@"
  Emacs eglot:   (add-to-list 'eglot-server-programs '((c-mode c-ts-mode c++-mode c++-ts-mode) . ("procref" "--" "clangd")))
  gopls (tcp):   procref -- gopls serve -listen=unix;{socket}

Files:
  hints, locks   $XDG_RUNTIME_DIR/procref (or $TMPDIR/procref-UID), override PROCREF_RUNTIME_DIR
  logs           $XDG_STATE_HOME/procref/NAME.log, override PROCREF_STATE_DIR
`
