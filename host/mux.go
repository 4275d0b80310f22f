package host

import (
	"context"
	"net"
	"os"
	"os/exec"
	"sync"

	"github.com/procref/procref/handshake"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/proxy/lspmux"
)

// setupMux wires the LSP multiplexer into svc: every session connection is
// one LSP client; the backend starts with the first client's initialize and
// is restarted by the mux after a crash (bounded); the service ends when the
// last client is gone (graceful LSP shutdown/exit, then kill) or when the
// backend fails beyond the restart limit.
func (b *backend) setupMux(svc *launcher.Service) error {
	var mu sync.Mutex
	var current platform.Identity
	startOne := func() (lspmux.Backend, error) {
		cmd := exec.Command(b.spec.Command[0], b.spec.Command[1:]...)
		cmd.Dir = b.spec.Dir
		cmd.Stderr = os.Stderr // the host log
		platform.BindToParent(cmd)
		be, err := lspmux.ExecBackend(cmd)
		if err != nil {
			return nil, err
		}
		id, _ := platform.Lookup(cmd.Process.Pid)
		mu.Lock()
		current = id
		mu.Unlock()
		b.log.Info("backend started", "pid", cmd.Process.Pid, "command", b.spec.Command)
		return be, nil
	}
	// prestarted is the server process started when the host starts, so
	// its start-up overlaps the first proxy's attach and handoff (a host
	// exists only because a window is attaching); the first client's
	// initialize takes it. Restarts after a crash start fresh.
	var prestarted lspmux.Backend
	start := func(ctx context.Context) (lspmux.Backend, error) {
		mu.Lock()
		be := prestarted
		prestarted = nil
		mu.Unlock()
		if be != nil {
			return be, nil
		}
		return startOne()
	}
	m, err := b.newMultiplexer(start)
	if err != nil {
		return err
	}
	// The descriptor handoff (handoff.go); without it proxies relay.
	var h *handoffServer
	if dir, err := svc.RuntimeDir(); err == nil {
		if h, err = startHandoff(HandoffSocket(dir, svc.Name), b.log); err != nil {
			b.log.Info("no descriptor handoff; proxies relay", "err", err)
			h = nil
		}
	}
	svc.Hooks = launcher.Hooks{
		OnFirstAcquire: func(ctx context.Context) (launcher.Info, error) {
			// A failure here is not the service's: the first initialize
			// starts the server again and reports what went wrong.
			if be, err := startOne(); err == nil {
				mu.Lock()
				prestarted = be
				mu.Unlock()
			} else {
				b.log.Info("starting the server ahead of the first initialize failed; retrying then", "err", err)
			}
			return launcher.Info{}, nil
		},
		OnLastRelease: func(ctx context.Context, _ launcher.Info) error {
			mu.Lock()
			unused := prestarted
			prestarted = nil
			mu.Unlock()
			if unused != nil { // the first window left before initialize
				unused.Close()
				unused.Kill()
				unused.Wait()
			}
			if h != nil {
				h.close()
			}
			err := m.Close(ctx)
			mu.Lock()
			id := current
			mu.Unlock()
			if id.PID > 0 && id.Alive() {
				id.Stop(b.stopTimeout)
			}
			return err
		},
	}
	svc.Serve = func(ctx context.Context, conn net.Conn, _ handshake.Request) {
		if err := h.serveSession(ctx, conn, m.ServeClient); err != nil {
			b.log.Info("client session ended", "err", err)
		}
	}
	svc.Status = func() map[string]any {
		mu.Lock()
		defer mu.Unlock()
		st := map[string]any{"mux_clients": m.Clients(), "backend_starts": m.Backends()}
		if current.PID > 0 && current.Alive() {
			st["backend_pid"] = current.PID
		}
		return st
	}
	svc.Done = m.Done()
	return nil
}
