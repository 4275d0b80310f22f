package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/procref/procref/internal/host"
	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/sampleserver"
)

// cmdHost is the hidden `procref host` subcommand: a proxy starts it,
// detached, with the backend spec in PROCREF_HOST_SPEC.
func cmdHost(args []string, stderr io.Writer) int {
	raw := os.Getenv(hostproto.EnvSpec)
	if raw == "" || len(args) > 0 {
		fmt.Fprintln(stderr, "procref host is started by the proxy; it is not meant to be run by hand")
		return exitUsage
	}
	os.Unsetenv(hostproto.EnvSpec) // the backend need not see it
	var spec hostproto.Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(stderr, "procref host: bad spec: %v\n", err)
		return exitUsage
	}
	level := spec.LogLevel
	if level == "" || level == "warn" || level == "error" {
		level = "info" // the host log is where users look when something fails
	}
	if f, ok := stderr.(*os.File); ok {
		if svc, err := spec.Service(""); err == nil {
			stderr = host.CapLog(context.Background(), f, svc.LogPath(), host.MaxLog, 2*time.Second)
		}
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		log, _ = newLogger(stderr, "info")
	}
	log = log.With("host_pid", os.Getpid())
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "procref host: %v\n", err)
		return exitFailure
	}
	// A host ignores SIGHUP: it is detached, and must outlive terminals.
	signal.Ignore(syscall.SIGHUP)
	if err := host.Run(context.Background(), &spec, exe, log); err != nil {
		log.Error("host failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// cmdSampleServer is `procref sample-server`: the built-in sample language
// server on stdio, or on TCP with --listen (one session per connection).
func cmdSampleServer(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("procref sample-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "serve clients on this address instead of stdio: unix;PATH (e.g. unix;{socket} under procref) or HOST:PORT")
	mcpMode := fs.Bool("mcp", false, "be a sample MCP server on stdio instead")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *mcpMode {
		if err := sampleserver.ServeMCP(ctx, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "sample-server: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	if *listen == "" {
		err := sampleserver.Serve(ctx, stdin, stdout)
		if err != nil && err != sampleserver.ErrExit {
			fmt.Fprintf(stderr, "sample-server: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	network, address := "tcp", *listen
	if path, ok := strings.CutPrefix(*listen, "unix;"); ok {
		network, address = "unix", path // gopls's spelling
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		fmt.Fprintf(stderr, "sample-server: %v\n", err)
		return exitFailure
	}
	if err := sampleserver.ListenAndServe(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "sample-server: %v\n", err)
		return exitFailure
	}
	return exitOK
}
