package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/restarts"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// Run is `procref host`: it runs the host (the launcher's supervisor role)
// for spec in this process until the last proxy is gone (or a stop
// request), then stops the backend. It blocks.
func Run(ctx context.Context, spec *hostproto.Spec, exe string, log *slog.Logger) error {
	svc, err := spec.Service(exe)
	if err != nil {
		return err
	}
	svc.Logger = log
	svc.StartTimeout = spec.StartTimeout
	b := &backend{spec: spec, log: log, stopTimeout: 5 * time.Second, svc: svc,
		restarts: restarts.Budget{Max: 3, Window: time.Minute}}
	switch spec.Mode {
	case hostproto.ModeTCP:
		svc.Hooks = launcher.Hooks{
			OnFirstAcquire: b.startTCP,
			OnLastRelease:  b.stopTCP,
			OnHealthCheck:  b.checkTCP,
			OnRecover:      b.recoverTCP,
		}
		svc.Serve = b.serveTCP
	case hostproto.ModeMux:
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
	spec        *hostproto.Spec
	log         *slog.Logger
	stopTimeout time.Duration
	svc         *launcher.Service // its runtime dir and name place {socket}

	mu       sync.Mutex
	addr     hostproto.Addr // where a tcp-mode backend listens
	id       platform.Identity
	restarts restarts.Budget // crash recovery: at most 3 restarts a minute
	extra    func() map[string]any
	// tcp mode: the proxies' presence connections, told when the backend
	// crashes (crashed); stopping is the pid stopTCP is ending, whose exit
	// is no crash
	peers    map[net.Conn]bool
	stopping int
}

// listenAddr picks the address for a new backend: the socket path (a stale
// socket there is removed) or a free loopback port.
func (b *backend) listenAddr() (hostproto.Addr, error) {
	if !hostproto.Uses(b.spec.Command, hostproto.SocketPlaceholder) {
		port, err := freePort()
		if err != nil {
			return hostproto.Addr{}, fmt.Errorf("%w: finding a free port: %v", ErrBackendStart, err)
		}
		return hostproto.Addr{Network: "tcp", Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, nil
	}
	if hostproto.Uses(b.spec.Command, hostproto.PortPlaceholder) {
		return hostproto.Addr{}, fmt.Errorf("%w: the command has both {socket} and {port}; use one", ErrBackendStart)
	}
	dir, err := b.svc.PrivateDir()
	if err != nil {
		return hostproto.Addr{}, fmt.Errorf("%w: %v", ErrBackendStart, err)
	}
	path, err := SocketPath(dir.Path(), b.svc.Name, os.Getpid())
	if err != nil {
		return hostproto.Addr{}, fmt.Errorf("%w: %v", ErrBackendStart, err)
	}
	if err := removeSocket(dir, filepath.Base(path)); err != nil {
		return hostproto.Addr{}, fmt.Errorf("%w: %v", ErrBackendStart, err)
	}
	return hostproto.Addr{Network: "unix", Address: path}, nil
}

// SocketPath returns the {socket} path of service name's host with process
// id pid, in the private runtime dir: dir/NAME.PID.sock, or
// dir/KEYHEX.PID.sock (the name's last 12 hex digits) when that is too long
// for a unix socket, or an error that says what to do when even that is.
// The pid keeps a draining host's backend and its successor's apart: a
// server that unlinks its socket when it stops must not take the new one's.
func SocketPath(dir, name string, pid int) (string, error) {
	limit := platform.MaxSocketPath()
	suffix := "." + strconv.Itoa(pid) + ".sock"
	p := filepath.Join(dir, name+suffix)
	if len(p) <= limit {
		return p, nil
	}
	p = filepath.Join(dir, name[max(0, len(name)-12):]+suffix)
	if len(p) <= limit {
		return p, nil
	}
	return "", fmt.Errorf("the socket path %s is %d bytes, more than the %d a unix socket allows: set PROCREF_RUNTIME_DIR to a shorter private directory, or use {port} (reachable by every local user)", p, len(p), limit)
}

// removeSocket removes a socket name left in the runtime dir d by an
// earlier backend, relative to d's handle; it refuses to remove anything
// else. (The backend itself binds its {socket} by path: it is another
// program; the peer checks do not apply to it, the dir's 0700 mode does.)
func removeSocket(d *platform.PrivateDir, name string) error {
	fi, err := d.Stat(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s is in the way of the backend's socket and is not a socket; remove it", d.SocketPath(name))
	}
	err = d.Remove(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// startTCP is OnFirstAcquire in tcp mode: pick the socket path or a free
// port, substitute, start, wait until the backend accepts.
func (b *backend) startTCP(ctx context.Context) (launcher.Info, error) {
	addr, err := b.listenAddr()
	if err != nil {
		return launcher.Info{}, err
	}
	_, port, _ := net.SplitHostPort(addr.Address)
	args := make([]string, len(b.spec.Command))
	for i, a := range b.spec.Command {
		a = strings.ReplaceAll(a, hostproto.SocketPlaceholder, addr.Address)
		args[i] = strings.ReplaceAll(a, hostproto.PortPlaceholder, port)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = b.spec.Dir
	// Its output goes to the host log and, the last lines, to the windows
	// if it crashes. A pipe of our own, not a Go-made one: cmd.Wait then
	// returns when the server exits, not when the last child of a wrapper
	// closes its stderr.
	tail := newStderrTail()
	outR, outW, err := os.Pipe()
	if err != nil {
		return launcher.Info{}, fmt.Errorf("%w: %v", ErrBackendStart, err)
	}
	go func() {
		defer outR.Close()
		io.Copy(io.MultiWriter(os.Stderr, tail), outR)
	}()
	defer outW.Close() // the server has its copy
	cmd.Stdout, cmd.Stderr = outW, outW
	// Its own process group: a wrapper that does not exec (`sh -c 'gopls
	// ...'`) is ended with the server it started.
	platform.SetProcessGroup(cmd)
	if err := platform.StartBound(cmd); err != nil {
		return launcher.Info{}, fmt.Errorf("%w: %v", ErrBackendStart, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	id, _ := platform.Lookup(cmd.Process.Pid)
	b.log.Info("backend started", "pid", cmd.Process.Pid, "listen", addr.String(), "command", args)
	if addr.Network == "tcp" {
		b.log.Warn(hostproto.PortWarning(addr))
	}

	// Wait until it accepts. There is no portable event for "a process
	// listens on an address", so this dials every millisecond or two until
	// it accepts (measured in bench/results.md, fix 3). Finer is not
	// better: a refused net.Dial costs ~40 µs of CPU here, so polling every
	// 0.5 ms takes ~9% of a core from the starting backend (gopls) for an
	// average gain of half a millisecond, which did not show in cold-attach
	// medians.
	interval := time.Millisecond
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		c, err := net.DialTimeout(addr.Network, addr.Address, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case werr := <-exited:
			return launcher.Info{}, fmt.Errorf("%w: %s exited before listening on %s (%v)", ErrBackendStart, args[0], addr.Address, exitText(werr))
		case <-ctx.Done():
			id.Stop(time.Second)
			platform.KillProcessGroup(cmd.Process.Pid)
			return launcher.Info{}, fmt.Errorf("%w: %s did not listen on %s within the start timeout (is {socket} or {port} in the right argument?)", ErrBackendStart, args[0], addr.Address)
		case <-t.C:
		}
		if interval < 2*time.Millisecond {
			interval *= 2
		}
		t.Reset(interval)
	}
	b.mu.Lock()
	b.addr, b.id = addr, id
	b.mu.Unlock()
	go b.crashed(id, exited, tail)
	info := launcher.Info{PID: cmd.Process.Pid}
	if addr.Network == "tcp" {
		info.Port, _ = strconv.Atoi(port)
	} else {
		info.Data = map[string]string{"socket": addr.Address}
	}
	return info, nil
}

// crashed waits for the backend id to exit; unless stopTCP is ending it,
// it tells every proxy that the language server crashed, with its exit
// and last output (the host then restarts it, recoverTCP): each window's
// connection to it has just broken.
func (b *backend) crashed(id platform.Identity, exited <-chan error, tail *stderrTail) {
	werr := <-exited
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping == id.PID {
		return
	}
	reason := fmt.Sprintf("the language server crashed (%s)", exitText(werr))
	if last := tail.String(); last != "" {
		reason += "; its last output: " + last
	}
	b.log.Warn("backend crashed", "pid", id.PID, "exit", exitText(werr), "windows_told", len(b.peers))
	for c := range b.peers {
		// a proxy that does not read cannot hold up the others
		c.SetWriteDeadline(time.Now().Add(time.Second))
		hostproto.WriteEnded(c, reason)
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// stopTCP is OnLastRelease in tcp mode: the backend's exit is no crash.
func (b *backend) stopTCP(ctx context.Context, info launcher.Info) error {
	b.mu.Lock()
	b.stopping = b.id.PID
	b.mu.Unlock()
	return b.endTCP()
}

// endTCP ends the backend and its process group and removes its socket.
// recoverTCP uses it too: a backend ended for failing its health check
// has crashed as far as its windows are concerned (crashed tells them).
func (b *backend) endTCP() error {
	b.mu.Lock()
	id := b.id
	b.mu.Unlock()
	if id.PID == 0 {
		return nil
	}
	err := id.Stop(b.stopTimeout)
	if errors.Is(err, platform.ErrNoProcess) {
		err = nil
	}
	// The leader got its grace (SIGTERM, then SIGKILL); what is left of
	// its group (children of a wrapper, also after a crash) goes now.
	if gerr := platform.KillProcessGroup(id.PID); gerr != nil && err == nil {
		err = fmt.Errorf("stop the backend's process group %d: %w", id.PID, gerr)
	}
	if hostproto.Uses(b.spec.Command, hostproto.SocketPlaceholder) {
		b.mu.Lock()
		path := b.addr.Address
		b.mu.Unlock()
		dir, rerr := b.svc.PrivateDir()
		if rerr == nil {
			rerr = removeSocket(dir, filepath.Base(path))
		}
		if rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (b *backend) checkTCP(ctx context.Context, info launcher.Info) error {
	b.mu.Lock()
	addr := b.addr
	b.mu.Unlock()
	var d net.Dialer
	c, err := d.DialContext(ctx, addr.Network, addr.Address)
	if err != nil {
		return err
	}
	return c.Close()
}

func (b *backend) recoverTCP(ctx context.Context, old launcher.Info, cause error) (launcher.Info, error) {
	b.mu.Lock()
	ok := b.restarts.Spend(time.Now())
	b.mu.Unlock()
	if !ok {
		return launcher.Info{}, fmt.Errorf("backend restarted %d times in the last minute; giving up", b.restarts.Max)
	}
	b.log.Warn("restarting backend", "cause", cause)
	b.endTCP()
	return b.startTCP(ctx)
}

// serveTCP handles a proxy's session in tcp mode: it tells the proxy the
// backend's address ("backend NETWORK ADDRESS\n") and then holds the
// connection as the proxy's presence until the proxy closes it.
func (b *backend) serveTCP(ctx context.Context, conn net.Conn, peer launcher.Peer) {
	defer conn.Close()
	b.mu.Lock()
	addr := b.addr
	b.mu.Unlock()
	if err := hostproto.WriteBackendAddr(conn, addr); err != nil {
		return
	}
	b.mu.Lock()
	if b.peers == nil {
		b.peers = map[net.Conn]bool{}
	}
	b.peers[conn] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.peers, conn)
		b.mu.Unlock()
	}()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	io.Copy(io.Discard, conn)
}
