package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/procref/procref/internal/demo"
)

// cmdDemo is `procref demo`: its flags; internal/demo runs it. It uses a
// private temporary runtime dir so it never touches the user's backends.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("procref demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "mux", "mux (stdio server through the multiplexer), tcp (server listens on {socket}) or mcp (agent sessions share an MCP server)")
	keep := fs.Bool("keep", false, "keep the demo's temporary directory")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	exe, err := os.Executable()
	if err == nil {
		err = demo.Run(demo.Config{Mode: *mode, Keep: *keep, Exe: exe, Status: demoStatus}, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "procref demo: FAILED: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// demoStatus is the demo's `procref status`: the table, and the rows it
// checks.
func demoStatus(ctx context.Context, out io.Writer) ([]demo.Backend, error) {
	rows, dir, err := collectStatus(ctx)
	if err != nil {
		return nil, err
	}
	printStatus(out, rows, dir, false)
	var bs []demo.Backend
	for _, r := range rows {
		bs = append(bs, demo.Backend{State: r.State, Clients: r.Clients, HostPID: r.HostPID, BackendPID: r.BackendPID})
	}
	return bs, nil
}
