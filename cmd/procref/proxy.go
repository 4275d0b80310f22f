package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/protocol"
	"github.com/procref/procref/internal/wire"
	"github.com/procref/procref/proxy"
)

// Exit codes of the proxy.
const (
	exitOK      = 0
	exitFailure = 1 // backend or host failed or went away
	exitUsage   = 2
)

// errFlagsPrinted marks a flag error parseArgs has already printed.
var errFlagsPrinted = errors.New("bad flags")

type proxyFlags struct {
	share, shareKey, logLevel, name, keyEnv, impl string
	protocol                                      string
	linger, connectTimeout                        time.Duration
	maxMessage                                    int64
}

func parseProxyFlags(args []string, stderr io.Writer) (*proxyFlags, []string, error) {
	sep := -1
	for i, a := range args {
		if a == "--" {
			sep = i
			break
		}
	}
	if sep < 0 && len(args) > 0 && !strings.HasPrefix(args[0], "-") && runnable(args[0]) {
		// `procref CMD ARGS...`: CMD is not a procref subcommand (run
		// dispatched those), so it is the server; some launchers (the MCP
		// Inspector's CLI) drop a `--` among the arguments.
		args = append([]string{"--"}, args...)
		sep = 0
	}
	if sep < 0 {
		if len(args) > 0 && suggestCommand(args[0]) != "" {
			return nil, nil, fmt.Errorf("unknown command %q: did you mean `procref %s`? (to run a server: `procref [flags] -- SERVER ARGS...`)", args[0], suggestCommand(args[0]))
		}
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			return nil, nil, fmt.Errorf("unknown command %q: not a procref subcommand, and no program of that name in $PATH (to run a server: `procref [flags] -- SERVER ARGS...`, see `procref help`)", args[0])
		}
		return nil, nil, errors.New("missing `--` and server command: usage `procref [flags] -- SERVER ARGS...` (see `procref help`)")
	}
	f := &proxyFlags{}
	fs := flag.NewFlagSet("procref", flag.ContinueOnError)
	fs.StringVar(&f.share, "share", envOr("PROCREF_SHARE", hostproto.ShareRoot), "root|global")
	fs.StringVar(&f.shareKey, "share-key", os.Getenv("PROCREF_SHARE_KEY"), "share one backend per KEY")
	fs.StringVar(&f.logLevel, "log-level", envOr("PROCREF_LOG_LEVEL", "warn"), "debug|info|warn|error")
	fs.StringVar(&f.name, "name", os.Getenv("PROCREF_NAME"), "backend name")
	fs.StringVar(&f.keyEnv, "key-env", os.Getenv("PROCREF_KEY_ENV"), "comma-separated env vars that are part of the backend identity")
	fs.StringVar(&f.impl, "refcount", envOr("PROCREF_REFCOUNT", "auto"), "auto|sysv|filelock")
	fs.StringVar(&f.protocol, "protocol", os.Getenv("PROCREF_PROTOCOL"), "lsp|mcp|jsonrpc (default: detected from the client's first message)")
	linger, err := parseDuration(envOr("PROCREF_LINGER", "0s"))
	if err != nil {
		return nil, nil, fmt.Errorf("PROCREF_LINGER: %w", err)
	}
	timeout, err := parseDuration(envOr("PROCREF_CONNECT_TIMEOUT", "30s"))
	if err != nil {
		return nil, nil, fmt.Errorf("PROCREF_CONNECT_TIMEOUT: %w", err)
	}
	maxMsg, err := parseBytes(envOr("PROCREF_MAX_MESSAGE", strconv.Itoa(wire.DefaultMaxMessage)))
	if err != nil {
		return nil, nil, fmt.Errorf("PROCREF_MAX_MESSAGE: %w", err)
	}
	lingerV, timeoutV := durationValue(linger), durationValue(timeout)
	fs.Var(&lingerV, "linger", "keep the backend this long after the last window (a duration: 5s, 2m)")
	fs.Var(&timeoutV, "connect-timeout", "give up starting/connecting after this (a duration: 30s)")
	maxMsgV := bytesValue(maxMsg)
	fs.Var(&maxMsgV, "max-message", "largest LSP message in mux mode (bytes, or 64M, 512K)")
	pos, err := parseArgs(fs, args[:sep], stderr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errFlagsPrinted, err)
	}
	if len(pos) > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q before `--`", pos[0])
	}
	f.linger, f.connectTimeout, f.maxMessage = time.Duration(lingerV), time.Duration(timeoutV), int64(maxMsgV)
	switch f.share {
	case hostproto.ShareRoot, hostproto.ShareGlobal:
	default:
		return nil, nil, fmt.Errorf("%s must be root or global, not %q", origin(fs, "share", "PROCREF_SHARE"), f.share)
	}
	if _, err := protocol.Lookup(f.protocol); err != nil {
		return nil, nil, fmt.Errorf("%s must be %s, not %q", origin(fs, "protocol", "PROCREF_PROTOCOL"), protocol.Names(), f.protocol)
	}
	switch f.impl {
	case "auto", "sysv", "filelock":
	default:
		return nil, nil, fmt.Errorf("%s must be auto, sysv or filelock, not %q", origin(fs, "refcount", "PROCREF_REFCOUNT"), f.impl)
	}
	if err := checkName(f.name); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", origin(fs, "name", "PROCREF_NAME"), err)
	}
	if err := checkHandoff(); err != nil {
		return nil, nil, err
	}
	if f.shareKey != "" {
		f.share = hostproto.ShareKey
	}
	cmd := args[sep+1:]
	if len(cmd) == 0 {
		return nil, nil, errors.New("no server command after `--`: usage `procref [flags] -- SERVER ARGS...`")
	}
	return f, cmd, nil
}

// cmdProxy is `procref [flags] -- SERVER ARGS...`: it parses the flags
// and runs proxy.Run until the editor's session ends.
func cmdProxy(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, command, err := parseProxyFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		if !errors.Is(err, errFlagsPrinted) {
			fmt.Fprintf(stderr, "procref: %v\n", err)
		}
		return exitUsage
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "procref: %v\n", err)
		return exitUsage
	}
	// Signals end the proxy cleanly (ctx). The handler is installed off
	// the attach path: the first signal.Notify costs 0.5–1.2 ms here. A
	// signal in the moment before it is installed kills the proxy with the
	// default action, which is harmless: the kernel gives back a reference
	// already taken (SEM_UNDO), and the host sees the session end.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go stopOnSignal(ctx, stop)
	var keyEnv []string
	if f.keyEnv != "" {
		keyEnv = strings.Split(f.keyEnv, ",")
	}
	err = proxy.Run(ctx, proxy.Config{
		Command:        command,
		Share:          f.share,
		ShareKey:       f.shareKey,
		Name:           f.name,
		KeyEnv:         keyEnv,
		Protocol:       f.protocol,
		Impl:           f.impl,
		Linger:         f.linger,
		ConnectTimeout: f.connectTimeout,
		MaxMessage:     f.maxMessage,
		LogLevel:       f.logLevel,
		Stdin:          stdin,
		Stdout:         stdout,
		Stderr:         stderr,
		Logger:         log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "procref: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// stopOnSignal calls stop on SIGTERM, SIGINT or SIGHUP, and returns then
// or when ctx is done (its handler removed).
func stopOnSignal(ctx context.Context, stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
	defer signal.Stop(sig)
	select {
	case <-sig:
		stop()
	case <-ctx.Done():
	}
}

// runnable reports whether name is a program procref can start: a path to
// an executable file, or a name found in $PATH.
func runnable(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}
