//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
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
	proctest.WaitGone(t, host, 30*time.Second, "the host after the last window left")
	proctest.WaitGone(t, server, 10*time.Second, "the real server behind the non-exec wrapper")
}

// TestStatusShowsLeftoverGroup: after a kill -9 of a tcp-mode host, the
// kernel ends its sh wrapper (parent-death signal) but not the real server
// the wrapper started; `procref status` names the process group that is
// still running and how to end it.
func TestStatusShowsLeftoverGroup(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := e.start(ws, nil, "--", "sh", "-c", `"$0" sample-server --listen="$1"; echo done`, procrefBin, "127.0.0.1:{port}")
	if _, err := p.client(ctx).Initialize(ctx, ws); err != nil {
		t.Fatalf("%v; stderr: %s", err, p.stderr.String())
	}
	h := e.onlyHint()
	group := h.Backend.PID
	if group == 0 {
		t.Fatal("no backend pid in the hint")
	}
	t.Cleanup(func() { platform.KillProcessGroup(group) })
	h.Host.Kill()
	proctest.WaitGone(t, h.Host, 20*time.Second, "the killed host")
	proctest.WaitGone(t, h.Backend, 20*time.Second, "the sh wrapper (parent-death signal)")
	if !platform.ProcessGroupAlive(group) {
		t.Skip("the real server ended with its wrapper: nothing left to show")
	}
	st := e.start(ws, nil, "status")
	b, _ := io.ReadAll(st.stdout) // status exits on its own; go test bounds it
	st.wait(t, 20*time.Second)
	if out := string(b); !strings.Contains(out, fmt.Sprintf("process group %d are still running", group)) {
		t.Fatalf("status does not show the leftover group %d:\n%s", group, out)
	}
}
