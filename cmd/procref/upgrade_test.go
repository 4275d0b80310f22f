//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/refcount"
)

// TestUpgradeGetsNewBackend: while a window is attached, a new build is
// renamed over the server executable (as `go install` and package managers
// do) or over the procref executable the windows run. The attached window
// stays on its backend, `procref status` marks that row superseded, a new
// window gets a new host and backend, the old host drains when its window
// leaves, and nothing is left after both leave.
func TestUpgradeGetsNewBackend(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replaced string // "server" or "procref"
		mcp      bool
	}{
		{"lsp-server", "server", false},
		{"mcp-server", "server", true},
		{"procref", "procref", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ws := t.TempDir()
			bin := filepath.Join(t.TempDir(), "build")
			copyFile(t, procrefBin, bin)
			proxyBin, serverBin := procrefBin, bin
			if tc.replaced == "procref" {
				proxyBin, serverBin = bin, procrefBin
			}
			args := []string{"--", serverBin, "sample-server"}
			if tc.mcp {
				args = append(args, "--mcp")
			}
			a := openWindow(t, e, proxyBin, ws, tc.mcp, args)
			old := e.onlyHint()

			// The upgrade: a new file renamed over the old path.
			copyFile(t, procrefBin, bin+".new")
			if err := os.Rename(bin+".new", bin); err != nil {
				t.Fatal(err)
			}
			if st := statusState(t, e, old.Name); st != "superseded (binary changed)" {
				t.Errorf("status of the old backend after the upgrade = %q, want superseded", st)
			}

			b := openWindow(t, e, proxyBin, ws, tc.mcp, args)
			names, _ := discovery.List(e.privDir())
			if len(names) != 2 {
				t.Fatalf("after the upgrade want two backends (old and new), got %v", names)
			}
			var fresh *discovery.Hint
			for _, n := range names {
				if n != old.Name {
					fresh, _ = discovery.Read(e.privDir(), n)
				}
			}
			if fresh == nil || fresh.Host == old.Host {
				t.Fatalf("the new window joined the old host %v", old.Host)
			}
			if st := statusState(t, e, fresh.Name); st != "running" {
				t.Errorf("status of the new backend = %q, want running", st)
			}
			if st := statusState(t, e, old.Name); st != "superseded (binary changed)" {
				t.Errorf("status of the old backend with a new one beside it = %q", st)
			}
			a.ping(t) // the old window still works on the old backend

			a.close(t)
			proctest.WaitGone(t, old.Host, 20*time.Second, "old host")
			if _, err := discovery.Read(e.privDir(), fresh.Name); err != nil {
				t.Fatalf("the new backend went with the old one: %v", err)
			}
			b.ping(t)
			b.close(t)
			proctest.WaitGone(t, fresh.Host, 20*time.Second, "new host")
			nothingLeft(t, e.runtime)
			if sets, _ := refcount.List(refcount.Options{Dir: e.privDir()}); len(sets) != 0 {
				t.Errorf("reference counters left: %v", sets)
			}
		})
	}
}

// window is one editor window (LSP) or agent session (MCP, NDJSON).
type window struct {
	p   *proc
	r   *bufio.Reader
	mcp bool
	ctx context.Context
}

func openWindow(t *testing.T, e *env, bin, ws string, mcp bool, args []string) *window {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	w := &window{p: e.startBin(bin, ws, nil, args...), mcp: mcp, ctx: ctx}
	w.r = bufio.NewReader(w.p.stdout)
	if mcp {
		s := ndjsonSession{p: w.p, r: w.r}
		s.send(t, mcpInit("2025-06-18"))
		s.expect(t, `"serverInfo"`)
		s.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		return w
	}
	if _, err := w.p.client(ctx).Initialize(ctx, ws); err != nil {
		t.Fatalf("initialize: %v; stderr: %s", err, w.p.stderr.String())
	}
	return w
}

// ping makes one request and waits for its answer (MCP; an LSP window is
// checked by its clean shutdown in close).
func (w *window) ping(t *testing.T) {
	t.Helper()
	if w.mcp {
		s := ndjsonSession{p: w.p, r: w.r}
		s.send(t, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"up"}}}`)
		s.expect(t, "echo: up")
	}
}

// close ends the window and checks its proxy exits cleanly.
func (w *window) close(t *testing.T) {
	t.Helper()
	w.p.stdin.Close()
	if code := w.p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("proxy exited %d; stderr: %s", code, w.p.stderr.String())
	}
}

// statusState is the STATE of name in `procref status --json`.
func statusState(t *testing.T, e *env, name string) string {
	t.Helper()
	cmd := exec.Command(procrefBin, "status", "--json")
	cmd.Env = e.vars
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("procref status: %v", err)
	}
	var rows []backendRow
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("procref status --json: %v: %s", err, out)
	}
	for _, r := range rows {
		if r.Name == name {
			return r.State
		}
	}
	return "absent"
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
