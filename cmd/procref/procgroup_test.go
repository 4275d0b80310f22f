//go:build linux

package main

import (
	"context"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
)

// TestTCPWrapperWithoutExec: in tcp mode a wrapper that does not exec
// (`sh -c 'SERVER ...; echo'`) leaves the real server as its child; when
// the last window leaves, the host ends the backend's whole process group,
// so the real server does not outlive it.
func TestTCPWrapperWithoutExec(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := e.start(ws, nil, "--", "sh", "-c", `"$0" sample-server --listen="$1"; echo the wrapper outlived its server`, procrefBin, "127.0.0.1:{port}")
	if _, err := p.client(ctx).Initialize(ctx, ws); err != nil {
		t.Fatalf("%v; stderr: %s", err, p.stderr.String())
	}
	host := e.onlyHint().Host
	var server platform.Identity
	for _, sh := range proctest.Processes() {
		if sh.PPID != host.PID || sh.Comm != "sh" {
			continue
		}
		for _, q := range proctest.Processes() {
			if q.PPID == sh.PID && q.IsProxy() {
				server, _ = platform.Lookup(q.PID)
			}
		}
	}
	if server.PID == 0 {
		t.Fatal("no sample-server under the host's sh wrapper")
	}
	t.Cleanup(func() { server.Kill() })
	p.stdin.Close()
	p.wait(t, 20*time.Second)
	waitGone(t, host, 30*time.Second, "the host after the last window left")
	waitGone(t, server, 10*time.Second, "the real server behind the non-exec wrapper")
}
