package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/lastbytes"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// muxServers starts the mux's server processes and remembers the current
// one (its identity, for status and the final stop, and its stderr tail,
// for the errors that report its failure). Safe for concurrent use.
type muxServers struct {
	b *backend

	mu      sync.Mutex
	current platform.Identity
	tail    *stderrTail
	// prestarted is the server process started when the host starts, so
	// its start-up overlaps the first proxy's attach and handoff (a host
	// exists only because a window is attaching); the first client's
	// initialize takes it. Restarts after a crash start fresh.
	prestarted mux.Server
}

// start starts one server process.
func (s *muxServers) start() (mux.Server, error) {
	b := s.b
	cmd := exec.Command(b.spec.Command[0], b.spec.Command[1:]...)
	cmd.Dir = b.spec.Dir
	t := newStderrTail()
	cmd.Stderr = io.MultiWriter(os.Stderr, t) // the host log, and what errors quote
	platform.BindToParent(cmd)
	be, err := mux.Exec(cmd)
	if err != nil {
		return nil, err
	}
	id, _ := platform.Lookup(cmd.Process.Pid)
	s.mu.Lock()
	s.current, s.tail = id, t
	s.mu.Unlock()
	b.log.Info("backend started", "pid", cmd.Process.Pid, "command", b.spec.Command)
	return be, nil
}

// startMux is the mux's Config.Start: the prestarted server, else a new one.
func (s *muxServers) startMux(context.Context) (mux.Server, error) {
	s.mu.Lock()
	be := s.prestarted
	s.prestarted = nil
	s.mu.Unlock()
	if be != nil {
		return be, nil
	}
	return s.start()
}

// prestart is OnFirstAcquire. A failure here is not the service's: the
// first initialize starts the server again and reports what went wrong.
func (s *muxServers) prestart(context.Context) (launcher.Info, error) {
	if be, err := s.start(); err == nil {
		s.mu.Lock()
		s.prestarted = be
		s.mu.Unlock()
	} else {
		s.b.log.Info("starting the server ahead of the first initialize failed; retrying then", "err", err)
	}
	return launcher.Info{}, nil
}

// stop stops a prestarted server nobody took (the first window left
// before initialize) and, after the mux closed, a current one still alive.
func (s *muxServers) stop(afterMux bool) {
	s.mu.Lock()
	unused, id := s.prestarted, s.current
	s.prestarted = nil
	s.mu.Unlock()
	if !afterMux {
		if unused != nil {
			unused.Close()
			unused.Kill()
			unused.Wait()
		}
		return
	}
	if id.PID > 0 && id.Alive() {
		id.Stop(s.b.stopTimeout)
	}
}

func (s *muxServers) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tail.String()
}

// setupMux wires the LSP multiplexer into svc: every session connection is
// one LSP client; the backend starts with the first client's initialize and
// is restarted by the mux after a crash (bounded); the service ends when the
// last client is gone (graceful LSP shutdown/exit, then kill) or when the
// backend fails beyond the restart limit.
func (b *backend) setupMux(svc *launcher.Service) error {
	servers := &muxServers{b: b}
	m, err := b.newMultiplexer(servers.startMux, servers.stderr,
		fmt.Sprintf("see `procref logs %s`, log: %s", svc.Name, svc.LogPath()))
	if err != nil {
		return err
	}
	// The descriptor handoff (handoff.go); without it proxies relay.
	var h *handoffServer
	if dir, err := svc.PrivateDir(); err != nil {
		b.log.Warn("no descriptor handoff; proxies relay", "err", err)
	} else if h, err = startHandoff(dir, hostproto.HandoffName(svc.Name, os.Getpid()), b.log); err != nil {
		b.log.Info("no descriptor handoff; proxies relay", "err", err)
		h = nil
	}
	svc.Hooks = launcher.Hooks{
		OnFirstAcquire: servers.prestart,
		OnLastRelease: func(ctx context.Context, _ launcher.Info) error {
			servers.stop(false)
			if h != nil {
				h.close()
			}
			err := m.Close(ctx)
			servers.stop(true)
			return err
		},
	}
	svc.Serve = func(ctx context.Context, conn net.Conn, _ launcher.Peer) {
		if err := h.serveSession(ctx, conn, m.ServeClient); err != nil {
			b.log.Info("client session ended", "err", err)
		}
	}
	svc.Status = func() map[string]any {
		servers.mu.Lock()
		defer servers.mu.Unlock()
		return muxStatus(m, servers.current)
	}
	svc.Done = m.Done()
	return nil
}

func muxStatus(m multiplexer, current platform.Identity) map[string]any {
	st := map[string]any{"mux_clients": m.Clients(), "backend_starts": m.Backends()}
	if current.PID > 0 && current.Alive() {
		st["backend_pid"] = current.PID
	}
	return st
}

// stderrTail keeps the last bytes a server wrote to stderr, for the
// errors that report its failure. Safe for concurrent use; a nil
// *stderrTail is empty.
type stderrTail struct {
	keep lastbytes.Buffer
}

// stderrKeep is how much of a server's stderr the host keeps for errors.
const stderrKeep = 1024

func newStderrTail() *stderrTail { return &stderrTail{keep: lastbytes.Buffer{Max: stderrKeep}} }

func (t *stderrTail) Write(p []byte) (int, error) { return t.keep.Write(p) }

// String returns the last (at most 5) lines kept.
func (t *stderrTail) String() string {
	if t == nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(t.keep.Bytes())), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
