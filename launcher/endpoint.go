package launcher

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/procref/procref/platform"
)

// hostSocketSuffix ends the name of a supervisor's unix socket,
// NAME.PID.host.sock, in the private runtime dir.
const hostSocketSuffix = ".host.sock"

// hostSocketPath returns dir/NAME.PID.host.sock, or dir/TAIL.PID.host.sock
// (the name's last 12 characters, its key digits for procref's names) when
// that is too long for a unix socket, or "" when even that is.
func hostSocketPath(dir, name string, pid int) string {
	suffix := "." + strconv.Itoa(pid) + hostSocketSuffix
	for _, n := range []string{name, name[max(0, len(name)-12):]} {
		if p := filepath.Join(dir, n+suffix); len(p) <= platform.MaxSocketPath() {
			return p
		}
	}
	return ""
}

// listenHost opens the supervisor's session endpoint: a unix socket in the
// private runtime dir d, bound relative to its handle (see
// platform.PrivateDir.ListenUnix), which the dir's 0700 mode keeps every
// other user from even connecting to (and the kernel's peer uid is checked
// on accept). Only when that cannot be — the path is too long for
// sun_path, or the OS has no AF_UNIX (Windows before 10) — it falls back to
// loopback TCP, which every local user can connect to, and says so in the
// log. socket is "" then, else the socket's path for the hint.
func listenHost(d *platform.PrivateDir, name string, log *slog.Logger) (ln net.Listener, socket string, err error) {
	if p := hostSocketPath(d.Path(), name, os.Getpid()); p != "" {
		d.Remove(filepath.Base(p)) // ours by pid: a leftover of a dead process with our pid
		ln, err := d.ListenUnix(filepath.Base(p))
		if err == nil {
			return ln, p, nil // removed on Close
		}
		if errors.Is(err, platform.ErrInsecureDir) {
			return nil, "", fmt.Errorf("runtime dir: %w", err)
		}
		log.Warn("no unix socket for the host; falling back to loopback TCP, which every local user can connect to (the token still keeps them out of the service)", "path", p, "err", err)
	} else {
		log.Warn("the runtime dir's path is too long for a unix socket; falling back to loopback TCP, which every local user can connect to (set PROCREF_RUNTIME_DIR to a shorter private directory)", "dir", d.Path())
	}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listening on loopback: %w", err)
	}
	return ln, "", nil
}

// removeDeadSockets removes the unix sockets that hosts (and their
// backends) of service name left in d when they died without cleaning up
// (kill -9): NAME.PID.host.sock, NAME.PID.fd.sock, NAME.PID.sock, also in
// the short TAIL.PID form, found and removed relative to d's handle. Only
// sockets whose pid is not running are removed (zombies count as dead); a
// draining predecessor keeps its own. A pid reused by another process keeps
// its file until that process is gone: harmless.
func removeDeadSockets(d *platform.PrivateDir, name string, log *slog.Logger) {
	seen := map[string]bool{}
	for _, n := range []string{name, name[max(0, len(name)-12):]} {
		files, _ := d.Glob(n + ".*.sock")
		for _, f := range files {
			if seen[f] {
				continue
			}
			seen[f] = true
			pidText, _, _ := strings.Cut(strings.TrimPrefix(f, n+"."), ".")
			pid, err := strconv.Atoi(pidText)
			if err != nil || pid <= 0 {
				continue
			}
			// A zombie counts as dead (its sockets are closed): a host
			// killed after its parent proxy exited may stay one for a
			// while where init is slow to reap.
			if _, err := platform.Lookup(pid); !errors.Is(err, platform.ErrNoProcess) {
				continue
			}
			if fi, err := d.Stat(f); err != nil || fi.Mode().Type() != os.ModeSocket {
				continue
			}
			if err := d.Remove(f); err == nil {
				log.Info("removed the socket of a dead host", "path", d.SocketPath(f))
			}
		}
	}
}
