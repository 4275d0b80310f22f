package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/platform"
)

// Relay measurement sizes.
const (
	rttRounds    = 5    // interleaved blocks per path
	rttPerRound  = 2000 // round trips per block
	rttWarmup    = 200
	streamTimout = 2 * time.Minute
)

// tputReps is how many interleaved repetitions each throughput case gets
// (-reps).
var tputReps = 5

// tputCase is one message size and how many messages one repetition streams.
type tputCase struct {
	Label string
	Size  int
	Count int
}

var tputCases = []tputCase{
	{"1 KiB", 1 << 10, 16384},  // 16 MiB a repetition
	{"64 KiB", 64 << 10, 1024}, // 64 MiB
	{"16 MiB", 16 << 20, 16},   // 256 MiB
}

// relayResults are the latency, throughput and RSS numbers.
type relayResults struct {
	Paths  []string                   `json:"paths"`  // path names, in table order
	Labels map[string]string          `json:"labels"` // path name → label
	RTT    map[string][]time.Duration `json:"rtt_ns,omitempty"`
	// Tput is message size → path → samples (bytes per second).
	Tput map[string]map[string][]float64 `json:"throughput_bytes_per_s,omitempty"`
	RSS  map[string]uint64               `json:"rss_bytes,omitempty"`
	// CPU is each procref proxy's CPU time (user+system) after the runs:
	// every proxy relayed the same messages.
	CPU       map[string]float64 `json:"cpu_seconds,omitempty"`
	ProxyExit int                `json:"proxy_exit"`
}

// path is one way of reaching the echo backend: a writer and a frame reader.
type path struct {
	name, label string
	w           io.Writer
	fr          *frameReader
	abort       func() // unblocks a stuck read/write (closes or kills)
}

// Path names.
const (
	pathDirect = "direct"
	pathProxy  = "proxy"
)

// referenceRelays are `procbench relay` variants measured next to procref:
// the same stdio⇄TCP hop with nothing else, and candidate fixes.
var referenceRelays = []struct {
	name, label string
	args        []string
}{
	{"relay-copy", "reference relay: io.Copy both ways (Go's poller)", nil},
	{"relay-threads", "reference relay: blocking read/write on locked OS threads", []string{"-threads"}},
	{"relay-pipe", "reference relay: io.Copy + 1 MiB pipes (F_SETPIPE_SZ)", []string{"-pipe-size=1048576"}},
	{"relay-threads-pipe", "reference relay: threads + 1 MiB pipes", []string{"-threads", "-pipe-size=1048576"}},
}

// relaySetup is one proxy attached to an echo service, a direct connection
// to the same backend, and optional reference relays to it.
type relaySetup struct {
	proxy  *child
	addr   string // the echo backend
	conn   net.Conn
	paths  []*path
	relays []*child
	svc    string // service name
	dir    string // the workspace root the proxy attached with
}

// setupRelay attaches a proxy to a new echo service and dials the backend
// directly. close ends both (the proxy with a clean quit).
func (r *rig) setupRelay() (*relaySetup, error) {
	dir, err := r.fixture("relay")
	if err != nil {
		return nil, err
	}
	pre := r.hints()
	c, err := r.startChild("relay-proxy", dir, r.procref, "--", r.self, "echo-server", "-listen=127.0.0.1:{port}")
	if err != nil {
		return nil, err
	}
	s := &relaySetup{proxy: c, dir: dir}
	if err := c.send(initializeBody(dir)); err != nil {
		c.kill()
		return nil, err
	}
	if _, err := c.await(1, true, attachTimout); err != nil {
		c.kill()
		return nil, err
	}
	port := 0
	for n, h := range r.hints() {
		if pre[n] == nil {
			_, port = hintInfo(h)
			s.svc = n
		}
	}
	if port == 0 {
		c.kill()
		return nil, errors.New("cannot find the echo backend's port in the hint")
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		c.kill()
		return nil, fmt.Errorf("dialing the echo backend directly: %w", err)
	}
	s.conn = conn
	s.paths = []*path{
		{name: pathDirect, label: "direct TCP to the echo backend", w: conn, fr: newFrameReader(conn), abort: func() { conn.Close() }},
		{name: pathProxy, label: "**procref proxy** (stdio ⇄ tcp)", w: lockedWriter{c}, fr: c.fr, abort: c.kill},
	}
	return s, nil
}

// addRelay starts a relay command to the echo backend as another path.
func (s *relaySetup) addRelay(r *rig, name, label string, argv []string) error {
	rc, err := r.startChild(name, s.dir, argv...)
	if err != nil {
		return err
	}
	s.relays = append(s.relays, rc)
	s.paths = append(s.paths, &path{name: name, label: label, w: lockedWriter{rc}, fr: rc.fr, abort: rc.kill})
	return nil
}

// path returns the path called name.
func (s *relaySetup) path(name string) *path {
	for _, p := range s.paths {
		if p.name == name {
			return p
		}
	}
	return nil
}

// close ends the relays and the direct connection, and quits the proxy
// cleanly; it returns the proxy's exit code.
func (s *relaySetup) close() (int, error) {
	for _, rc := range s.relays {
		rc.inMu.Lock()
		rc.in.Close()
		rc.inMu.Unlock()
		rc.wait(quitTimeout)
	}
	s.conn.Close()
	return s.proxy.quit(true, quitTimeout)
}

// benchRelay attaches one proxy to an echo service and compares it with a
// direct TCP connection to the same backend (and, with refs, with the
// reference relays; extra are more relay commands, {addr} replaced).
func (r *rig) benchRelay(res *results, parts map[string]bool, refs bool, extra []string, builds []build) error {
	s, err := r.setupRelay()
	if err != nil {
		return err
	}
	defer s.proxy.kill()
	if err := s.addPaths(r, refs, extra, builds); err != nil {
		return err
	}
	paths, c := s.paths, s.proxy

	rr := &relayResults{Labels: map[string]string{}, RTT: map[string][]time.Duration{}, RSS: map[string]uint64{}}
	for _, p := range paths {
		rr.Paths = append(rr.Paths, p.name)
		rr.Labels[p.name] = p.label
	}
	res.Relay = rr
	pid := c.cmd.Process.Pid
	if v, err := platform.RSS(pid); err == nil {
		rr.RSS["procref proxy (echo tcp), attached, idle"] = v
	}

	if parts["held"] {
		if err := holdRequest(paths); err != nil {
			return err
		}
	}
	if parts["latency"] {
		msg := appendFrame(nil, []byte(`{"jsonrpc":"2.0","id":7,"method":"$/procbench/echo","params":{"text":"hello"}}`))
		for _, p := range paths {
			if _, err := pingPong(p, msg, rttWarmup); err != nil {
				return err
			}
		}
		for i := 0; i < rttRounds; i++ {
			for _, p := range paths {
				d, err := pingPong(p, msg, rttPerRound)
				if err != nil {
					return err
				}
				rr.RTT[p.name] = append(rr.RTT[p.name], d...)
			}
		}
		fmt.Fprintln(os.Stderr, "latency: done")
	}
	if parts["throughput"] {
		rr.Tput = map[string]map[string][]float64{}
		for _, tc := range tputCases {
			frame := benchFrame(tc.Size)
			rr.Tput[tc.Label] = map[string][]float64{}
			for i := 0; i < tputReps; i++ {
				for _, p := range paths {
					bps, err := stream(p, frame, tc.Size, tc.Count)
					if err != nil {
						return fmt.Errorf("%s %s: %w", tc.Label, p.name, err)
					}
					rr.Tput[tc.Label][p.name] = append(rr.Tput[tc.Label][p.name], bps)
				}
			}
			fmt.Fprintf(os.Stderr, "throughput: %s done\n", tc.Label)
		}
	}
	if v, err := platform.RSS(pid); err == nil {
		rr.RSS["procref proxy (echo tcp), attached, after the relay runs"] = v
	}
	if v, err := peakRSS(pid); err == nil {
		rr.RSS["procref proxy (echo tcp), peak (VmHWM) after the relay runs"] = v
	}
	s.measureProxies(rr, builds)
	if h, ok := r.hints()[s.svc]; ok {
		if v, err := platform.RSS(h.Host.PID); err == nil {
			rr.RSS["procref host (echo), after the relay runs"] = v
		}
	}
	code, err := s.close()
	rr.ProxyExit = code
	return err
}

// addPaths adds the other procref builds' proxies, the reference relays
// (with refs) and the extra relay commands ({addr} replaced) as paths.
func (s *relaySetup) addPaths(r *rig, refs bool, extra []string, builds []build) error {
	// Other procref builds: their proxies, started with the same command in
	// the same root (each build gets its own host and echo backend: the
	// service key includes procref's executable).
	for _, b := range builds {
		if b.name == "" {
			continue
		}
		argv := []string{b.path, "--", r.self, "echo-server", "-listen=127.0.0.1:{port}"}
		if err := s.addRelay(r, "proxy@"+b.name, "procref proxy ["+b.name+"]", argv); err != nil {
			return err
		}
		c := s.relays[len(s.relays)-1]
		if err := c.send(initializeBody(s.dir)); err != nil {
			return err
		}
		if _, err := c.await(1, true, attachTimout); err != nil {
			return fmt.Errorf("proxy [%s]: %w", b.name, err)
		}
	}
	if refs {
		for _, rl := range referenceRelays {
			argv := append([]string{r.self, "relay", "-connect=" + s.addr}, rl.args...)
			if err := s.addRelay(r, rl.name, rl.label, argv); err != nil {
				return err
			}
		}
	}
	for i, tmpl := range extra {
		argv := strings.Fields(strings.ReplaceAll(tmpl, "{addr}", s.addr))
		if err := s.addRelay(r, fmt.Sprintf("extra-%d", i+1), "other relay: `"+tmpl+"`", argv); err != nil {
			return err
		}
	}
	return nil
}

// holdRequest sends, on each path, a request the echo backend sends back
// as a request (it has a method): a tcp-mode proxy keeps it pending for
// the whole run, so every message goes through the in-flight tracking
// (headers and the ends of large bodies read, the middles spliced), as
// while an editor waits for an answer. Without it nothing is pending
// during throughput and bodies are spliced whole.
func holdRequest(paths []*path) error {
	msg := appendFrame(nil, []byte(`{"jsonrpc":"2.0","id":"procbench-held","method":"$/procbench/held"}`))
	for _, p := range paths {
		if _, err := pingPong(p, msg, 1); err != nil {
			return err
		}
	}
	return nil
}

// measureProxies records the CPU time of every procref proxy and the
// peak RSS of the -compare builds' (the first relays).
func (s *relaySetup) measureProxies(rr *relayResults, builds []build) {
	rr.CPU = map[string]float64{}
	if v, err := cpuSeconds(s.proxy.cmd.Process.Pid); err == nil {
		rr.CPU["procref proxy"] = v
	}
	for i, b := range builds[1:] {
		pid := s.relays[i].cmd.Process.Pid
		if v, err := peakRSS(pid); err == nil {
			rr.RSS["procref proxy ["+b.name+"] (echo tcp), peak (VmHWM) after the relay runs"] = v
		}
		if v, err := cpuSeconds(pid); err == nil {
			rr.CPU["procref proxy ["+b.name+"]"] = v
		}
	}
}

// lockedWriter writes through the child's stdin lock.
type lockedWriter struct{ c *child }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.c.inMu.Lock()
	defer l.c.inMu.Unlock()
	return l.c.in.Write(p)
}

// pingPong sends msg and reads one message back, n times, and returns each
// round trip.
func pingPong(p *path, msg []byte, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	t := time.AfterFunc(streamTimout, p.abort)
	defer t.Stop()
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := p.w.Write(msg); err != nil {
			return nil, fmt.Errorf("%s: write: %w", p.name, err)
		}
		if _, err := p.fr.skip(); err != nil {
			return nil, fmt.Errorf("%s: read: %w", p.name, err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// benchFrame returns one framed JSON-RPC notification whose body is exactly
// size bytes.
func benchFrame(size int) []byte {
	const head, tail = `{"jsonrpc":"2.0","method":"$/procbench/data","params":"`, `"}`
	body := make([]byte, 0, size)
	body = append(body, head...)
	body = append(body, strings.Repeat("x", size-len(head)-len(tail))...)
	body = append(body, tail...)
	return appendFrame(nil, body)
}

// stream writes count copies of frame while reading the echoes, and returns
// the rate in framed bytes per second (each byte travels there and back).
func stream(p *path, frame []byte, bodySize, count int) (float64, error) {
	t := time.AfterFunc(streamTimout, p.abort)
	defer t.Stop()
	werr := make(chan error, 1)
	start := time.Now()
	go func() {
		for i := 0; i < count; i++ {
			if _, err := p.w.Write(frame); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	total := 0
	for i := 0; i < count; i++ {
		n, err := p.fr.skip()
		if err != nil {
			<-werr
			return 0, fmt.Errorf("%s: read: %w", p.name, err)
		}
		total += n
	}
	elapsed := time.Since(start)
	if err := <-werr; err != nil {
		return 0, fmt.Errorf("%s: write: %w", p.name, err)
	}
	if want := count * bodySize; total != want {
		return 0, fmt.Errorf("%s: echoed %d body bytes, want %d", p.name, total, want)
	}
	return float64(len(frame)*count) / elapsed.Seconds(), nil
}
