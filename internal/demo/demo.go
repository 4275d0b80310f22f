package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/procref/procref/platform"
	"github.com/procref/procref/proxy"
)

// demoFile is the sample document both simulated editors open.
const demoFile = `package demo

// TODO: share one language server between windows
func hello() string { return "hello" }
`

// cmdDemo is `procref demo`: two simulated editor windows share the built-in
// sample language server through real proxies; it prints what each saw and
// the status table, detaches both and shows the backend gone. It uses a
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
	if err := runDemo(*mode, *keep, stdout); err != nil {
		fmt.Fprintf(stderr, "procref demo: FAILED: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func runDemo(mode string, keep bool, out io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "procref-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(tmp)
	}
	for _, d := range []string{"run", "state", "workspace"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o700); err != nil {
			return err
		}
	}
	os.Setenv("PROCREF_RUNTIME_DIR", filepath.Join(tmp, "run"))
	os.Setenv("PROCREF_STATE_DIR", filepath.Join(tmp, "state"))
	ws := filepath.Join(tmp, "workspace")
	file := filepath.Join(ws, "demo.go")
	if err := os.WriteFile(file, []byte(demoFile), 0o600); err != nil {
		return err
	}
	uri := proxy.PathToURI(file)
	if mode == "mcp" {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return runMCPDemo(ctx, exe, ws, out)
	}

	server := []string{exe, "sample-server"}
	if mode == "tcp" {
		server = append(server, "--listen=unix;{socket}")
	} else if mode != "mux" {
		return fmt.Errorf("unknown mode %q", mode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	fmt.Fprintf(out, "procref demo: two editor windows share one language server (%s mode)\n", mode)
	fmt.Fprintf(out, "  server command: procref -- %s\n\n", strings.Join(append([]string{"procref"}, server[1:]...), " "))

	var wins []*demoWindow
	defer func() { killDemoWindows(wins) }()
	for i := 1; i <= 2; i++ {
		w := &demoWindow{cmd: exec.CommandContext(ctx, exe, append([]string{"--"}, server...)...)}
		wins = append(wins, w)
		if err := w.open(i, ws, uri, out); err != nil {
			return err
		}
	}

	backend, hostID, err := demoShared(ctx, out, len(wins))
	if err != nil {
		return err
	}

	fmt.Fprintln(out)
	for i, w := range wins {
		if err := w.client.shutdown(); err != nil {
			return fmt.Errorf("window %d: %w", i+1, err)
		}
		err := w.cmd.Wait()
		code := w.cmd.ProcessState.ExitCode()
		fmt.Fprintf(out, "window %d: detached, proxy exit code %d\n", i+1, code)
		if err != nil && code != 0 {
			return fmt.Errorf("window %d: proxy exited with %v: %s", i+1, err, w.stderr.String())
		}
	}
	if err := demoGone(ctx, out, backend, hostID); err != nil {
		return err
	}
	fmt.Fprintln(out, "\ndemo OK")
	return nil
}

// demoWindow is one simulated editor window: a real proxy process and the
// demo's LSP client on its stdio.
type demoWindow struct {
	cmd    *exec.Cmd
	client *demoClient
	stderr strings.Builder
}

// killDemoWindows kills the proxies still running when the demo fails.
func killDemoWindows(wins []*demoWindow) {
	for _, w := range wins {
		if w.cmd.Process != nil && w.cmd.ProcessState == nil {
			w.cmd.Process.Kill()
			w.cmd.Wait()
		}
	}
}

// open starts window i's proxy, initializes, opens the demo file and prints
// its diagnostics and a hover.
func (w *demoWindow) open(i int, ws, uri string, out io.Writer) error {
	w.cmd.Dir = ws
	w.cmd.Stderr = &w.stderr
	stdin, err := w.cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdoutPipe, err := w.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := w.cmd.Start(); err != nil {
		return err
	}
	w.client = newDemoClient(stdoutPipe, stdin)
	name, err := w.client.initialize(ws)
	if err != nil {
		return fmt.Errorf("window %d: %w (proxy stderr: %s)", i, err, w.stderr.String())
	}
	fmt.Fprintf(out, "window %d: proxy pid %d attached in %v; server %q initialized\n", i, w.cmd.Process.Pid, time.Since(start).Round(time.Millisecond), name)
	if err := w.client.didOpen(uri, "go", demoFile); err != nil {
		return err
	}
	diags, err := w.client.waitDiagnostics(uri)
	if err != nil {
		return fmt.Errorf("window %d: %w", i, err)
	}
	for _, d := range diags {
		fmt.Fprintf(out, "window %d: diagnostic demo.go:%d:%d: %s\n", i, d.Range.Start.Line+1, d.Range.Start.Character+1, d.Message)
	}
	hover, err := w.client.hover(uri, 3, 6)
	if err != nil {
		return fmt.Errorf("window %d: hover: %w", i, err)
	}
	fmt.Fprintf(out, "window %d: hover on hello: %s\n", i, hover)
	return nil
}

// demoShared prints `procref status` and checks that it shows one running
// backend with the given number of clients; it returns the backend's and
// the host's identities.
func demoShared(ctx context.Context, out io.Writer, clients int) (backend, host platform.Identity, err error) {
	fmt.Fprintf(out, "\n$ procref status\n")
	rows, dir, err := collectStatus(ctx)
	if err != nil {
		return backend, host, err
	}
	printStatus(out, rows, dir, false)
	if len(rows) != 1 || rows[0].Clients != clients || rows[0].State != "running" {
		return backend, host, fmt.Errorf("want one running backend with %d clients, got %+v", clients, rows)
	}
	backend, _ = platform.Lookup(rows[0].BackendPID)
	host, _ = platform.Lookup(rows[0].HostPID)
	return backend, host, nil
}

// demoGone checks that the backend and the host exit once the last client
// has left, and that `procref status` lists nothing.
func demoGone(ctx context.Context, out io.Writer, backend, host platform.Identity) error {
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if host.Wait(wctx) != nil || backend.Wait(wctx) != nil {
		return fmt.Errorf("backend pid %d or host pid %d still running after the last client left", backend.PID, host.PID)
	}
	fmt.Fprintf(out, "backend pid %d and host pid %d are gone: the last client left\n\n$ procref status\n", backend.PID, host.PID)
	rows, dir, err := collectStatus(ctx)
	if err != nil {
		return err
	}
	printStatus(out, rows, dir, false)
	if len(rows) != 0 {
		return errors.New("a backend is still listed after the last client left")
	}
	return nil
}
