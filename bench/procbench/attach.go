package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/platform"
)

// attachSample is one exec of a client-facing process (a procref proxy, a
// gopls forwarder, or gopls itself) up to its clean quit.
type attachSample struct {
	// AtBackend is exec → the first byte arrived at the backend (echo
	// backend only; 0 otherwise): the editor's first byte relayed.
	AtBackend time.Duration `json:"at_backend_ns,omitempty"`
	// FirstOut is exec → the first byte on the process's stdout.
	FirstOut time.Duration `json:"first_out_ns"`
	// Init is exec → the last byte of the initialize answer on stdout.
	Init time.Duration `json:"init_ns"`
	// Exit is the exit code after shutdown, exit and stdin closed.
	Exit int `json:"exit"`
	// Exited is exec → exit observed (exec floors only).
	Exited time.Duration `json:"exited_ns,omitempty"`
}

// scenario is one attach scenario and its samples.
type scenario struct {
	Key     string         `json:"key"`
	Build   string         `json:"build,omitempty"` // compared build's name
	Label   string         `json:"label"`
	Samples []attachSample `json:"samples"`

	argv  []string
	dir   string
	echo  bool   // the backend echoes (no LSP server)
	stamp string // echo backend's first-byte stamp file
	cold  bool   // a procref cold start: a new service must appear and go
	plain bool   // not LSP: exec, read stdout to EOF, wait (the exec floor)
	warm  bool   // a keeper holds the service up for the whole run
	// reopen: an unmeasured window attaches and quits first; the measured
	// one is exec'd the moment that proxy has exited (the host is
	// draining or about to), as when an editor window is closed and
	// opened again.
	reopen bool
	// overlap: an unmeasured copy of the same command, which was sent
	// initialized and lived prevWindowLife as the reopen's closed window,
	// is sent shutdown just before the measured one is exec'd, and exit
	// once it answers: the reopen floor, what a new server pays for an old
	// one's shutdown and exit on this machine.
	overlap bool
}

// Scenario keys.
const (
	scWarmEcho   = "procref-warm-echo"
	scWarmGopls  = "procref-warm-gopls"
	scAutoWarm   = "gopls-remote-auto-warm"
	scDirect     = "gopls-direct"
	scColdGopls  = "procref-cold-gopls"
	scColdEcho   = "procref-cold-echo"
	scColdMux    = "procref-cold-gopls-mux"
	scReopenMux  = "procref-reopen-gopls-mux"
	scDirectOver = "gopls-direct-overlap"
	scExecFloor  = "floor-procref-version"
	attachTimout = 60 * time.Second
	quitTimeout  = 10 * time.Second
)

// attachResults holds every attach scenario plus the RSS of the attached
// long-lived clients (the "keepers").
type attachResults struct {
	Reps      int               `json:"reps"`
	Scenarios []*scenario       `json:"scenarios"`
	RSS       map[string]uint64 `json:"rss_bytes"`
	KeeperRC  map[string]int    `json:"keeper_exit"`
	byKey     map[string]*scenario
}

func (a *attachResults) get(key string) *scenario { return a.byKey[key] }

// build is a procref binary to measure; the one under test has no name.
type build struct{ name, path string }

// benchAttach runs every attach scenario n times, interleaved: for each
// procref build (the one under test first, then those to compare), warm and
// cold over the echo backend and gopls, and its exec floor; the gopls
// baselines; and the exec floors of the floors commands (each run with no
// arguments, to exit at once).
func (r *rig) benchAttach(n int, builds []build, floors []string) (*attachResults, error) {
	// The daemon's idle timeout is short so that it exits by itself even
	// where cleanup cannot find it by command line (not Linux).
	auto := []string{r.gopls, "-remote=auto", "-remote.listen.timeout=20s"}
	var wsErr error
	ws := func(name string) string {
		dir, err := r.fixture(name)
		if err != nil && wsErr == nil {
			wsErr = err
		}
		return dir
	}
	var sc []*scenario
	for i, b := range builds {
		key, label, wsSuffix := "", "", ""
		if b.name != "" {
			key, label, wsSuffix = "@"+b.name, " ["+b.name+"]", "-"+b.name
		}
		first := len(sc)
		goplsTCP := []string{b.path, "--", r.gopls, "serve", "-listen=unix;{socket}"}
		echoTCP := func(stamp string) []string {
			return []string{b.path, "--", r.self, "echo-server", "-listen=127.0.0.1:{port}", "-stamp=" + stamp}
		}
		warmStamp := fmt.Sprintf("%s/warm%d.stamps", r.dir, i)
		coldStamp := fmt.Sprintf("%s/cold%d.stamps", r.dir, i)
		sc = append(sc,
			&scenario{Key: scWarmEcho + key, Label: "procref warm, echo backend (tcp)" + label, argv: echoTCP(warmStamp), dir: ws("warm-echo" + wsSuffix), echo: true, stamp: warmStamp, warm: true},
			&scenario{Key: scWarmGopls + key, Label: "procref warm, gopls serve -listen (tcp)" + label, argv: goplsTCP, dir: ws("warm" + wsSuffix), warm: true},
		)
		if i == 0 {
			sc = append(sc,
				&scenario{Key: scAutoWarm, Label: "gopls -remote=auto, warm daemon", argv: auto, dir: ws("auto"), warm: true},
				&scenario{Key: scDirect, Label: "gopls direct (stdio, new process)", argv: []string{r.gopls}, dir: ws("direct")},
				&scenario{Key: scDirectOver, Label: "gopls direct, started while the previous one exits", argv: []string{r.gopls}, dir: ws("direct-overlap"), overlap: true},
			)
		}
		sc = append(sc,
			&scenario{Key: scColdGopls + key, Label: "procref cold, gopls serve -listen (tcp)" + label, argv: goplsTCP, dir: ws("cold" + wsSuffix), cold: true},
			&scenario{Key: scColdMux + key, Label: "procref cold, gopls on stdio (mux mode)" + label, argv: []string{b.path, "--", r.gopls}, dir: ws("cold-mux" + wsSuffix), cold: true},
			&scenario{Key: scReopenMux + key, Label: "procref reopen right after the last window closed, gopls on stdio (mux mode)" + label, argv: []string{b.path, "--", r.gopls}, dir: ws("reopen-mux" + wsSuffix), reopen: true},
			&scenario{Key: scColdEcho + key, Label: "procref cold, echo backend (tcp)" + label, argv: echoTCP(coldStamp), dir: ws("cold-echo" + wsSuffix), echo: true, stamp: coldStamp, cold: true},
			&scenario{Key: scExecFloor + key, Label: "`procref version`" + label, argv: []string{b.path, "version"}, dir: r.dir, plain: true},
		)
		for _, s := range sc[first:] {
			if s.Key != scAutoWarm && s.Key != scDirect && s.Key != scDirectOver {
				s.Build = b.name
			}
		}
	}
	for _, f := range floors {
		sc = append(sc, &scenario{Key: "floor-" + f, Label: "`" + filepath.Base(f) + "` (no arguments)", argv: []string{f}, dir: r.dir, plain: true})
	}
	if wsErr != nil {
		return nil, wsErr
	}
	res := &attachResults{Reps: n, Scenarios: sc, RSS: map[string]uint64{}, KeeperRC: map[string]int{}, byKey: map[string]*scenario{}}
	for _, s := range sc {
		res.byKey[s.Key] = s
	}

	// Keepers: one attached client per warm scenario, so the service is up
	// (like another editor window) for the whole run.
	keepers := map[string]*child{}
	for _, s := range sc {
		if !s.warm {
			continue
		}
		c, err := r.startChild("keeper-"+s.Key, s.dir, s.argv...)
		if err != nil {
			return nil, err
		}
		if err := c.send(initializeBody(s.dir)); err != nil {
			return nil, err
		}
		if _, err := c.await(1, s.echo, attachTimout); err != nil {
			return nil, fmt.Errorf("keeper for %s: %w", s.Label, err)
		}
		keepers[s.Key] = c
	}
	// One unmeasured run of each scenario (page cache, gopls's file caches).
	for _, s := range sc {
		if _, err := r.attachOnce(s, "warmup-"+s.Key); err != nil {
			return nil, fmt.Errorf("warm-up of %s: %w", s.Label, err)
		}
	}
	for i := 0; i < n; i++ {
		for _, s := range sc {
			smp, err := r.attachOnce(s, s.Key)
			if err != nil {
				return nil, fmt.Errorf("%s, repetition %d: %w", s.Label, i+1, err)
			}
			s.Samples = append(s.Samples, smp)
		}
		fmt.Fprintf(os.Stderr, "attach: repetition %d/%d done\n", i+1, n)
	}

	// RSS of the long-lived processes while attached.
	rss := func(key string, pid int) {
		if v, err := platform.RSS(pid); err == nil {
			res.RSS[key] = v
		}
	}
	rss("procref proxy (gopls tcp, attached)", keepers[scWarmGopls].cmd.Process.Pid)
	rss("procref proxy (echo tcp, attached)", keepers[scWarmEcho].cmd.Process.Pid)
	rss("gopls -remote=auto forwarder (attached)", keepers[scAutoWarm].cmd.Process.Pid)
	for _, h := range r.hints() {
		label := "procref host (echo)"
		if len(h.Command) > 0 && filepath.Base(h.Command[0]) == filepath.Base(r.gopls) {
			label = "procref host (gopls)"
		}
		// Workspaces of compared builds end in "-NAME" (see ws above).
		for _, b := range builds[1:] {
			if strings.HasSuffix(h.Root, "-"+b.name) {
				label += " [" + b.name + "]"
			}
		}
		rss(label, h.Host.PID)
	}
	for _, pid := range goplsDaemons(r.xdg) {
		rss("gopls daemon (for comparison)", pid)
	}
	for key, c := range keepers {
		code, err := c.quit(res.byKey[key].echo, quitTimeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "procbench: keeper %s: %v\n", key, err)
		}
		res.KeeperRC[key] = code
	}
	return res, nil
}

// attachOnce execs s's client, sends initialize, waits for the answer, then
// quits cleanly. For a cold scenario it checks that a new service appeared
// and waits until it is entirely gone again.
func (r *rig) attachOnce(s *scenario, name string) (attachSample, error) {
	var smp attachSample
	before := 0
	if s.stamp != "" {
		before = len(stampLines(s.stamp))
	}
	var pre map[string]*discovery.Hint
	if s.cold {
		pre = r.hints()
	}
	var prev *discovery.Hint // the reopen scenario's first window's service
	if s.reopen {
		var err error
		if prev, err = r.openAndClose(s, name+"-prev"); err != nil {
			return smp, err
		}
	}
	if s.overlap {
		prev, err := r.startChild(name+"-prev", s.dir, s.argv...)
		if err != nil {
			return smp, err
		}
		defer prev.wait(quitTimeout)
		if err := prev.send(initializeBody(s.dir)); err != nil {
			return smp, err
		}
		if _, err := prev.await(1, s.echo, attachTimout); err != nil {
			return smp, err
		}
		if err := settleWindow(prev, s.dir); err != nil {
			return smp, err
		}
		// As the draining host does to its server: shutdown, exit once it
		// is answered, stdin closed; the measured start does not wait for
		// any of it (in the reopen scenario the new window arrives as the
		// old host begins its drain).
		if err := prev.send([]byte(`{"jsonrpc":"2.0","id":2,"method":"shutdown"}`)); err != nil {
			return smp, err
		}
		left := make(chan error, 1)
		go func() { left <- prev.leaveAfter(s.echo, quitTimeout) }()
		defer func() {
			if err := <-left; err != nil {
				fmt.Fprintf(os.Stderr, "procbench: %s: previous server: %v\n", s.Label, err)
			}
		}()
	}
	c, err := r.startChild(name, s.dir, s.argv...)
	if err != nil {
		return smp, err
	}
	defer c.kill()
	if s.plain {
		io.Copy(io.Discard, c.out)
		smp.FirstOut = c.out.at.Sub(c.start)
		smp.Exit, err = c.wait(quitTimeout)
		smp.Exited = time.Since(c.start)
		return smp, err
	}
	if err := c.send(initializeBody(s.dir)); err != nil {
		return smp, err
	}
	at, err := c.await(1, s.echo, attachTimout)
	if err != nil {
		return smp, err
	}
	smp.Init = at.Sub(c.start)
	smp.FirstOut = c.out.at.Sub(c.start)
	if s.stamp != "" {
		lines := stampLines(s.stamp)
		if len(lines) != before+1 {
			return smp, fmt.Errorf("echo backend stamped %d new connections, want 1", len(lines)-before)
		}
		ns, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		if err != nil {
			return smp, fmt.Errorf("bad stamp %q", lines[len(lines)-1])
		}
		smp.AtBackend = time.Unix(0, ns).Sub(c.start)
	}
	var svc *discovery.Hint
	if s.cold {
		for n, h := range r.hints() {
			if pre[n] == nil {
				svc = h
			}
		}
		if svc == nil {
			return smp, fmt.Errorf("cold run attached without starting a new service (was the previous one still up?)")
		}
	}
	code, err := c.quit(s.echo, quitTimeout)
	smp.Exit = code
	if err != nil {
		return smp, err
	}
	if s.reopen {
		// Both the draining service and the one the measured window
		// started (or joined) must be gone before the next scenario.
		for _, h := range r.hints() {
			if h.Root == prev.Root {
				svc = h
			}
		}
		if err := r.waitServiceGone(prev, 15*time.Second); err != nil {
			return smp, err
		}
	}
	if svc != nil {
		if err := r.waitServiceGone(svc, 15*time.Second); err != nil {
			return smp, err
		}
	}
	return smp, nil
}

// prevWindowLife is how long the window before a reopen (or before the
// overlap floor's start) stays open after initialized: long enough for
// gopls to load the workspace it was told about, as for any real window,
// so that its shutdown is that of an idle server, not an interrupted load.
const prevWindowLife = time.Second

// settleWindow sends initialized, as an editor does, asks for a hover in
// the fixture's main.go (answered once the workspace is loaded) and keeps
// the window open for the rest of prevWindowLife. While it waits for the
// hover it answers the server's requests, as an editor does: gopls asks for
// workspace/configuration before it loads anything, and a window that left
// that unanswered kept the old gopls waiting, to load the workspace only
// when the quit's reader answered it, beside the measured start.
func settleWindow(c *child, dir string) error {
	begin := time.Now()
	c.send([]byte(`{"jsonrpc":"2.0","method":"initialized","params":{}}`))
	hover, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover",
		"params": map[string]any{"textDocument": map[string]any{"uri": fileURI(filepath.Join(dir, "main.go"))},
			"position": map[string]any{"line": 5, "character": 13}}})
	if err := c.send(hover); err != nil {
		return err
	}
	if _, err := c.await(3, false, attachTimout); err != nil {
		return err
	}
	time.Sleep(prevWindowLife - time.Since(begin))
	return nil
}

// openAndClose runs one unmeasured window of s: exec, initialize, clean
// quit. It returns the hint of the service the window used, read while it
// was attached.
func (r *rig) openAndClose(s *scenario, name string) (*discovery.Hint, error) {
	c, err := r.startChild(name, s.dir, s.argv...)
	if err != nil {
		return nil, err
	}
	defer c.kill()
	if err := c.send(initializeBody(s.dir)); err != nil {
		return nil, err
	}
	if _, err := c.await(1, s.echo, attachTimout); err != nil {
		return nil, err
	}
	if err := settleWindow(c, s.dir); err != nil {
		return nil, err
	}
	var svc *discovery.Hint
	for _, h := range r.hints() {
		if h.Root == s.dir || svc == nil {
			svc = h
		}
	}
	if svc == nil {
		return nil, fmt.Errorf("%s: attached but no service is listed", s.Label)
	}
	if _, err := c.quit(s.echo, quitTimeout); err != nil {
		return nil, err
	}
	return svc, nil
}

func stampLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}
