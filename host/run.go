package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/handshake"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// Run is `procref host`: it runs the supervisor for spec in this process
// until the last proxy is gone (or a stop request), then stops the backend.
// It blocks.
func Run(ctx context.Context, spec *Spec, exe string, log *slog.Logger) error {
	svc, err := spec.Service(exe)
	if err != nil {
		return err
	}
	svc.Logger = log
	svc.StartTimeout = spec.StartTimeout
	b := &backend{spec: spec, log: log, stopTimeout: 5 * time.Second}
	svc.Describe = func(h *discovery.Hint) {
		h.Mode = spec.Mode
		h.Command = spec.Command
		h.Root = spec.Root
	}
	switch spec.Mode {
	case ModeTCP:
		svc.Hooks = launcher.Hooks{
			OnFirstAcquire: b.startTCP,
			OnLastRelease:  b.stopTCP,
			OnHealthCheck:  b.checkTCP,
			OnRecover:      b.recoverTCP,
		}
		svc.Serve = b.serveTCP
	case ModeMux:
		if err := b.setupMux(svc); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q", spec.Mode)
	}
	return launcher.Supervise(ctx, svc)
}

// backend is the host's view of its backend process.
type backend struct {
	spec        *Spec
	log         *slog.Logger
	stopTimeout time.Duration

	mu       sync.Mutex
	port     int
	id       platform.Identity
	restarts []time.Time
	extra    func() map[string]any
}

// startTCP is OnFirstAcquire in tcp mode: free port, substitute, start,
// wait until the backend accepts.
func (b *backend) startTCP(ctx context.Context) (launcher.Info, error) {
	port, err := freePort()
	if err != nil {
		return launcher.Info{}, fmt.Errorf("%w: finding a free port: %v", ErrBackendStart, err)
	}
	args := make([]string, len(b.spec.Command))
	for i, a := range b.spec.Command {
		args[i] = strings.ReplaceAll(a, PortPlaceholder, strconv.Itoa(port))
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = b.spec.Dir
	cmd.Stdout = os.Stderr // the host log
	cmd.Stderr = os.Stderr
	if err := platform.StartBound(cmd); err != nil {
		return launcher.Info{}, fmt.Errorf("%w: %v", ErrBackendStart, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	id, _ := platform.Lookup(cmd.Process.Pid)
	b.log.Info("backend started", "pid", cmd.Process.Pid, "port", port, "command", args)

	// Wait until it accepts. There is no portable event for "a process
	// listens on a port", so this dials every millisecond or two until it
	// accepts (measured in docs/benchmarks.md, fix 3). Finer is not
	// better: a refused net.Dial costs ~40 µs of CPU here, so polling every
	// 0.5 ms takes ~9% of a core from the starting backend (gopls) for an
	// average gain of half a millisecond, which did not show in cold-attach
	// medians.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	interval := time.Millisecond
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case werr := <-exited:
			return launcher.Info{}, fmt.Errorf("%w: %s exited before listening on port %d (%v)", ErrBackendStart, args[0], port, exitText(werr))
		case <-ctx.Done():
			id.Stop(time.Second)
			return launcher.Info{}, fmt.Errorf("%w: %s did not listen on port %d within the start timeout (is {port} in the right argument?)", ErrBackendStart, args[0], port)
		case <-t.C:
		}
		if interval < 2*time.Millisecond {
			interval *= 2
		}
		t.Reset(interval)
	}
	b.mu.Lock()
	b.port, b.id = port, id
	b.mu.Unlock()
	return launcher.Info{PID: cmd.Process.Pid, Port: port}, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func (b *backend) stopTCP(ctx context.Context, info launcher.Info) error {
	b.mu.Lock()
	id := b.id
	b.mu.Unlock()
	if id.PID == 0 {
		return nil
	}
	err := id.Stop(b.stopTimeout)
	if errors.Is(err, platform.ErrNoProcess) {
		return nil
	}
	return err
}

func (b *backend) checkTCP(ctx context.Context, info launcher.Info) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(info.Port)))
	if err != nil {
		return err
	}
	return c.Close()
}

// maxRestarts bounds crash recovery: at most this many restarts a minute.
const maxRestarts = 3

func (b *backend) allowRestart() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	recent := b.restarts[:0]
	for _, t := range b.restarts {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	b.restarts = recent
	if len(recent) >= maxRestarts {
		return fmt.Errorf("backend restarted %d times in the last minute; giving up", len(recent))
	}
	b.restarts = append(b.restarts, now)
	return nil
}

func (b *backend) recoverTCP(ctx context.Context, old launcher.Info, cause error) (launcher.Info, error) {
	if err := b.allowRestart(); err != nil {
		return launcher.Info{}, err
	}
	b.log.Warn("restarting backend", "cause", cause)
	b.stopTCP(ctx, old)
	return b.startTCP(ctx)
}

// serveTCP handles a proxy's session in tcp mode: it tells the proxy the
// backend's port ("port N\n") and then holds the connection as the proxy's
// presence until the proxy closes it.
func (b *backend) serveTCP(ctx context.Context, conn net.Conn, req handshake.Request) {
	defer conn.Close()
	b.mu.Lock()
	port := b.port
	b.mu.Unlock()
	if _, err := fmt.Fprintf(conn, "port %d\n", port); err != nil {
		return
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	io.Copy(io.Discard, conn)
}

// ReadBackendPort reads the host's "port N" line in tcp mode.
func ReadBackendPort(conn net.Conn, timeout time.Duration) (int, error) {
	conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	// The host writes exactly one line and nothing after it, so a
	// buffered reader cannot swallow later bytes.
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("reading backend port from host: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "port "))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("host sent %q, want \"port N\"", line)
	}
	return n, nil
}
