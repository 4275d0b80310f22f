// Package demo is `procref demo`, the README's first command: simulated
// editor windows (a small sequential LSP client) and agent sessions (an
// NDJSON MCP client) run real procref proxies against the built-in sample
// servers in a private temporary runtime dir, and show one backend shared
// and gone after the last one left. cmd/procref parses its flags and
// passes the status table in (Config.Status).
package demo

import (
	"context"
	"errors"
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

// sampleFile is the sample document both simulated editors open.
const sampleFile = `package demo

// TODO: share one language server between windows
func hello() string { return "hello" }
`

// Backend is one row of `procref status`, what the demo checks of it.
type Backend struct {
	State               string // "running" while shared
	Clients             int
	HostPID, BackendPID int
}

// Config is how to run the demo.
type Config struct {
	// Mode is mux (stdio server through the multiplexer), tcp (the server
	// listens on {socket}) or mcp (agent sessions share an MCP server).
	Mode string
	// Keep keeps the demo's temporary directory.
	Keep bool
	// Exe is the procref executable each simulated window runs.
	Exe string
	// Status prints `procref status` for the runtime dir that
	// PROCREF_RUNTIME_DIR names to out and returns its rows.
	Status func(ctx context.Context, out io.Writer) ([]Backend, error)
}

// Run is `procref demo`: two simulated editor windows share the built-in
// sample language server through real proxies (or, in mcp mode, three
// agent sessions share the sample MCP server); it prints to out what each
// saw and the status table, detaches them and shows the backend gone. It
// sets PROCREF_RUNTIME_DIR and PROCREF_STATE_DIR of this process to a
// private temporary directory, so it never touches the user's backends.
// It blocks for at most a minute; the proxies it started are gone when it
// returns.
func Run(cfg Config, out io.Writer) error {
	mode, keep, exe := cfg.Mode, cfg.Keep, cfg.Exe
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
	if err := os.WriteFile(file, []byte(sampleFile), 0o600); err != nil {
		return err
	}
	uri := proxy.PathToURI(file)
	if mode == "mcp" {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return runMCP(ctx, cfg, ws, out)
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

	var wins []*window
	defer func() { killWindows(wins) }()
	for i := 1; i <= 2; i++ {
		w := &window{cmd: exec.CommandContext(ctx, exe, append([]string{"--"}, server...)...)}
		wins = append(wins, w)
		if err := w.open(i, ws, uri, out); err != nil {
			return err
		}
	}

	backend, hostID, err := shared(ctx, cfg, out, len(wins))
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
	if err := gone(ctx, cfg, out, backend, hostID); err != nil {
		return err
	}
	fmt.Fprintln(out, "\ndemo OK")
	return nil
}

// window is one simulated editor window: a real proxy process and the
// demo's LSP client on its stdio.
type window struct {
	cmd    *exec.Cmd
	client *lspClient
	stderr strings.Builder
}

// killWindows kills the proxies still running when the demo fails.
func killWindows(wins []*window) {
	for _, w := range wins {
		if w.cmd.Process != nil && w.cmd.ProcessState == nil {
			w.cmd.Process.Kill()
			w.cmd.Wait()
		}
	}
}

// open starts window i's proxy, initializes, opens the demo file and prints
// its diagnostics and a hover.
func (w *window) open(i int, ws, uri string, out io.Writer) error {
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
	w.client = newLSPClient(stdoutPipe, stdin)
	name, err := w.client.initialize(ws)
	if err != nil {
		return fmt.Errorf("window %d: %w (proxy stderr: %s)", i, err, w.stderr.String())
	}
	fmt.Fprintf(out, "window %d: proxy pid %d attached in %v; server %q initialized\n", i, w.cmd.Process.Pid, time.Since(start).Round(time.Millisecond), name)
	if err := w.client.didOpen(uri, "go", sampleFile); err != nil {
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

// shared prints `procref status` and checks that it shows one running
// backend with the given number of clients; it returns the backend's and
// the host's identities.
func shared(ctx context.Context, cfg Config, out io.Writer, clients int) (backend, host platform.Identity, err error) {
	fmt.Fprintf(out, "\n$ procref status\n")
	rows, err := cfg.Status(ctx, out)
	if err != nil {
		return backend, host, err
	}
	if len(rows) != 1 || rows[0].Clients != clients || rows[0].State != "running" {
		return backend, host, fmt.Errorf("want one running backend with %d clients, got %+v", clients, rows)
	}
	backend, _ = platform.Lookup(rows[0].BackendPID)
	host, _ = platform.Lookup(rows[0].HostPID)
	return backend, host, nil
}

// gone checks that the backend and the host exit once the last client has
// left, and that `procref status` lists nothing.
func gone(ctx context.Context, cfg Config, out io.Writer, backend, host platform.Identity) error {
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if host.Wait(wctx) != nil || backend.Wait(wctx) != nil {
		return fmt.Errorf("backend pid %d or host pid %d still running after the last client left", backend.PID, host.PID)
	}
	fmt.Fprintf(out, "backend pid %d and host pid %d are gone: the last client left\n\n$ procref status\n", backend.PID, host.PID)
	rows, err := cfg.Status(ctx, out)
	if err != nil {
		return err
	}
	if len(rows) != 0 {
		return errors.New("a backend is still listed after the last client left")
	}
	return nil
}
