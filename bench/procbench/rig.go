package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/platform"
)

// rig is one benchmark run's private world: directories, environment, and
// every process it started.
type rig struct {
	dir                      string // private temp root, removed by cleanup
	runtime, state, xdg, tmp string
	logs                     string
	procref, self, gopls     string
	env                      []string

	mu       sync.Mutex
	children map[*child]bool
	cleaned  bool
	keep     bool // keep dir (logs) on cleanup: something failed
}

func newRig(procref, gopls string) (*rig, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "procbench-")
	if err != nil {
		return nil, err
	}
	r := &rig{
		dir:      dir,
		runtime:  filepath.Join(dir, "run"),
		state:    filepath.Join(dir, "state"),
		xdg:      filepath.Join(dir, "xdg"),
		tmp:      filepath.Join(dir, "tmp"),
		logs:     filepath.Join(dir, "logs"),
		procref:  procref,
		self:     self,
		gopls:    gopls,
		children: map[*child]bool{},
	}
	for _, d := range []string{r.runtime, r.state, r.xdg, r.tmp, r.logs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	// Private directories for everything that shares by path: procref's
	// hints and locks, and the gopls daemon's socket (gopls -remote=auto puts
	// it in $XDG_RUNTIME_DIR, else $TMPDIR).
	set := map[string]string{
		"PROCREF_RUNTIME_DIR": r.runtime,
		"PROCREF_STATE_DIR":   r.state,
		"XDG_RUNTIME_DIR":     r.xdg,
		"TMPDIR":              r.tmp,
		"GOTOOLCHAIN":         "local", // never download a toolchain for the fixture
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		// PROCREF_RELAY passes: it selects the relay being measured.
		if _, ok := set[k]; !ok && (!strings.HasPrefix(k, "PROCREF_") || k == "PROCREF_RELAY") {
			r.env = append(r.env, kv)
		}
	}
	for k, v := range set {
		r.env = append(r.env, k+"="+v)
	}
	return r, nil
}

// fixture writes a tiny Go module (two files, one package) under the rig and
// returns its directory.
func (r *rig) fixture(name string) (string, error) {
	dir := filepath.Join(r.dir, "ws", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod":  "module example.com/fixture\n\ngo 1.22\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(greet(\"world\"))\n}\n",
		"greet.go": "package main\n\n// greet returns a greeting for name.\n" +
			"func greet(name string) string {\n\treturn \"hello, \" + name\n}\n",
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// child is a started process speaking LSP on its stdin/stdout.
type child struct {
	name  string
	cmd   *exec.Cmd
	start time.Time // just before exec

	inMu sync.Mutex
	in   io.WriteCloser
	out  *firstByteReader
	fr   *frameReader

	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, after done
}

// startChild execs argv in dir with the rig's environment. Its stderr goes
// to logs/<name>.stderr.
func (r *rig) startChild(name, dir string, argv ...string) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = r.env
	// A file, not a pipe: a daemon that inherits stderr must not keep
	// Wait from returning.
	logf, err := os.OpenFile(filepath.Join(r.logs, strings.NewReplacer("/", "_", "@", "_", " ", "_").Replace(name)+".stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, in: in, done: make(chan struct{})}
	c.out = &firstByteReader{r: out}
	c.fr = newFrameReader(c.out)
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	r.mu.Lock()
	r.children[c] = true
	r.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		close(c.done)
		r.mu.Lock()
		delete(r.children, c)
		r.mu.Unlock()
	}()
	return c, nil
}

// send writes one framed message to the child's stdin.
func (c *child) send(body []byte) error {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	_, err := c.in.Write(appendFrame(nil, body))
	return err
}

// await reads messages until the one with id arrives (a response, or, with
// echo, any message with that id) and returns when its last byte was read.
// Server requests are answered with a null result. After timeout the child
// is killed.
func (c *child) await(id int, echo bool, timeout time.Duration) (time.Time, error) {
	type result struct {
		at  time.Time
		err error
	}
	ch := make(chan result, 1)
	want := strconv.Itoa(id)
	go func() {
		for {
			body, err := c.fr.read()
			at := time.Now()
			if err != nil {
				ch <- result{err: fmt.Errorf("%s: reading stdout: %w", c.name, err)}
				return
			}
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if err := json.Unmarshal(body, &m); err != nil {
				ch <- result{err: fmt.Errorf("%s: bad message %.80q: %w", c.name, body, err)}
				return
			}
			if string(m.ID) == want && (echo || m.Method == "") {
				ch <- result{at: at}
				return
			}
			if !echo && m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null" {
				c.send([]byte(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":null}`))
			}
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-ch:
		return res.at, res.err
	case <-t.C:
		c.kill()
		return time.Time{}, fmt.Errorf("%s: no answer to request %d within %v", c.name, id, timeout)
	}
}

// quit does a clean LSP quit (shutdown, exit, stdin closed) and returns the
// exit code. A child that does not exit within timeout is killed.
func (c *child) quit(echo bool, timeout time.Duration) (int, error) {
	qerr := c.leave(echo, timeout)
	code, err := c.wait(timeout)
	if err != nil {
		return code, err
	}
	return code, qerr
}

// leave is quit without waiting for the exit: shutdown (answered), exit,
// stdin closed.
func (c *child) leave(echo bool, timeout time.Duration) error {
	if err := c.send([]byte(`{"jsonrpc":"2.0","id":2,"method":"shutdown"}`)); err != nil {
		c.leaveAfter(echo, 0)
		return err
	}
	return c.leaveAfter(echo, timeout)
}

// leaveAfter is leave once shutdown was sent: it waits up to timeout for
// the answer (0: not at all), then sends exit and closes stdin.
func (c *child) leaveAfter(echo bool, timeout time.Duration) error {
	var qerr error
	if timeout > 0 {
		_, qerr = c.await(2, echo, timeout)
	}
	c.send([]byte(`{"jsonrpc":"2.0","method":"exit"}`))
	c.inMu.Lock()
	c.in.Close()
	c.inMu.Unlock()
	return qerr
}

// wait waits for the child to exit and returns its exit code (-1 if killed
// after timeout).
func (c *child) wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode(), nil
	case <-t.C:
		c.kill()
		<-c.done
		return -1, fmt.Errorf("%s did not exit within %v after a clean quit", c.name, timeout)
	}
}

// kill ends the child by pid (it is our child: Wait has not reaped it
// unless done is closed).
func (c *child) kill() {
	select {
	case <-c.done:
	default:
		c.cmd.Process.Kill()
	}
}

// firstByteReader records when the first byte arrived.
type firstByteReader struct {
	r  io.Reader
	at time.Time // owned by the single reading goroutine
}

func (f *firstByteReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
	}
	return n, err
}

// frameReader reads LSP base-protocol frames. Unlike wire.Reader it can
// discard a body without allocating it (for the throughput runs).
type frameReader struct {
	br *bufio.Reader
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, 1<<20)}
}

var errNoLength = errors.New("frame without Content-Length")

func (f *frameReader) header() (int, error) {
	n := -1
	for {
		line, err := f.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			break
		}
		k, v, ok := strings.Cut(s, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			if n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if n < 0 {
		return 0, errNoLength
	}
	return n, nil
}

// read returns the next body.
func (f *frameReader) read() ([]byte, error) {
	n, err := f.header()
	if err != nil {
		return nil, err
	}
	body := make([]byte, n)
	_, err = io.ReadFull(f.br, body)
	return body, err
}

// skip discards the next body and returns its length.
func (f *frameReader) skip() (int, error) {
	n, err := f.header()
	if err != nil {
		return 0, err
	}
	_, err = f.br.Discard(n)
	return n, err
}

func appendFrame(dst, body []byte) []byte {
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}

// initializeBody is an editor's initialize request (id 1) for root.
func initializeBody(root string) []byte {
	uri := fileURI(root)
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": 1, "method": "initialize",
		"params": map[string]any{
			"processId":        nil,
			"clientInfo":       map[string]any{"name": "procbench"},
			"rootUri":          uri,
			"workspaceFolders": []any{map[string]any{"uri": uri, "name": filepath.Base(root)}},
			"capabilities": map[string]any{
				"workspace":    map[string]any{"workspaceFolders": true, "configuration": true},
				"textDocument": map[string]any{"hover": map[string]any{"contentFormat": []string{"plaintext"}}},
			},
		},
	})
	return b
}

func fileURI(path string) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return "file://" + p
}

// hints returns the live procref hints in the rig's runtime dir.
func (r *rig) hints() map[string]*discovery.Hint {
	out := map[string]*discovery.Hint{}
	d, err := platform.OpenPrivateDir(r.runtime)
	if err != nil {
		return out // no runtime dir yet: no hints
	}
	defer d.Close()
	names, _ := discovery.List(d)
	for _, n := range names {
		if h, err := discovery.Read(d, n); err == nil {
			out[n] = h
		}
	}
	return out
}

// readHint reads the hint name in the rig's runtime dir (its fields only:
// the dir's handle is closed again).
func (r *rig) readHint(name string) (*discovery.Hint, error) {
	d, err := platform.OpenPrivateDir(r.runtime)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return discovery.Read(d, name)
}

// hintInfo decodes a hint's service info (backend pid and port).
func hintInfo(h *discovery.Hint) (pid, port int) {
	var info struct {
		PID  int `json:"pid"`
		Port int `json:"port"`
	}
	json.Unmarshal(h.Info, &info)
	if info.PID == 0 {
		info.PID = h.Backend.PID
	}
	return info.PID, info.Port
}

// waitServiceGone waits until the service's hint is gone and its host and
// backend processes have exited. There is no event for "a detached process
// that is not our child exited" on every platform; platform.Identity.Wait
// uses a pidfd on Linux and polls elsewhere.
func (r *rig) waitServiceGone(h *discovery.Hint, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := h.Host.Wait(ctx); err != nil {
		return fmt.Errorf("host %v of %s still running after %v", h.Host, h.Name, timeout)
	}
	if pid, _ := hintInfo(h); pid > 0 {
		if id := h.Backend; id.PID == pid {
			if err := id.Wait(ctx); err != nil {
				return fmt.Errorf("backend %v of %s still running after %v", id, h.Name, timeout)
			}
		} else if platform.Alive(pid) {
			return fmt.Errorf("backend pid %d of %s still running", pid, h.Name)
		}
	}
	// A successor's hint under the same name (a window reopened meanwhile)
	// is not this host's.
	if now, err := r.readHint(h.Name); !errors.Is(err, discovery.ErrNoHint) && (err != nil || now.Nonce == h.Nonce) {
		return fmt.Errorf("hint of %s still present after its host exited (%v)", h.Name, err)
	}
	return nil
}

// keepLogs marks the rig's directory to be kept and returns it.
func (r *rig) keepLogs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep = true
	return r.dir
}

// cleanup ends every process the run started: its children by pid, the
// procref hosts in its private runtime dir (`procref stop --all` only sees
// that dir), and the gopls daemon started under its private XDG_RUNTIME_DIR.
// It is idempotent.
func (r *rig) cleanup() {
	r.mu.Lock()
	if r.cleaned {
		r.mu.Unlock()
		return
	}
	r.cleaned = true
	var kids []*child
	for c := range r.children {
		kids = append(kids, c)
	}
	r.mu.Unlock()
	for _, c := range kids {
		c.inMu.Lock()
		c.in.Close()
		c.inMu.Unlock()
	}
	for _, c := range kids {
		if _, err := c.wait(3 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "procbench: cleanup: %v\n", err)
		}
	}
	if len(r.hints()) > 0 {
		stop := exec.Command(r.procref, "stop", "--all")
		stop.Env = r.env
		stop.Stdout, stop.Stderr = io.Discard, os.Stderr
		stop.Run()
	}
	for _, pid := range goplsDaemons(r.xdg) {
		if id, err := platform.Lookup(pid); err == nil {
			id.Stop(3 * time.Second)
		}
	}
	if !r.keep {
		os.RemoveAll(r.dir)
	}
}
