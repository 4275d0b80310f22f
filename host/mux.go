package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/procref/procref/handshake"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/proxy/lspframe"
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
	var tail *stderrTail // the current server's
	startOne := func() (lspmux.Backend, error) {
		cmd := exec.Command(b.spec.Command[0], b.spec.Command[1:]...)
		cmd.Dir = b.spec.Dir
		t := &stderrTail{}
		cmd.Stderr = io.MultiWriter(os.Stderr, t) // the host log, and what errors quote
		mu.Lock()
		tail = t
		mu.Unlock()
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
	m, err := lspmux.New(lspmux.Config{
		Start: func(ctx context.Context) (lspmux.Backend, error) {
			mu.Lock()
			be := prestarted
			prestarted = nil
			mu.Unlock()
			if be != nil {
				return be, nil
			}
			return startOne()
		},
		MaxMessage:      b.spec.MaxMessage,
		Logger:          b.log,
		ShareGlobal:     b.spec.Share == ShareGlobal,
		ShutdownTimeout: b.stopTimeout,
		StderrTail: func() string {
			mu.Lock()
			defer mu.Unlock()
			return tail.String()
		},
		FailureHint: fmt.Sprintf("see `procref logs %s`, log: %s", svc.Name, svc.LogPath()),
	})
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
		return muxStatus(m, current)
	}
	svc.Done = m.Done()
	return nil
}

func muxStatus(m *lspmux.Mux, current platform.Identity) map[string]any {
	st := map[string]any{"mux_clients": m.Clients(), "backend_starts": m.Backends()}
	if current.PID > 0 && current.Alive() {
		st["backend_pid"] = current.PID
	}
	return st
}

// EndReason is what the host tells a proxy about why its window's session
// ended ("" for a normal end: the editor sent exit or closed its end).
// It is one line.
func EndReason(err error) string {
	var why string
	switch {
	case err == nil:
		return ""
	case errors.Is(err, lspmux.ErrClosed):
		why = "the shared backend was stopped (`procref stop`, or its host shut down)"
	case errors.Is(err, lspmux.ErrBackendFailed), errors.Is(err, lspmux.ErrInitFailed):
		why = err.Error()
	case errors.Is(err, lspframe.ErrBadHeader):
		why = "procref dropped this window: the editor sent a malformed LSP frame (" + err.Error() + ")"
	default:
		why = "procref dropped this window: " + err.Error()
	}
	return strings.Join(strings.Fields(why), " ")
}

// stderrTail keeps the last bytes a server wrote to stderr, for the
// errors that report its failure. Safe for concurrent use; a nil
// *stderrTail is empty.
type stderrTail struct {
	mu  sync.Mutex
	buf []byte
}

// stderrKeep is how much of a server's stderr the host keeps for errors.
const stderrKeep = 1024

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrKeep; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the last (at most 5) lines kept.
func (t *stderrTail) String() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
