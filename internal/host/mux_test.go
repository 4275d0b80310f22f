//go:build unix

package host

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
)

func testServers(t *testing.T) *muxServers {
	b := &backend{
		spec:        &hostproto.Spec{Command: []string{"/bin/sh", "-c", "echo one >&2; echo two >&2; exec cat"}, Dir: t.TempDir()},
		log:         slog.Default(),
		stopTimeout: 2 * time.Second,
	}
	return &muxServers{b: b}
}

func (s *muxServers) currentID() platform.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// The server started when the host starts is the one the first initialize
// gets; a restart starts a new one; the host's final stop ends the
// current one; the errors quote its stderr.
func TestMuxServersPrestartTakenOnce(t *testing.T) {
	s := testServers(t)
	s.prestart(context.Background())
	pre := s.currentID()
	if !pre.Alive() {
		t.Fatal("no server running after prestart")
	}
	first, err := s.startMux(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Kill()
	if id := s.currentID(); id != pre {
		t.Fatalf("the first start got pid %d, want the prestarted %d", id.PID, pre.PID)
	}
	proctest.Eventually(t, 30*time.Second, "the server's stderr in the tail", func() bool {
		return s.stderr() == "one\ntwo"
	})
	second, err := s.startMux(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := s.currentID()
	if now == pre || !now.Alive() {
		t.Fatalf("a restart got pid %d (prestarted %d): want a new running server", now.PID, pre.PID)
	}
	s.stop(true)
	if now.Alive() {
		t.Fatalf("server %d alive after the final stop", now.PID)
	}
	second.Wait()
	if strings.Contains(s.stderr(), "\n\n") {
		t.Fatalf("stderr tail %q", s.stderr())
	}
}

// A prestarted server nobody took (the first window left before its
// initialize) is stopped with the service.
func TestMuxServersUnusedPrestartStopped(t *testing.T) {
	s := testServers(t)
	s.prestart(context.Background())
	pre := s.currentID()
	s.stop(false)
	if pre.Alive() {
		t.Fatalf("the unused prestarted server %d is still running", pre.PID)
	}
	s.mu.Lock()
	left := s.prestarted
	s.mu.Unlock()
	if left != nil {
		t.Fatal("the stopped server is still kept for the first initialize")
	}
}
