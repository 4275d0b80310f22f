//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
)

// TestReopenAtOnce (issue 13, "reopen at once"): the last window of a
// backend that is slow to stop leaves, and a new window arrives while the
// host drains. The new window gets a new host and its initialize answered
// while the old backend is still running: it did not wait for the old
// shutdown. Each backend here is a shell that runs the sample server,
// ignores SIGTERM and waits for its own gate file (named with its pid), so
// the old one cannot be gone
// before the test opens the gate (only the host's SIGKILL, about 10 s
// into the drain, could end it sooner, and that would fail the test too).
func TestReopenAtOnce(t *testing.T) {
	for _, mode := range []string{"mux", "tcp"} {
		t.Run(mode, func(t *testing.T) { testReopenAtOnce(t, mode) })
	}
}

func testReopenAtOnce(t *testing.T, mode string) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws := t.TempDir()
	gate := filepath.Join(t.TempDir(), "gate")
	// The server runs in the background on the shell's own stdin (fd 3:
	// an asynchronous command's stdin is /dev/null), so the shell outlives
	// it and takes it along when the gate opens.
	script := `trap "" TERM; exec 3<&0; "$0" sample-server ${2:+"$2"} <&3 3<&- & ` +
		`while [ ! -e "$1.$$" ]; do sleep 0.02; done; kill -KILL $! 2>/dev/null; wait`
	server := []string{"--share=global", "--", "sh", "-c", script, procrefBin, gate}
	if mode == "tcp" {
		server = append(server, "--listen=unix;{socket}")
	}
	p1 := e.start(ws, nil, server...)
	c1 := p1.client(ctx)
	if _, err := c1.Initialize(ctx, ws); err != nil {
		t.Fatalf("first window: %v; stderr: %s", err, p1.stderr.String())
	}
	old := withBackend(t, e.onlyHint())
	if err := c1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	p1.wait(t, 10*time.Second)
	// The drain has begun once the old host has given up its hint.
	proctest.WaitFor(t, 30*time.Second, "the old host to give up its hint", func() error {
		_, err := discovery.Read(e.privDir(), old.Name)
		if errors.Is(err, discovery.ErrNoHint) {
			return nil
		}
		return fmt.Errorf("hint read: %v", err)
	})

	p2 := e.start(ws, nil, server...)
	c2 := p2.client(ctx)
	if _, err := c2.Initialize(ctx, ws); err != nil {
		t.Fatalf("window during the drain: %v; stderr: %s", err, p2.stderr.String())
	}
	if !old.Backend.Alive() {
		t.Error("the old backend was gone before the new window was answered: the new window waited for the old shutdown")
	}
	if !old.Host.Alive() {
		t.Error("the old host was gone before the new window was answered")
	}
	now := withBackend(t, e.onlyHint())
	if now.Host == old.Host {
		t.Fatal("the new window joined the draining host")
	}

	// Let the old backend go; the old host then exits, the new one serves on.
	openGate := func(backend platform.Identity) {
		if err := os.WriteFile(gate+"."+strconv.Itoa(backend.PID), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openGate(old.Backend)
	proctest.WaitGone(t, old.Backend, 20*time.Second, "old backend")
	proctest.WaitGone(t, old.Host, 20*time.Second, "old host")
	if err := c2.Shutdown(ctx); err != nil {
		b, _ := os.ReadFile(now.Log)
		t.Errorf("new window after the old host left: %v; host log:\n%s", err, b)
	}
	c2.Close()
	openGate(now.Backend)
	if code := p2.wait(t, 10*time.Second); code != 0 {
		t.Errorf("new window's proxy exited %d; stderr: %s", code, p2.stderr.String())
	}
	proctest.WaitGone(t, now.Host, 20*time.Second, "new host")
	proctest.WaitGone(t, now.Backend, 20*time.Second, "new backend")
	nothingLeft(t, e.runtime)
}

// withBackend fills in h.Backend, the host's sh child, where the hint does
// not name it (mux mode).
func withBackend(t *testing.T, h *discovery.Hint) *discovery.Hint {
	t.Helper()
	if h.Backend.PID == 0 {
		kids := children(h.Host.PID, "sh")
		if len(kids) != 1 {
			t.Fatalf("host %d: want one sh child, got %v", h.Host.PID, kids)
		}
		h.Backend, _ = platform.Lookup(kids[0])
	}
	return h
}
