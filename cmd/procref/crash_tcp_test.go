//go:build linux

package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
)

// TestGoplsTCPCrash: two windows share gopls in tcp mode; gopls is
// stopped, one window's hover goes out (the proxy reads it), then gopls
// gets kill -9. The hover, and a 2 MiB request the proxy is in the middle
// of relaying, get a JSON-RPC error saying the language server crashed,
// and each proxy exits 1 with one line that says so, with
// gopls's exit, and names the log (not the line for a host that died).
func TestGoplsTCPCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := newGoplsRig(ctx, t, 2, "-listen=unix;{socket}")
	uri, procs, clients := r.uri, r.procs, r.clients
	if _, err := clients[0].Hover(ctx, uri, 5, 6); err != nil { // gopls has loaded the file
		t.Fatal(err)
	}
	hint := r.e.onlyHint()
	backend := hint.Backend
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(hint.Log)
			t.Logf("host log:\n%s", log)
		}
	}()
	if err := syscall.Kill(backend.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// kill returns before gopls's threads have stopped: one still running
	// could answer the hover, or write half an answer.
	proctest.Eventually(t, time.Minute, "gopls stopped", func() bool { return proctest.Stopped(backend.PID) })
	proxy := procs[0].cmd.Process.Pid
	before := proctest.ReadChars(proxy)
	hover := make(chan error, 1)
	go func() {
		_, err := clients[0].Hover(ctx, uri, 5, 6)
		hover <- err
	}()
	proctest.WaitFor(t, time.Minute, "the proxy to read the hover", func() error {
		select {
		case err := <-hover:
			t.Fatalf("hover answered while gopls is stopped: %v", err)
		default:
		}
		if proctest.ReadChars(proxy) <= before {
			return errors.New("its read count has not grown")
		}
		return nil
	})
	// A 2 MiB request in flight too, its id after the params (as
	// go.lsp.dev/jsonrpc2 and Helix write it): the stopped gopls cannot
	// take it all, so at the crash the proxy is inside it, reads it to its
	// end, and answers it as well.
	read := proctest.ReadChars(proxy)
	large := make(chan error, 1)
	go func() {
		large <- clients[0].Call(ctx, "workspace/symbol", map[string]string{"query": strings.Repeat("q", 2<<20)}, nil)
	}()
	proctest.Eventually(t, time.Minute, "the proxy reading the large request", func() bool {
		return proctest.ReadChars(proxy) >= read+64<<10
	})
	if err := syscall.Kill(backend.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]chan error{"hover": hover, "2 MiB request": large} {
		select {
		case err := <-c:
			if err == nil || !strings.Contains(err.Error(), "the language server crashed") {
				t.Errorf("%s in flight at the crash = %v, want an error saying the language server crashed", what, err)
			}
		case <-ctx.Done():
			t.Fatalf("the %s in flight at the crash got no answer", what)
		}
	}
	for i, p := range procs {
		if code := p.wait(t, 20*time.Second); code != 1 {
			t.Errorf("window %d: exit code %d, want 1; stderr %q", i, code, p.stderr.String())
		}
		line := stderrLine(t, p, "the language server crashed", "signal: killed", "procref logs", "log: ")
		if strings.Contains(line, "closed the connection") {
			t.Errorf("window %d: %q is the line for a host that died", i, line)
		}
		clients[i].Close()
	}
}
