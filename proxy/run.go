package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/protocol"
	"github.com/procref/procref/internal/wire"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// Config is one proxy: the server command and how it is shared (the flags
// of `procref [flags] -- SERVER ARGS...`), and the editor's side.
type Config struct {
	// Command is the server and its arguments; Command[0] is looked up
	// in PATH.
	Command []string
	// Share is hostproto.ShareRoot, ShareGlobal or ShareKey (with
	// ShareKey set).
	Share, ShareKey string
	// Name overrides the base of the service name (default: the
	// command's base name).
	Name string
	// KeyEnv names environment variables whose values are part of the
	// backend's identity.
	KeyEnv []string
	// Protocol forces a protocol by name (internal/protocol: lsp, mcp,
	// jsonrpc); "" detects it from the client's first bytes.
	Protocol string
	// Impl is the reference counter ("auto", "sysv", "filelock").
	Impl string
	// Linger keeps the backend this long after the last client.
	Linger time.Duration
	// ConnectTimeout bounds starting the host and backend.
	ConnectTimeout time.Duration
	// MaxMessage is the largest message in mux mode.
	MaxMessage int64
	// LogLevel is the host's log level.
	LogLevel string

	// Stdin and Stdout are the editor's side. When they are os.Stdin and
	// os.Stdout on Linux, a mux-mode proxy hands them to the host
	// (PROCREF_HANDOFF=0 turns that off).
	Stdin  io.Reader
	Stdout io.Writer
	// Stderr gets warnings (a {port} backend). The error Run returns is
	// for the caller to print.
	Stderr io.Writer
	// Logger logs the proxy's own steps (nil: none).
	Logger *slog.Logger
	// Executable runs `procref host` ("": this executable).
	Executable string
}

// slowStart is how long attaching may take before the proxy tells the editor
// (window/logMessage) that a shared backend is being started.
const slowStart = 500 * time.Millisecond

// Run is one proxy: it finds or starts the shared host for cfg's server,
// connects the editor to it, and returns when the editor's session ends.
// It blocks. It returns nil when the editor closed its side or ctx ended
// (a signal), else the error to show, one line that names the log; the
// editor's initialize has then been answered with it where it was still
// open. The kernel reference it holds is given back when it returns (or
// by the kernel if the process dies).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if fi, ok := cfg.Stdin.(*os.File); ok {
		if fo, ok := cfg.Stdout.(*os.File); ok {
			growPipes(fi, fo)
		}
	}
	p := &run{cfg: cfg, in: bufio.NewReaderSize(cfg.Stdin, 64<<10), framing: wire.Header, proto: &protocol.LSP}
	cwd, _ := os.Getwd()
	spec, err := newSpec(cfg, cwd)
	if err == nil && cfg.Executable == "" {
		if cfg.Executable, err = os.Executable(); err != nil {
			err = fmt.Errorf("cannot find my own executable: %w", err)
		}
	}
	if err != nil {
		return p.fail(err)
	}
	if err := p.scope(spec, cwd); err != nil {
		if isStdinClosed(err) {
			return nil // the editor went away before saying anything
		}
		return p.fail(err)
	}
	svc, err := spec.Service(cfg.Executable)
	if err != nil {
		return p.fail(err)
	}
	svc.Logger = cfg.Logger
	actx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	sess, err := p.attach(actx, spec, svc)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return p.fail(err)
	}
	defer sess.Release()
	cfg.Logger.Info("attached", "service", svc.Name, "host_pid", sess.Supervisor.PID, "started", sess.Started)
	if !sess.Started && cfg.Linger != 0 {
		// The linger is the host's, fixed when the first window started
		// it; a later window cannot change it (documented in the README).
		cfg.Logger.Warn("--linger applies only to the window that starts the backend; this backend was already running, so its own linger applies",
			"service", svc.Name, "linger", cfg.Linger, "restart_with_yours", "procref stop "+svc.Name)
	}
	a := &attached{run: p, ctx: ctx, spec: spec, svc: svc, sess: sess}
	return a.serve(actx)
}

// newSpec is the service cfg describes.
func newSpec(cfg Config, cwd string) (*hostproto.Spec, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("no server command: usage `procref [flags] -- SERVER ARGS...`")
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot start language server %q: %w", cfg.Command[0], err)
	}
	spec := &hostproto.Spec{
		Mode:         hostproto.ModeFor(cfg.Command),
		Command:      append([]string{path}, cfg.Command[1:]...),
		Dir:          cwd,
		Share:        cfg.Share,
		ShareKey:     cfg.ShareKey,
		Name:         cfg.Name,
		Linger:       cfg.Linger,
		StartTimeout: cfg.ConnectTimeout,
		MaxMessage:   cfg.MaxMessage,
		LogLevel:     cfg.LogLevel,
		Impl:         cfg.Impl,
	}
	if spec.Share == "" {
		spec.Share = hostproto.ShareRoot
	}
	for _, name := range cfg.KeyEnv {
		name = strings.TrimSpace(name)
		spec.KeyEnv = append(spec.KeyEnv, name+"="+os.Getenv(name))
	}
	return spec, nil
}

// run is the state of one proxy's editor side.
type run struct {
	cfg Config
	in  *bufio.Reader

	first   []byte             // the editor's first message, if read
	init    initializeParams   // parsed from first
	framing wire.Framing       // of the client's stream
	proto   *protocol.Protocol // the client's (LSP until known)

	mu       sync.Mutex
	relaying bool // after this, only the relay writes to the editor
}

// fail reports a failure before the session to the editor (an error answer
// to its initialize) and returns it.
func (p *run) fail(err error) error {
	p.answerInitialize(err.Error())
	return err
}

// stopWriting hands the editor's stdout over: after it only the relay
// (or, handed off, the host) writes to the editor.
func (p *run) stopWriting() {
	p.mu.Lock()
	p.relaying = true
	p.mu.Unlock()
}

// write sends one framed message to the editor, unless the relay owns its
// stdout.
func (p *run) write(body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.relaying {
		p.framing.Write(p.cfg.Stdout, body)
	}
}

// attach attaches to (or starts) the shared host; a start that takes
// longer than slowStart is announced to the editor.
func (p *run) attach(ctx context.Context, spec *hostproto.Spec, svc *launcher.Service) (*launcher.Session, error) {
	// Decided here, not in the timer: answerInitialize may set p.first
	// later, on another goroutine.
	announce := p.first != nil && p.proto.Notice != nil
	slow := time.AfterFunc(slowStart, func() {
		if announce {
			p.write(p.proto.Notice(fmt.Sprintf("procref: starting shared %s backend %s (log: %s)", spec.Mode, svc.Name, svc.LogPath())))
		}
	})
	defer slow.Stop()
	return svc.Attach(ctx)
}

// attached is a proxy with its session: it hands the editor's stdio to the
// host or relays until the session ends.
type attached struct {
	*run
	ctx  context.Context // ends with a signal
	spec *hostproto.Spec
	svc  *launcher.Service
	sess *launcher.Session
}

// ended says why the host or backend ended the session, naming the log.
func (a *attached) ended(why error) error {
	if why == nil || errors.Is(why, hostproto.ErrHostGone) {
		why = fmt.Errorf("the shared backend %s closed the connection (host pid %d)", a.svc.Name, a.sess.Supervisor.PID)
	}
	if clean := hostproto.CleanLine(why.Error()); clean != why.Error() {
		why = errors.New(clean) // a reason line is plain text (a backend's stderr may hold NULs)
	}
	return fmt.Errorf("%w; see `procref logs %s` (log: %s)", why, a.svc.Name, a.sess.Log)
}

// failed is a failure after attaching, before the editor's stream flows.
func (a *attached) failed(err error) error {
	return a.fail(fmt.Errorf("%w (log: %s)", err, a.sess.Log))
}

// serve connects the editor to the session (actx bounds the backend dial).
func (a *attached) serve(actx context.Context) error {
	sess := a.sess
	conn, presence := sess.Conn, net.Conn(nil)
	if a.spec.Mode == hostproto.ModeTCP {
		bconn, err := dialBackend(actx, sess, a.cfg.Stderr)
		if err != nil {
			sess.Conn.Close()
			return a.failed(err)
		}
		conn, presence = bconn, sess.Conn
		defer presence.Close()
	}
	if a.spec.Mode == hostproto.ModeMux && a.cfg.Stdin == io.Reader(os.Stdin) && a.cfg.Stdout == io.Writer(os.Stdout) && os.Getenv("PROCREF_HANDOFF") != "0" {
		if done, err := a.handOff(); done {
			return err
		}
	}
	if a.first != nil {
		if err := a.framing.Write(conn, a.first); err != nil {
			return a.failed(fmt.Errorf("sending initialize to the backend: %w", err))
		}
	}
	a.stopWriting()
	pending, _ := a.in.Peek(a.in.Buffered())
	// In tcp mode the relay keeps the editor's LSP exit from the shared
	// server. It follows the framing from the first byte (the initialize,
	// if peeked, went out whole above) and passes everything unchanged as
	// soon as the stream does not look like LSP, so the generic bridge
	// (--share=global, any protocol) is not affected.
	lsp := a.spec.Mode == hostproto.ModeTCP
	var tail *hostproto.Tail
	if a.spec.Mode == hostproto.ModeMux {
		tail = hostproto.NewTail() // the host's last message says why it ended the session
	}
	ed := editorIO{In: a.cfg.Stdin, Out: a.cfg.Stdout, Pending: pending, LSP: lsp, Tail: tail}
	if lsp {
		ed.Inflight, ed.Note = newInflight(), hostproto.NewNote()
	}
	outcome := relay(a.ctx, ed, conn, presence)
	if why := tail.EndReason(); why != "" {
		return a.ended(errors.New(why)) // even if the editor closed its end after
	}
	if outcome == backendClosed && lsp {
		// tcp mode: the server crashed (the host says so) or the host
		// died; either way the editor's requests in flight get the reason
		var err error
		if why := a.crashed(ed, presence); why != "" {
			err = a.ended(errors.New(why))
		} else {
			err = a.ended(nil)
		}
		a.answerInflight(ed.Inflight, err)
		return err
	}
	switch outcome {
	case editorClosed, canceled:
		return nil
	default:
		return a.ended(nil)
	}
}

// answerInflight answers the editor's requests the crashed server did not
// (tcp mode). A server that died inside a message leaves the editor's
// reader waiting for the rest of its announced length: spaces complete
// it (the editor drops that one message, as it was cut anyway), so the
// error answers after it are read as messages of their own. After a cut
// header nothing can be framed: the editor gets the end of the stream.
func (a *attached) answerInflight(f *inflight, why error) {
	owed, ok := f.Owed()
	if !ok {
		return
	}
	pad := bytes.Repeat([]byte(" "), min(owed, 64<<10))
	for owed > 0 {
		k := min(owed, len(pad))
		if _, err := a.cfg.Stdout.Write(pad[:k]); err != nil {
			return
		}
		owed -= k
	}
	for _, e := range f.Errors(codeRequestFailed, why.Error()) {
		a.framing.Write(a.cfg.Stdout, e)
	}
}

// crashGrace bounds how long a tcp-mode proxy whose backend connection
// broke waits for the host's word that the backend crashed: the host
// learns of the exit when it reaps the process, just after the socket
// closes.
const crashGrace = 5 * time.Second

// crashed is a tcp-mode session whose backend connection broke: it waits
// (crashGrace at most) for the host's "ended" line and returns its reason
// (the backend crashed); "" if the host said nothing (it died, or the
// backend closed the connection).
func (a *attached) crashed(ed editorIO, presence net.Conn) string {
	go copyNote(ed.Note, presence) // the poll relay stopped reading it
	t := time.NewTimer(crashGrace)
	defer t.Stop()
	select {
	case <-ed.Note.Done():
	case <-t.C:
	case <-a.ctx.Done():
	}
	return ed.Note.Reason()
}

// handOff hands stdin and stdout to the host (Linux): it then reads and
// writes the editor's pipes itself, one process hop fewer per message;
// this proxy only holds the reference and waits for the host's word that
// the session is over. done false: no handoff here, relay instead.
func (a *attached) handOff() (done bool, err error) {
	var pend bytes.Buffer
	if a.first != nil {
		a.framing.Write(&pend, a.first)
	}
	buffered, _ := a.in.Peek(a.in.Buffered())
	pend.Write(buffered)
	dir, err := handoffDir(a.svc)
	if err != nil {
		a.sess.Conn.Close()
		return true, a.failed(err)
	}
	err = hostproto.Handoff(a.sess.Conn, dir, hostproto.HandoffName(a.svc.Name, a.sess.Supervisor.PID), a.sess.Supervisor.PID, pend.Bytes())
	switch {
	case err == nil:
		a.stopWriting()
		a.cfg.Logger.Debug("handed stdin and stdout to the host")
		if err := hostproto.WaitHandedOff(a.ctx, a.sess.Conn); err != nil {
			return true, a.ended(err)
		}
		return true, nil
	case errors.Is(err, hostproto.ErrNoHandoff):
		a.cfg.Logger.Debug("relaying", "why", err)
		return false, nil
	}
	a.sess.Conn.Close()
	return true, a.failed(err)
}

// handoffDir is the checked runtime dir handle the handoff socket is
// dialled through (the process's one, see launcher.Service.PrivateDir,
// whose opened dir is re-checked here and must pass). The error says how
// to fix the dir.
func handoffDir(svc *launcher.Service) (*platform.PrivateDir, error) {
	dir, err := svc.PrivateDir()
	if err == nil && !filepath.IsAbs(dir.Path()) {
		err = fmt.Errorf("runtime dir %q is not an absolute path; set PROCREF_RUNTIME_DIR to a private absolute directory", dir.Path())
	}
	if err != nil {
		return nil, fmt.Errorf("descriptor handoff: %w", err)
	}
	return dir, nil
}

// dialBackend connects to a tcp-mode backend at the address its host
// names on the session; the window that started the host is told once on
// stderr when that is a {port} every local user can reach.
func dialBackend(ctx context.Context, sess *launcher.Session, stderr io.Writer) (net.Conn, error) {
	addr, err := hostproto.ReadBackendAddr(sess.Conn, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if addr.Network == "tcp" && sess.Started && stderr != nil {
		fmt.Fprintf(stderr, "procref: warning: %s\n", hostproto.PortWarning(addr))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, addr.Network, addr.Address)
	if err != nil {
		return nil, fmt.Errorf("connecting to the backend on %s: %w", addr.Address, err)
	}
	return conn, nil
}
