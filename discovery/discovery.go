// Package discovery reads, writes and verifies procref's hint files.
//
// A hint file <dir>/<name>.json tells a client where the host of a shared
// service listens and how to prove itself to it. A hint is only a hint: it is
// never trusted until [Verify] has checked it against reality — the host's pid
// is alive with the same start time (so a reused pid is not mistaken for the
// host), a dial to its unix socket succeeds and the kernel says the peer is our
// uid and the host's pid (in the TCP fallback: a dial to its port), and the
// handshake with the hint's
// token returns the hint's nonce (so a different listener that now owns the
// port is not mistaken for it).
//
// Files are written 0600 to a temporary file in the same private directory and
// renamed into place, so a reader sees either the old or the new hint, never a
// torn one.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/platform"
)

// MaxHintSize bounds a hint file; a larger one is stale.
const MaxHintSize = 64 << 10

// ErrNoHint means there is no hint file for the service.
var ErrNoHint = errors.New("no hint")

// ErrStale means a hint exists but must not be used; the wrapped text says
// why (corrupt, symlink, dead pid, pid reused, wrong nonce, ...).
var ErrStale = errors.New("stale hint")

// ErrNotAFile means something other than a regular file (a directory, a
// symbolic link, a FIFO) sits at a hint's path. procref does not remove it
// itself; the wrapped text names it and what to run. A live host cannot
// publish its hint there either, so waiting for one does not help.
var ErrNotAFile = errors.New("not a hint file")

// Hint is the content of a hint file.
type Hint struct {
	Version int               `json:"version"` // handshake.Version; another is stale
	Name    string            `json:"name"`
	Key     string            `json:"key"`
	Host    platform.Identity `json:"host"`
	// Socket is the host's unix socket (its session endpoint); Port, its
	// loopback TCP port, is used only when Socket is empty (the fallback
	// where no unix socket could be made). See Transport.
	Socket    string    `json:"socket,omitempty"`
	Port      int       `json:"port,omitempty"`
	Token     string    `json:"token"`
	Nonce     string    `json:"nonce"`
	Mode      string    `json:"mode,omitempty"`
	Command   []string  `json:"command,omitempty"`
	Root      string    `json:"root,omitempty"`
	Log       string    `json:"log,omitempty"`
	StartedAt time.Time `json:"started_at"`
	// Backend is the identity of the process the host supervises, if any.
	Backend platform.Identity `json:"backend,omitempty"`
	// Info is the service-defined payload (launcher.Info for library users).
	Info json.RawMessage `json:"info,omitempty"`

	// Dir and Identity are the service's working directory and the
	// identity of its executables when it started (launcher.About).
	Dir      string `json:"dir,omitempty"`
	Identity string `json:"identity,omitempty"`

	// dir is the handle Read found the hint through; Verify dials Socket
	// relative to it.
	dir *platform.PrivateDir
}

// Transport names how h's host is reached, for logs and status:
// "unix PATH" or "tcp 127.0.0.1:PORT (loopback port, fallback)".
func (h *Hint) Transport() string {
	if h.Socket != "" {
		return "unix " + h.Socket
	}
	return fmt.Sprintf("tcp 127.0.0.1:%d (loopback port, fallback)", h.Port)
}

// Endpoint returns the network ("unix" or "tcp") and address at which h's
// host listens.
func (h *Hint) Endpoint() (network, address string) {
	if h.Socket != "" {
		return "unix", h.Socket
	}
	t := handshake.TCP(h.Port)
	return t.Network, t.Address
}

// target is where Verify dials h's host. A hint read through a dir handle
// is dialled relative to it (platform.PrivateDir.DialUnix): its socket must
// be in that dir. On a unix socket the kernel's word on the peer is checked
// before the token is sent: our uid, and the hint's host pid where the OS
// reports it. A fake host of another user (say behind a swapped directory)
// is refused before it learns anything.
func (h *Hint) target() (handshake.Target, error) {
	if h.Socket == "" {
		return handshake.TCP(h.Port), nil
	}
	t := handshake.Target{Network: "unix", Address: h.Socket, Check: func(c net.Conn) error {
		if err := platform.CheckPeer(c, h.Host.PID); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrStale, h.Socket, err)
		}
		return nil
	}}
	if h.dir != nil {
		if filepath.Dir(h.Socket) != filepath.Clean(h.dir.Path()) {
			return t, fmt.Errorf("%w: its socket %s is not in the runtime dir %s", ErrStale, h.Socket, h.dir.Path())
		}
		name := filepath.Base(h.Socket)
		t.Dial = func(ctx context.Context) (net.Conn, error) { return h.dir.DialUnix(ctx, name) }
	}
	return t, nil
}

// Path returns the hint file path for name in dir.
func Path(dir, name string) string { return filepath.Join(dir, name+".json") }

// Write atomically replaces the hint for h.Name in d (0600, temp + rename),
// relative to the handle on the checked dir: a dir swapped after the check
// never receives the token. d stays the caller's.
func Write(d *platform.PrivateDir, h *Hint) error {
	if h.Version == 0 {
		h.Version = handshake.Version
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding hint: %w", err)
	}
	if err := d.WriteFile(h.Name+".json", append(b, '\n')); err != nil {
		if fi, lerr := d.Stat(h.Name + ".json"); lerr == nil && !fi.Mode().IsRegular() {
			return notAFile(Path(d.Path(), h.Name), fi)
		}
		return fmt.Errorf("writing hint: %w", err)
	}
	return nil
}

// notAFile is the error for something other than a file at a hint's path,
// which procref does not remove itself: it names what to remove.
func notAFile(p string, fi os.FileInfo) error {
	what := "not a regular file"
	switch {
	case fi.IsDir():
		what = "a directory"
	case fi.Mode()&os.ModeSymlink != 0:
		what = "a symbolic link"
	case fi.Mode()&os.ModeNamedPipe != 0:
		what = "a named pipe"
	case fi.Mode()&os.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("%s is %s, %w: remove it (rm -r %s)", p, what, ErrNotAFile, p)
}

// Read reads the hint for name. It returns ErrNoHint if there is none, and an
// error wrapping ErrStale if the file is not a usable hint: a symlink or
// other non-regular file, larger than MaxHintSize, empty, not JSON, another
// format version, or for another name. Read does not check liveness; see
// [Verify]. The file is reached relative to the handle d on the checked
// runtime dir (a dir swapped after the check cannot redirect it), and the
// hint remembers d: Verify dials its socket through it. d stays the
// caller's and must stay open while the hint is used.
func Read(d *platform.PrivateDir, name string) (*Hint, error) {
	dir := d.Path()
	p := Path(dir, name)
	fi, err := d.Stat(name + ".json")
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoHint
	}
	if err != nil {
		return nil, fmt.Errorf("reading hint: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %w", ErrStale, notAFile(p, fi))
	}
	if fi.Size() > MaxHintSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, larger than %d", ErrStale, p, fi.Size(), MaxHintSize)
	}
	// Race: the file may be replaced between Lstat and open. O_NOFOLLOW
	// refuses a symlink, O_NONBLOCK keeps a FIFO from blocking the open, and
	// the Stat of the opened file refuses anything that is not regular.
	f, err := d.OpenFile(name+".json", os.O_RDONLY|oNonBlock, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoHint
	}
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %w", ErrStale, p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrStale, p)
	} else if !platform.OwnedByUs(fi) {
		// Only we can write our private dir; a hint of another owner was
		// planted (or the dir was swapped) and names a host we must not use.
		return nil, fmt.Errorf("%w: %s is not owned by us; remove it (`rm %s`) and check who can write %s", ErrStale, p, p, dir)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxHintSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading hint: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrStale, p)
	}
	if len(b) > MaxHintSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrStale, p, MaxHintSize)
	}
	var h Hint
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: %s is corrupt: %v", ErrStale, p, err)
	}
	if h.Version != handshake.Version {
		return nil, fmt.Errorf("%w: %s has format version %d, want %d", ErrStale, p, h.Version, handshake.Version)
	}
	if h.Name != name {
		return nil, fmt.Errorf("%w: %s names service %q", ErrStale, p, h.Name)
	}
	if (h.Socket == "" && (h.Port <= 0 || h.Port > 65535)) || h.Token == "" || h.Nonce == "" || h.Host.PID <= 0 {
		return nil, fmt.Errorf("%w: %s lacks pid, socket or port, token or nonce", ErrStale, p)
	}
	h.dir = d
	return &h, nil
}

// Verify checks h against reality and, if it is live, returns a connection to
// the host on which the handshake (with verb) has succeeded; the caller owns
// it. It returns an error wrapping ErrStale if the host is dead, its pid was
// reused, nothing listens on the port, or the listener is not the host
// (wrong nonce); handshake.ErrDraining if the host is shutting down; an
// error wrapping platform.ErrInsecureDir where the socket is dialled by
// path and the directory there is no longer the checked one.
// The dial and handshake are bounded by ctx and by timeout.
func Verify(ctx context.Context, h *Hint, verb string, timeout time.Duration) (net.Conn, error) {
	if !h.Host.Alive() {
		if platform.Alive(h.Host.PID) {
			return nil, fmt.Errorf("%w: pid %d was reused by another process", ErrStale, h.Host.PID)
		}
		return nil, fmt.Errorf("%w: host pid %d is not running", ErrStale, h.Host.PID)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	t, err := h.target()
	if err != nil {
		return nil, err
	}
	conn, err := handshake.DialTarget(ctx, t, h.Token, h.Nonce, os.Getpid(), verb)
	switch {
	case err == nil:
		return conn, nil
	case errors.Is(err, handshake.ErrDraining), errors.Is(err, ErrStale), errors.Is(err, platform.ErrInsecureDir):
		return nil, err // the last: the dir at the path is no longer the checked one (dial by path)
	case errors.Is(err, handshake.ErrWrongNonce):
		return nil, fmt.Errorf("%w: %s is owned by another listener", ErrStale, h.Transport())
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled):
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w: host pid %d on %s: %v", ErrStale, h.Host.PID, h.Transport(), err)
}

// Remove deletes the hint for name in d if it still carries nonce (so a
// host never removes its successor's hint). An empty nonce removes
// unconditionally; use that only for a hint already found stale, under the
// startup lock. The unlink is relative to the handle d: a dir swapped after
// the check loses nothing. Only a file is removed, never a directory at the
// hint's path (see ErrNotAFile).
func Remove(d *platform.PrivateDir, name, nonce string) error {
	if nonce != "" {
		h, err := Read(d, name)
		if errors.Is(err, ErrNoHint) {
			return nil
		}
		if err == nil && h.Nonce != nonce {
			return nil
		}
		if err != nil && !errors.Is(err, ErrStale) {
			return err
		}
		if err != nil {
			return nil // someone else's broken file; leave it to the startup path
		}
	}
	err := d.Remove(name + ".json")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// List returns the names of all hint files in d, read through its handle.
func List(d *platform.PrivateDir) ([]string, error) {
	m, err := d.Glob("*.json")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m))
	for _, b := range m {
		names = append(names, b[:len(b)-len(".json")])
	}
	return names, nil
}
