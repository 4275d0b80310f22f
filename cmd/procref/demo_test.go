package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `procref demo` in each mode as the README's first command
// does: it exits 0 with "demo OK" (the demo itself checks that the windows
// shared one backend, that status listed it, and that it was gone after
// the last one left); an unknown mode exits 1 saying so.
func TestDemo(t *testing.T) {
	for _, tc := range []struct{ mode, want string }{
		{"mux", "window 2: hover on hello"},
		{"tcp", "(tcp mode)"},
		{"mcp", "session 3: tools/call recall"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, procrefBin, "demo", "--mode", tc.mode).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "\ndemo OK\n") || !strings.Contains(string(out), tc.want) {
				t.Fatalf("procref demo --mode %s: %v\n%s", tc.mode, err, out)
			}
		})
	}
	cmd := exec.Command(procrefBin, "demo", "--mode", "bogus")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(string(out), `unknown mode "bogus"`) {
		t.Errorf("procref demo --mode bogus: exit %d, %s; want %d naming the mode", code, out, exitFailure)
	}
}
