//go:build linux

package editors

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/lspclient"
)

// TestVSCodeWrappers runs the wrapper scripts in editors/vscode/ the way
// the VS Code extensions do (VS Code itself has no headless form here):
// the version query goes straight to the real server and starts nothing;
// a server run is an LSP server through procref, with the mode the
// wrapper promises.
func TestVSCodeWrappers(t *testing.T) {
	for _, tc := range []struct {
		sc          serverCase
		script      string
		languageID  string
		versionArgs []string
		wantVersion string
		serverArgs  []string // what the extension passes for a server run
	}{
		{clangdCase, "procref-clangd", "c", []string{"--version"}, "clangd version", nil},
		{goplsCase, "procref-gopls", "go", []string{"version"}, "golang.org/x/tools/gopls", []string{"-mode=stdio"}},
	} {
		t.Run(tc.sc.server, func(t *testing.T) {
			sc := tc.sc
			server := requireServer(t, sc)
			e := newTestEnv(t, filepath.Dir(server))
			script, err := filepath.Abs(filepath.Join("vscode", tc.script))
			if err != nil {
				t.Fatal(err)
			}
			ws := copyFixture(t, sc.fixture)

			out, err := e.cmd(ws, script, tc.versionArgs...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.wantVersion) {
				t.Fatalf("%s %v = %q, %v; want the server's own answer with %q", tc.script, tc.versionArgs, out, err, tc.wantVersion)
			}
			if names, _ := discovery.List(e.privDir()); len(names) != 0 {
				t.Fatalf("%s %v started a backend: %v", tc.script, tc.versionArgs, names)
			}

			ctx, cancel := context.WithTimeout(context.Background(), editorDeadline(t))
			defer cancel()
			c := e.cmd(ws, script, tc.serverArgs...)
			stdin, err := c.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := c.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			p := start(t, c) // stdout stays the pipe; stderr is captured
			t0 := time.Now()
			client := lspclient.NewOnPipes(ctx, stdout, stdin)
			defer client.Close()
			if _, err := client.Initialize(ctx, ws); err != nil {
				t.Fatalf("initialize through %s: %v; stderr:\n%s", tc.script, err, p.output.String())
			}
			t.Logf("initialized after %v", time.Since(t0).Round(time.Millisecond))
			file := filepath.Join(ws, sc.file)
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			uri := lspclient.FileURI(file)
			if err := client.DidOpen(ctx, uri, tc.languageID, string(text)); err != nil {
				t.Fatal(err)
			}
			if _, err := client.WaitDiagnostics(ctx, uri, func(ds []lspclient.Diagnostic) bool {
				for _, d := range ds {
					if strings.Contains(d.Message, sc.wantDiag) {
						return true
					}
				}
				return false
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("diagnostics after %v", time.Since(t0).Round(time.Millisecond))
			var line, col int
			if _, err := fmt.Sscanf(sc.hover, "%d,%d", &line, &col); err != nil {
				t.Fatal(err)
			}
			h, err := client.Hover(ctx, uri, line, col)
			if err != nil || !strings.Contains(h, sc.wantHover) {
				t.Fatalf("hover = %q, %v; want it to mention %q", h, err, sc.wantHover)
			}

			t.Logf("hover after %v", time.Since(t0).Round(time.Millisecond))
			host := e.onlyHost()
			if host.Mode != sc.mode {
				t.Errorf("backend mode = %q, want %q", host.Mode, sc.mode)
			}
			// The wrapper exec'ed procref: the script's pid is the proxy.
			if self, ok := procByPID(c.Process.Pid); !ok || !self.IsProxy() {
				t.Errorf("pid %d is %+v after exec, want the procref proxy", c.Process.Pid, self)
			}
			pids := instances(descendants(host.Host.PID, c.Process.Pid), sc.server)
			if len(pids) != 1 {
				t.Fatalf("want one %s below host %d, got %v", sc.server, host.Host.PID, pids)
			}
			gone := identities(t, pids)

			if err := client.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("shutdown answered after %v", time.Since(t0).Round(time.Millisecond))
			client.Close()
			if code := p.wait(t, 15*time.Second, tc.script); code != 0 {
				t.Errorf("%s exit code %d after shutdown, exit and EOF, want 0; stderr:\n%s", tc.script, code, p.output.String())
			}
			t.Logf("proxy exited after %v", time.Since(t0).Round(time.Millisecond))
			e.waitNoHosts(gone, 15*time.Second)
			t.Logf("all gone after %v", time.Since(t0).Round(time.Millisecond))
		})
	}
}
