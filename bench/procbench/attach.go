package main

import (
	"fmt"
	"io"
	"os"
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
}

// scenario is one attach scenario and its samples.
type scenario struct {
	Key     string         `json:"key"`
	Label   string         `json:"label"`
	Samples []attachSample `json:"samples"`

	argv  []string
	dir   string
	echo  bool   // the backend echoes (no LSP server)
	stamp string // echo backend's first-byte stamp file
	cold  bool   // a procref cold start: a new service must appear and go
	plain bool   // not LSP: exec, read stdout to EOF, wait (the exec floor)
}

// Scenario keys.
const (
	scWarmEcho   = "procref-warm-echo"
	scWarmGopls  = "procref-warm-gopls"
	scAutoWarm   = "gopls-remote-auto-warm"
	scDirect     = "gopls-direct"
	scColdGopls  = "procref-cold-gopls"
	scColdEcho   = "procref-cold-echo"
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

// benchAttach runs every attach scenario n times, interleaved.
func (r *rig) benchAttach(n int) (*attachResults, error) {
	ws := map[string]string{}
	for _, name := range []string{"warm", "warm-echo", "auto", "direct", "cold", "cold-echo"} {
		dir, err := r.fixture(name)
		if err != nil {
			return nil, err
		}
		ws[name] = dir
	}
	goplsTCP := func() []string {
		return []string{r.procref, "--", r.gopls, "serve", "-listen=127.0.0.1:{port}"}
	}
	echoTCP := func(stamp string) []string {
		return []string{r.procref, "--", r.self, "echo-server", "-listen=127.0.0.1:{port}", "-stamp=" + stamp}
	}
	// The daemon's idle timeout is short so that it exits by itself even
	// where cleanup cannot find it by command line (not Linux).
	auto := []string{r.gopls, "-remote=auto", "-remote.listen.timeout=20s"}
	warmStamp := r.dir + "/warm.stamps"
	coldStamp := r.dir + "/cold.stamps"

	sc := []*scenario{
		{Key: scWarmEcho, Label: "procref warm, echo backend (tcp)", argv: echoTCP(warmStamp), dir: ws["warm-echo"], echo: true, stamp: warmStamp},
		{Key: scWarmGopls, Label: "procref warm, gopls serve -listen (tcp)", argv: goplsTCP(), dir: ws["warm"]},
		{Key: scAutoWarm, Label: "gopls -remote=auto, warm daemon", argv: auto, dir: ws["auto"]},
		{Key: scDirect, Label: "gopls direct (stdio, new process)", argv: []string{r.gopls}, dir: ws["direct"]},
		{Key: scColdGopls, Label: "procref cold, gopls serve -listen (tcp)", argv: goplsTCP(), dir: ws["cold"], cold: true},
		{Key: scColdEcho, Label: "procref cold, echo backend (tcp)", argv: echoTCP(coldStamp), dir: ws["cold-echo"], echo: true, stamp: coldStamp, cold: true},
		{Key: scExecFloor, Label: "floor: `procref version` (process start, no attach)", argv: []string{r.procref, "version"}, dir: r.dir, plain: true},
	}
	res := &attachResults{Reps: n, Scenarios: sc, RSS: map[string]uint64{}, KeeperRC: map[string]int{}, byKey: map[string]*scenario{}}
	for _, s := range sc {
		res.byKey[s.Key] = s
	}

	// Keepers: one attached client per warm scenario, so the service is up
	// (like another editor window) for the whole run.
	keepers := map[string]*child{}
	for _, s := range sc[:3] {
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
		if strings.Contains(strings.Join(h.Command, " "), "serve") {
			label = "procref host (gopls)"
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
	c, err := r.startChild(name, s.dir, s.argv...)
	if err != nil {
		return smp, err
	}
	defer c.kill()
	if s.plain {
		io.Copy(io.Discard, c.out)
		smp.FirstOut = c.out.at.Sub(c.start)
		smp.Exit, err = c.wait(quitTimeout)
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
	if svc != nil {
		if err := r.waitServiceGone(svc, 15*time.Second); err != nil {
			return smp, err
		}
	}
	return smp, nil
}

func stampLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}
