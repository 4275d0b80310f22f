package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/internal/wire"
)

// crashyServer is a helper language server (GO_WANT_HELPER_PROCESS=crashy)
// that answers initialize, says on stderr what is wrong, and exits 1 once
// the initialized notification came (the multiplexer has its answer): a
// crash loop.
func crashyServer() int {
	r := wire.NewReader(os.Stdin, 0)
	body, err := r.Read()
	if err != nil {
		return 1
	}
	var m struct{ ID json.RawMessage }
	json.Unmarshal(body, &m)
	wire.Write(os.Stdout, []byte(`{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"capabilities":{}}}`))
	fmt.Fprintln(os.Stderr, "error: required option '--stdio' not specified")
	r.Read() // initialized (or EOF)
	return 1
}

// refusingServer (GO_WANT_HELPER_PROCESS=refuser) answers initialize with
// an error, as a server given bad options does.
func refusingServer() int {
	body, err := wire.NewReader(os.Stdin, 0).Read()
	if err != nil {
		return 1
	}
	var m struct{ ID json.RawMessage }
	json.Unmarshal(body, &m)
	wire.Write(os.Stdout, []byte(`{"jsonrpc":"2.0","id":`+string(m.ID)+`,"error":{"code":-32603,"message":"unknown option --frobnicate"}}`))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestServerRefusesInitialize: the window gets the server's refusal and
// the log path, the proxy exits 1 saying so, and the host log records it.
func TestServerRefusesInitialize(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := e.start(ws, []string{"GO_WANT_HELPER_PROCESS=refuser"}, "--", os.Args[0])
	_, err := p.client(ctx).Initialize(ctx, ws)
	if err == nil || !strings.Contains(err.Error(), "unknown option --frobnicate") || !strings.Contains(err.Error(), "log") {
		t.Fatalf("initialize = %v, want the server's refusal and the log", err)
	}
	if code := p.wait(t, 10*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1; stderr %q", code, p.stderr.String())
	}
	stderrLine(t, p, "refused initialize", "--frobnicate", "procref logs")
	logs, _ := filepath.Glob(filepath.Join(e.state, "*.log"))
	proctest.WaitFor(t, 3*time.Second, "the refusal in the host log", func() error {
		var all []byte
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			all = append(all, b...)
		}
		if !strings.Contains(string(all), "refused initialize: unknown option --frobnicate") {
			return fmt.Errorf("host log %v does not record it:\n%s", logs, all)
		}
		return nil
	})
}

// handoffModes runs f with the descriptor handoff and with the relay.
func handoffModes(t *testing.T, f func(t *testing.T, env []string)) {
	for _, v := range []string{"1", "0"} {
		t.Run("handoff="+v, func(t *testing.T) { f(t, []string{"PROCREF_HANDOFF=" + v}) })
	}
}

// stderrLine waits until the proxy's stderr is one line containing every
// want, and returns it.
func stderrLine(t *testing.T, p *proc, want ...string) string {
	t.Helper()
	var s string
	// exec copies stderr after the exit
	proctest.WaitFor(t, 2*time.Second, fmt.Sprintf("one line with %q on the proxy's stderr", want), func() error {
		s = p.stderr.String()
		ok := strings.Count(strings.TrimSpace(s), "\n") == 0
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if !ok {
			return fmt.Errorf("proxy stderr %q", s)
		}
		return nil
	})
	return s
}

// TestServerExitsAtOnce: 20 windows in a row on a server that exits at
// once: every initialize gets an error answer naming the reason and the
// log, every proxy exits 1 with one line on stderr.
func TestServerExitsAtOnce(t *testing.T) {
	handoffModes(t, func(t *testing.T, env []string) {
		e := newEnv(t)
		ws := t.TempDir()
		for i := range 20 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			p := e.start(ws, env, "--", "false")
			c := p.client(ctx)
			_, err := c.Initialize(ctx, ws)
			if err == nil || !strings.Contains(err.Error(), "log") || !strings.Contains(err.Error(), "exit") {
				t.Fatalf("start %d: initialize = %v, want an error with the reason and the log", i, err)
			}
			if i%2 == 1 {
				p.stdin.Close() // as Neovim does after a failed initialize: still exit 1
			}
			if code := p.wait(t, 10*time.Second); code != 1 {
				t.Fatalf("start %d: exit code %d, want 1; stderr %q", i, code, p.stderr.String())
			}
			stderrLine(t, p, "procref: ", "exited before answering initialize", "procref logs")
			c.Close()
			cancel()
		}
	})
}

// TestSessionEndReasons: the host stopped, a crash loop and a window
// dropped for bad input each end the proxy with exit 1 and one line that
// says which and names the log, with the handoff and without it.
func TestSessionEndReasons(t *testing.T) {
	handoffModes(t, func(t *testing.T, env []string) {
		t.Run("stop", func(t *testing.T) {
			e := newEnv(t)
			ws := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p := e.start(ws, env, sampleServer("mux")...)
			if _, err := p.client(ctx).Initialize(ctx, ws); err != nil {
				t.Fatal(err)
			}
			waitSignalHandlers(t, p.cmd.Process.Pid)
			stop := exec.Command(procrefBin, "stop", "--all")
			stop.Env = e.vars
			if out, err := stop.CombinedOutput(); err != nil {
				t.Fatalf("procref stop: %v %s", err, out)
			}
			if code := p.wait(t, 10*time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1; stderr %q", code, p.stderr.String())
			}
			stderrLine(t, p, "procref logs", "stopped")
			nothingLeft(t, e.runtime)
		})
		t.Run("crash-loop", func(t *testing.T) {
			e := newEnv(t)
			ws := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p := e.start(ws, append(env, "GO_WANT_HELPER_PROCESS=crashy"), "--", os.Args[0])
			c := p.client(ctx)
			if _, err := c.Initialize(ctx, ws); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 20*time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1; stderr %q", code, p.stderr.String())
			}
			stderrLine(t, p, "procref logs", "keeps failing", "--stdio", "fix the server")
			nothingLeft(t, e.runtime)
		})
		t.Run("bad-input", func(t *testing.T) {
			e := newEnv(t)
			ws := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p := e.start(ws, env, sampleServer("mux")...)
			c := p.client(ctx)
			if _, err := c.Initialize(ctx, ws); err != nil {
				t.Fatal(err)
			}
			waitSignalHandlers(t, p.cmd.Process.Pid)
			io.WriteString(p.stdin, "Content-Length: x\r\n\r\n{}")
			if code := p.wait(t, 10*time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1; stderr %q", code, p.stderr.String())
			}
			stderrLine(t, p, "procref logs", "malformed")
		})
	})
}

// nothingLeft waits until the host is gone and its runtime dir holds
// nothing of the service (no hint, lock, socket or counter file; the
// per-user key secret stays), failing after 10 s with what is left.
func nothingLeft(t *testing.T, dir string) {
	t.Helper()
	// The host's exit: no event to wait for from here.
	proctest.WaitFor(t, 10*time.Second, "an empty runtime dir", func() error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var left []string
		var detail strings.Builder
		for _, ent := range ents {
			if name := ent.Name(); name != "secret" {
				left = append(left, name)
				if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && strings.HasSuffix(name, ".json") {
					fmt.Fprintf(&detail, "\n%s: %s", name, b)
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("runtime dir %s still holds %v%s", dir, left, detail.String())
		}
		return nil
	})
}
