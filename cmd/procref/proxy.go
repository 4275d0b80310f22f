package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/procref/procref/host"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/lspframe"
	"github.com/procref/procref/mcp"
	"github.com/procref/procref/proxy"
)

// Exit codes of the proxy.
const (
	exitOK      = 0
	exitFailure = 1 // backend or host failed or went away
	exitUsage   = 2
)

// slowStart is how long attaching may take before the proxy tells the editor
// (window/logMessage) that a shared backend is being started.
const slowStart = 500 * time.Millisecond

// errFlagsPrinted marks a flag error parseArgs has already printed.
var errFlagsPrinted = errors.New("bad flags")

type proxyFlags struct {
	share, shareKey, logLevel, name, keyEnv, impl string
	protocol                                      string
	linger, connectTimeout                        time.Duration
	maxMessage                                    int64
}

func parseProxyFlags(args []string, stderr io.Writer) (*proxyFlags, []string, error) {
	sep := -1
	for i, a := range args {
		if a == "--" {
			sep = i
			break
		}
	}
	if sep < 0 {
		if len(args) > 0 && suggestCommand(args[0]) != "" {
			return nil, nil, fmt.Errorf("unknown command %q: did you mean `procref %s`? (to run a server: `procref [flags] -- SERVER ARGS...`)", args[0], suggestCommand(args[0]))
		}
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			return nil, nil, fmt.Errorf("missing `--` before the server command: write `procref [flags] -- %s`", strings.Join(args, " "))
		}
		return nil, nil, errors.New("missing `--` and server command: usage `procref [flags] -- SERVER ARGS...` (see `procref help`)")
	}
	f := &proxyFlags{}
	fs := flag.NewFlagSet("procref", flag.ContinueOnError)
	fs.StringVar(&f.share, "share", envOr("PROCREF_SHARE", host.ShareRoot), "root|global")
	fs.StringVar(&f.shareKey, "share-key", os.Getenv("PROCREF_SHARE_KEY"), "share one backend per KEY")
	fs.StringVar(&f.logLevel, "log-level", envOr("PROCREF_LOG_LEVEL", "warn"), "debug|info|warn|error")
	fs.StringVar(&f.name, "name", os.Getenv("PROCREF_NAME"), "backend name")
	fs.StringVar(&f.keyEnv, "key-env", os.Getenv("PROCREF_KEY_ENV"), "comma-separated env vars that are part of the backend identity")
	fs.StringVar(&f.impl, "refcount", envOr("PROCREF_REFCOUNT", "auto"), "auto|sysv|filelock")
	fs.StringVar(&f.protocol, "protocol", os.Getenv("PROCREF_PROTOCOL"), "lsp|mcp|jsonrpc (default: detected from the client's first message)")
	linger, err := parseDuration(envOr("PROCREF_LINGER", "0s"))
	if err != nil {
		return nil, nil, fmt.Errorf("PROCREF_LINGER: %w", err)
	}
	timeout, err := parseDuration(envOr("PROCREF_CONNECT_TIMEOUT", "30s"))
	if err != nil {
		return nil, nil, fmt.Errorf("PROCREF_CONNECT_TIMEOUT: %w", err)
	}
	maxMsg, err := strconv.ParseInt(envOr("PROCREF_MAX_MESSAGE", strconv.Itoa(lspframe.DefaultMaxMessage)), 10, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("PROCREF_MAX_MESSAGE: %w", err)
	}
	lingerV, timeoutV := durationValue(linger), durationValue(timeout)
	fs.Var(&lingerV, "linger", "keep the backend this long after the last window (a duration: 5s, 2m)")
	fs.Var(&timeoutV, "connect-timeout", "give up starting/connecting after this (a duration: 30s)")
	fs.Int64Var(&f.maxMessage, "max-message", maxMsg, "largest LSP message in mux mode")
	pos, err := parseArgs(fs, args[:sep], stderr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errFlagsPrinted, err)
	}
	if len(pos) > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q before `--`", pos[0])
	}
	f.linger, f.connectTimeout = time.Duration(lingerV), time.Duration(timeoutV)
	switch f.share {
	case host.ShareRoot, host.ShareGlobal:
	default:
		return nil, nil, fmt.Errorf("--share must be root or global, not %q", f.share)
	}
	switch f.protocol {
	case "", host.ProtocolLSP, host.ProtocolMCP, host.ProtocolJSONRPC:
	default:
		return nil, nil, fmt.Errorf("--protocol must be lsp, mcp or jsonrpc, not %q", f.protocol)
	}
	if f.shareKey != "" {
		f.share = host.ShareKey
	}
	cmd := args[sep+1:]
	if len(cmd) == 0 {
		return nil, nil, errors.New("no server command after `--`: usage `procref [flags] -- SERVER ARGS...`")
	}
	return f, cmd, nil
}

// cmdProxy is `procref [flags] -- SERVER ARGS...`.
func cmdProxy(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, command, err := parseProxyFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		if !errors.Is(err, errFlagsPrinted) {
			fmt.Fprintf(stderr, "procref: %v\n", err)
		}
		return exitUsage
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "procref: %v\n", err)
		return exitUsage
	}
	// Signals end the proxy cleanly (ctx). The handler is installed off
	// the attach path: the first signal.Notify costs 0.5–1.2 ms here. A
	// signal in the moment before it is installed kills the proxy with the
	// default action, which is harmless: the kernel gives back a reference
	// already taken (SEM_UNDO), and the host sees the session end.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go stopOnSignal(ctx, stop)

	if fi, ok := stdin.(*os.File); ok {
		if fo, ok := stdout.(*os.File); ok {
			growPipes(fi, fo)
		}
	}
	in := bufio.NewReaderSize(stdin, 64<<10)
	p := &proxyRun{in: in, out: stdout, stderr: stderr, framing: mcp.Header}
	cwd, _ := os.Getwd()
	spec, exe, err := newSpec(f, command, cwd)
	if err != nil {
		return p.fail("%v", err)
	}
	if err := p.scope(f, spec, cwd); err != nil {
		if proxy.IsStdinClosed(err) {
			return exitOK // the editor went away before saying anything
		}
		return p.fail("%v", err)
	}
	svc, err := spec.Service(exe)
	if err != nil {
		return p.fail("%v", err)
	}
	svc.Logger = log
	actx, cancel := context.WithTimeout(ctx, f.connectTimeout+5*time.Second)
	defer cancel()
	sess, err := p.attach(actx, spec, svc)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		return p.fail("%v", err)
	}
	defer sess.Release()
	log.Info("attached", "service", svc.Name, "host_pid", sess.Supervisor.PID, "started", sess.Started)
	a := &attached{p: p, ctx: ctx, spec: spec, svc: svc, sess: sess, log: log, stdin: stdin, stdout: stdout}
	return a.run(actx)
}

// fail reports a startup failure to the editor and on stderr.
func (p *proxyRun) fail(format string, a ...any) int {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(p.stderr, "procref: %s\n", msg)
	p.answerInitialize(msg)
	return exitFailure
}

// newSpec is the service the flags and the server command describe, and
// this executable (which runs the host).
func newSpec(f *proxyFlags, command []string, cwd string) (*host.Spec, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("cannot find my own executable: %w", err)
	}
	path, err := exec.LookPath(command[0])
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("cannot start language server %q: %w", command[0], err)
	}
	spec := &host.Spec{
		Mode:         host.ModeFor(command),
		Command:      append([]string{path}, command[1:]...),
		Dir:          cwd,
		Share:        f.share,
		ShareKey:     f.shareKey,
		Name:         f.name,
		Linger:       f.linger,
		StartTimeout: f.connectTimeout,
		MaxMessage:   f.maxMessage,
		LogLevel:     f.logLevel,
		Impl:         f.impl,
	}
	if f.keyEnv != "" {
		for _, name := range strings.Split(f.keyEnv, ",") {
			name = strings.TrimSpace(name)
			spec.KeyEnv = append(spec.KeyEnv, name+"="+os.Getenv(name))
		}
	}
	return spec, exe, nil
}

// scope completes spec from the client's first bytes: the protocol, and
// with --share=root the workspace root from the editor's initialize (which
// is then replayed to the backend as the first message).
func (p *proxyRun) scope(f *proxyFlags, spec *host.Spec, cwd string) error {
	if err := p.setProtocol(f, spec, cwd); err != nil {
		return wrapFirst("the client's", err)
	}
	if spec.Share != host.ShareRoot || spec.Protocol != "" {
		return nil
	}
	if err := p.peekInitialize(f.maxMessage); err != nil {
		return wrapFirst("the editor's", err)
	}
	spec.Root = p.init.Root
	if spec.Root == "" {
		spec.Root = cwd
	}
	if fi, err := os.Stat(spec.Root); err == nil && fi.IsDir() {
		spec.Dir = spec.Root
	}
	return nil
}

// wrapFirst says whose first message could not be read; a closed stdin
// stays recognisable (proxy.IsStdinClosed).
func wrapFirst(whose string, err error) error {
	if proxy.IsStdinClosed(err) {
		return err
	}
	return fmt.Errorf("reading %s first message: %w", whose, err)
}

// attach attaches to (or starts) the shared host; a start that takes
// longer than slowStart is announced to the editor.
func (p *proxyRun) attach(ctx context.Context, spec *host.Spec, svc *launcher.Service) (*launcher.Session, error) {
	// Decided here, not in the timer: answerInitialize may set p.first
	// later, on another goroutine.
	announce := p.first != nil && spec.Protocol == ""
	slow := time.AfterFunc(slowStart, func() {
		if announce {
			p.write(proxy.LogMessage(fmt.Sprintf("procref: starting shared %s backend %s (log: %s)", spec.Mode, svc.Name, svc.LogPath())))
		}
	})
	defer slow.Stop()
	return svc.Attach(ctx)
}

// attached is a proxy with its session: it hands the editor's stdio to the
// host or relays until the session ends.
type attached struct {
	p      *proxyRun
	ctx    context.Context // ends with a signal
	spec   *host.Spec
	svc    *launcher.Service
	sess   *launcher.Session
	log    *slog.Logger
	stdin  io.Reader
	stdout io.Writer
}

// ended reports why the host or backend ended the session: one line on
// stderr naming the log, exit 1.
func (a *attached) ended(why error) int {
	if why == nil || errors.Is(why, host.ErrHostGone) {
		why = fmt.Errorf("the shared backend %s closed the connection (host pid %d)", a.svc.Name, a.sess.Supervisor.PID)
	}
	fmt.Fprintf(a.p.stderr, "procref: %v; see `procref logs %s` (log: %s)\n", why, a.svc.Name, a.sess.Log)
	return exitFailure
}

// run connects the editor to the session (actx bounds the backend dial)
// and returns the exit code.
func (a *attached) run(actx context.Context) int {
	p, sess := a.p, a.sess
	conn, presence := sess.Conn, net.Conn(nil)
	if a.spec.Mode == host.ModeTCP {
		bconn, err := dialBackend(actx, sess, p.stderr)
		if err != nil {
			sess.Conn.Close()
			return p.fail("%v (log: %s)", err, sess.Log)
		}
		conn, presence = bconn, sess.Conn
		defer presence.Close()
	}
	if a.spec.Mode == host.ModeMux && a.stdin == io.Reader(os.Stdin) && a.stdout == io.Writer(os.Stdout) && os.Getenv("PROCREF_HANDOFF") != "0" {
		if code, done := a.handOff(); done {
			return code
		}
	}
	if p.first != nil {
		if err := mcp.Write(p.framing, conn, p.first); err != nil {
			return p.fail("sending initialize to the backend: %v (log: %s)", err, sess.Log)
		}
	}
	p.stopWriting()
	pending, _ := p.in.Peek(p.in.Buffered())
	// In tcp mode the relay keeps the editor's LSP exit from the shared
	// server. It follows the framing from the first byte (the initialize,
	// if peeked, went out whole above) and passes everything unchanged as
	// soon as the stream does not look like LSP, so the generic bridge
	// (--share=global, any protocol) is not affected.
	lsp := a.spec.Mode == host.ModeTCP
	var tail *proxy.Tail
	if a.spec.Mode == host.ModeMux {
		tail = &proxy.Tail{} // the host's last message says why it ended the session
	}
	outcome := proxy.Relay(a.ctx, proxy.Editor{In: a.stdin, Out: a.stdout, Pending: pending, LSP: lsp, Tail: tail}, conn, presence)
	if why := tail.EndReason(); why != "" {
		return a.ended(errors.New(why)) // even if the editor closed its end after
	}
	switch outcome {
	case proxy.EditorClosed, proxy.Canceled:
		return exitOK
	default:
		return a.ended(nil)
	}
}

// handOff hands stdin and stdout to the host (Linux): it then reads and
// writes the editor's pipes itself, one process hop fewer per message;
// this proxy only holds the reference and waits for the host's word that
// the session is over. done false: no handoff here, relay instead.
func (a *attached) handOff() (code int, done bool) {
	p, sess := a.p, a.sess
	var pend bytes.Buffer
	if p.first != nil {
		mcp.Write(p.framing, &pend, p.first)
	}
	buffered, _ := p.in.Peek(p.in.Buffered())
	pend.Write(buffered)
	dir, _ := a.svc.RuntimeDir() // checked by Attach already
	err := host.Handoff(sess.Conn, host.HandoffSocket(dir, a.svc.Name, sess.Supervisor.PID), pend.Bytes())
	switch {
	case err == nil:
		p.stopWriting()
		a.log.Debug("handed stdin and stdout to the host")
		if err := host.WaitHandedOff(a.ctx, sess.Conn); err != nil {
			return a.ended(err), true
		}
		return exitOK, true
	case errors.Is(err, host.ErrNoHandoff):
		a.log.Debug("relaying", "why", err)
		return 0, false
	}
	sess.Conn.Close()
	return p.fail("%v (log: %s)", err, sess.Log), true
}

// dialBackend connects to a tcp-mode backend at the address its host
// names on the session; the window that started the host is told once on
// stderr when that is a {port} every local user can reach.
func dialBackend(ctx context.Context, sess *launcher.Session, stderr io.Writer) (net.Conn, error) {
	addr, err := host.ReadBackendAddr(sess.Conn, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if addr.Network == "tcp" && sess.Started {
		fmt.Fprintf(stderr, "procref: warning: %s\n", host.PortWarning(addr))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, addr.Network, addr.Address)
	if err != nil {
		return nil, fmt.Errorf("connecting to the backend on %s: %w", addr.Address, err)
	}
	return conn, nil
}

// stopOnSignal calls stop on SIGTERM, SIGINT or SIGHUP, and returns then
// or when ctx is done (its handler removed).
func stopOnSignal(ctx context.Context, stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
	defer signal.Stop(sig)
	select {
	case <-sig:
		stop()
	case <-ctx.Done():
	}
}

// proxyRun is the state of one proxy's editor side.
type proxyRun struct {
	in     *bufio.Reader
	out    io.Writer
	stderr io.Writer

	first   []byte           // the editor's first message, if read
	init    proxy.Initialize // parsed from first
	framing mcp.Framing      // of the client's stream

	mu       sync.Mutex
	relaying bool // after this, only the relay writes to out
}

// stopWriting hands out over: after it only the relay (or, handed off, the
// host) writes to the editor.
func (p *proxyRun) stopWriting() {
	p.mu.Lock()
	p.relaying = true
	p.mu.Unlock()
}

// write sends one framed message to the editor, unless the relay owns out.
func (p *proxyRun) write(body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.relaying {
		mcp.Write(p.framing, p.out, body)
	}
}

func (p *proxyRun) peekInitialize(max int64) error {
	body, err := lspframe.NewReader(p.in, max).Read()
	if err != nil {
		return err
	}
	in, err := proxy.ParseInitialize(body)
	if err != nil {
		return fmt.Errorf("the editor's first message is not JSON-RPC: %w", err)
	}
	p.first, p.init = body, in
	return nil
}

// answerInitialize answers the editor's first request with an error, so the
// editor shows why instead of waiting. If the first message has not been
// read yet, it waits briefly for it.
func (p *proxyRun) answerInitialize(msg string) {
	if p.first == nil {
		type first struct {
			body []byte
			init proxy.Initialize
		}
		got := make(chan first, 1)
		go func() {
			defer close(got)
			if body, err := lspframe.NewReader(p.in, 0).Read(); err == nil {
				if in, err := proxy.ParseInitialize(body); err == nil {
					got <- first{body, in}
				}
			}
		}()
		select {
		case f, ok := <-got:
			if ok {
				p.first, p.init = f.body, f.init
			}
		case <-time.After(3 * time.Second):
			return
		}
	}
	if p.first != nil && p.init.ID != nil {
		p.write(proxy.ErrorResponse(p.init.ID, -32002, "procref: "+msg))
	}
}
