package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the CLI scripts in testdata/script against the real
// binary: every subcommand and every error path of the proxy.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", filepath.Dir(procrefBin)+string(os.PathListSeparator)+e.Getenv("PATH"))
			e.Setenv("PROCREF_RUNTIME_DIR", filepath.Join(e.WorkDir, "run"))
			e.Setenv("PROCREF_STATE_DIR", filepath.Join(e.WorkDir, "state"))
			e.Setenv("PROCREF", procrefBin)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// lspinit FILE [ROOT]: write a framed LSP initialize request.
			"lspinit": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 1 {
					ts.Fatalf("usage: lspinit FILE [ROOT]")
				}
				root := ts.Getenv("WORK")
				if len(args) > 1 {
					root = args[1]
				}
				b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
					"params": map[string]any{"processId": nil, "rootUri": "file://" + root, "capabilities": map[string]any{}}})
				frame := fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(b), b)
				if err := os.WriteFile(ts.MkAbs(args[0]), []byte(frame), 0o644); err != nil {
					ts.Fatalf("%v", err)
				}
			},
			// noprocs MARKER: within 3 s no process's command line contains MARKER.
			"noprocs": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: noprocs MARKER")
				}
				// /proc has no event to wait for.
				if err := proctest.Poll(3*time.Second, func() error {
					if pids := procsWith(args[0]); len(pids) > 0 {
						return fmt.Errorf("processes still running with %q: %v", args[0], pids)
					}
					return nil
				}); err != nil {
					ts.Fatalf("%v", err)
				}
			},
		},
	})
}

// procsWith returns pids of live processes whose command line contains s
// (Linux /proc).
func procsWith(s string) []int {
	var out []int
	for _, p := range proctest.Processes() {
		if p.PID != os.Getpid() && strings.Contains(p.Cmdline, s) {
			out = append(out, p.PID)
		}
	}
	return out
}
