package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/lspclient"
	"github.com/procref/procref/internal/proctest"
)

const pyFixture = "import os\n\n\ndef greet(name):\n    return 'hello ' + name\n\n\nprint(undefined_name)\n"

// TestMuxPerRootAndGlobal: in mux mode with real pylsp, two workspace roots
// get two backends by default, and one with --share=global; every client
// gets pyflakes diagnostics and hovers through the shared server.
func TestMuxPerRootAndGlobal(t *testing.T) {
	pylsp := requireServer(t, "pylsp")
	for _, tc := range []struct {
		name     string
		flags    []string
		backends int
	}{
		{"per-root", nil, 2},
		{"global", []string{"--share=global"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var clients []*lspclient.Client
			var procs []*proc
			for i := 0; i < 2; i++ {
				root := t.TempDir()
				file := filepath.Join(root, "fixture.py")
				if err := os.WriteFile(file, []byte(pyFixture), 0o644); err != nil {
					t.Fatal(err)
				}
				args := append(append([]string{}, tc.flags...), "--", pylsp)
				p := e.start(root, nil, args...)
				c := p.client(ctx)
				if _, err := c.Initialize(ctx, root); err != nil {
					t.Fatalf("client %d: %v; stderr %s", i, err, p.stderr.String())
				}
				uri := lspclient.FileURI(file)
				c.DidOpen(ctx, uri, "python", pyFixture)
				diags, err := c.WaitDiagnostics(ctx, uri, func(d []lspclient.Diagnostic) bool { return len(d) > 0 })
				if err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
				if !hasMessage(diags, "undefined name 'undefined_name'") {
					t.Errorf("client %d: diagnostics lack pyflakes' undefined name: %+v", i, diags)
				}
				h, err := c.Hover(ctx, uri, 3, 5)
				if err != nil || !strings.Contains(h, "greet") {
					t.Errorf("client %d: hover = %q, %v", i, h, err)
				}
				clients, procs = append(clients, c), append(procs, p)
			}
			names, _ := discovery.List(e.privDir())
			if len(names) != tc.backends {
				t.Fatalf("backends = %v, want %d", names, tc.backends)
			}
			var hints []*discovery.Hint
			for _, n := range names {
				h, err := discovery.Read(e.privDir(), n)
				if err != nil {
					t.Fatal(err)
				}
				if got := children(h.Host.PID, "pylsp"); len(got) != 1 {
					t.Errorf("host %d has pylsp children %v, want exactly one", h.Host.PID, got)
				}
				hints = append(hints, h)
			}
			for i, c := range clients {
				c.Shutdown(ctx)
				c.Close()
				if code := procs[i].wait(t, 10*time.Second); code != 0 {
					t.Errorf("proxy %d exit %d: %s", i, code, procs[i].stderr.String())
				}
			}
			for _, h := range hints {
				proctest.WaitGone(t, h.Host, 5*time.Second, "host")
			}
		})
	}
}

func hasMessage(diags []lspclient.Diagnostic, s string) bool {
	for _, d := range diags {
		if strings.Contains(d.Message, s) {
			return true
		}
	}
	return false
}
