package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/procref/procref/internal/wire"
)

// lspEchoMain is `procbench lsp-echo`: a stdio LSP server that answers every
// request with its params as the result (shutdown with null) and exits on
// `exit` or end of input. It is the mux-mode backend and, run directly, the
// mux benchmark's baseline, so it must cost next to nothing next to the
// pipes: it never decodes a message. It finds the top-level id, method and
// params with wire.ScanTrusted (strings are skipped with IndexByte),
// reads every body into one reused buffer, and when params is the last
// member (as editors and procbench write it) builds the answer's header and
// `{"jsonrpc":"2.0","id":ID,"result":` in place just before the params, so
// a 16 MiB answer leaves with one write and no copy.
func lspEchoMain(args []string) int {
	in := newFrameReader(bufio.NewReaderSize(os.Stdin, 1<<20))
	// slack in front of every body: room for the answer's header and
	// prefix when they do not fit inside the request's own bytes
	const slack = 128
	var buf, head, out []byte
	for {
		n, err := in.header()
		if err != nil {
			return 0
		}
		if cap(buf) < slack+n {
			buf = make([]byte, slack+n)
		}
		buf = buf[:slack+n]
		body := buf[slack:]
		if _, err := io.ReadFull(in.br, body); err != nil {
			return 0
		}
		f, err := wire.ScanTrusted(body)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lsp-echo: %v\n", err)
			return 1
		}
		method := f.MethodName()
		if method == "exit" {
			return 0
		}
		if !f.ID.Ok() || method == "" {
			continue
		}
		head = append(head[:0], `{"jsonrpc":"2.0","id":`...)
		head = append(head, f.ID.Of(body)...)
		head = append(head, `,"result":`...)
		var frame []byte
		switch {
		case method == "shutdown" || !f.Params.Ok():
			out = appendFrame(out[:0], append(head, `null}`...))
			frame = out
		case isLastMember(body, f.Params):
			// answer = head + body[params:] ("params ... }"), built in
			// place: the bytes before params are no longer needed
			tail := len(body) - f.Params.Start
			var hb [40]byte
			h := wire.AppendHeader(hb[:0], len(head)+tail)
			at := slack + f.Params.Start - len(head) - len(h)
			if at >= 0 {
				copy(buf[at:], h)
				copy(buf[at+len(h):], head)
				frame = buf[at:]
				break
			}
			fallthrough
		default:
			out = append(out[:0], head...)
			out = append(out, f.Params.Of(body)...)
			out = appendFrame(nil, append(out, '}'))
			frame = out
		}
		if _, err := os.Stdout.Write(frame); err != nil {
			return 1
		}
	}
}

// isLastMember reports whether only whitespace and the closing brace
// follow the value at sp in body.
func isLastMember(body []byte, sp wire.Span) bool {
	for _, c := range body[sp.End:] {
		switch c {
		case ' ', '\t', '\r', '\n', '}':
		default:
			return false
		}
	}
	return true
}

// muxResults are the mux-mode round trips and throughput.
type muxResults struct {
	Refs []string                        `json:"reference_paths"` // reference relays measured, in order
	RTT  map[string][]time.Duration      `json:"rtt_ns"`
	Tput map[string]map[string][]float64 `json:"throughput_bytes_per_s"`
	Exit int                             `json:"proxy_exit"`
}

// idFrame is a framed request whose id (10 digits) is patched in place
// before each write; the writer is the only user while it is written.
type idFrame struct {
	b   []byte
	off int // offset of the id digits
}

func newIDFrame(params string) *idFrame {
	const head = `{"jsonrpc":"2.0","id":1000000000,"method":"procbench/echo","params":`
	body := head + params + "}"
	b := appendFrame(nil, []byte(body))
	off := len(b) - len(body) + len(`{"jsonrpc":"2.0","id":`)
	return &idFrame{b: b, off: off}
}

func (f *idFrame) next(id int) []byte {
	copy(f.b[f.off:f.off+10], fmt.Sprintf("%010d", 1000000000+id%1000000000))
	return f.b
}

// benchMux measures round trips and throughput through `procref -- procbench
// lsp-echo` (mux mode) vs the same server run directly over stdio. With
// refs, plain Go relay processes (`procbench relay -exec`: io.Copy, and
// with -poll one poll(2) loop) in front of the same server are measured too, and so is every relays command (the server's
// argv appended): what one process hop costs with no routing at all.
func (r *rig) benchMux(refs bool, relays []string) (*muxResults, error) {
	dir, err := r.fixture("mux")
	if err != nil {
		return nil, err
	}
	direct, err := r.startChild("mux-direct", dir, r.self, "lsp-echo")
	if err != nil {
		return nil, err
	}
	defer direct.kill()
	proxy, err := r.startChild("mux-proxy", dir, r.procref, "--", r.self, "lsp-echo")
	if err != nil {
		return nil, err
	}
	defer proxy.kill()
	type ref struct {
		name string
		argv []string
	}
	var refList []ref
	if refs {
		refList = append(refList, ref{"Go relay (io.Copy)", []string{r.self, "relay", "-exec", "--"}})
		if runtime.GOOS == "linux" {
			refList = append(refList, ref{"Go relay (poll loop)", []string{r.self, "relay", "-exec", "-poll", "--"}})
		}
	}
	for _, rc := range relays {
		argv := strings.Fields(rc)
		refList = append(refList, ref{filepath.Base(argv[0]) + " relay", argv})
	}
	children := []*child{direct, proxy}
	mr := &muxResults{RTT: map[string][]time.Duration{}, Tput: map[string]map[string][]float64{}}
	for _, rf := range refList {
		c, err := r.startChild("mux-"+rf.name, dir, append(rf.argv, r.self, "lsp-echo")...)
		if err != nil {
			return nil, err
		}
		defer c.kill()
		children = append(children, c)
		mr.Refs = append(mr.Refs, rf.name)
	}
	for _, c := range children {
		if err := c.send(initializeBody(dir)); err != nil {
			return nil, err
		}
		// The mux refuses anything before the initialize result.
		if _, err := c.await(1, false, attachTimout); err != nil {
			return nil, err
		}
		if err := c.send([]byte(`{"jsonrpc":"2.0","method":"initialized","params":{}}`)); err != nil {
			return nil, err
		}
	}
	paths := []*path{
		{name: "direct", w: lockedWriter{direct}, fr: direct.fr, abort: direct.kill},
		{name: "mux", w: lockedWriter{proxy}, fr: proxy.fr, abort: proxy.kill},
	}
	for i, c := range children[2:] {
		paths = append(paths, &path{name: mr.Refs[i], w: lockedWriter{c}, fr: c.fr, abort: c.kill})
	}
	ping := newIDFrame(`{"text":"hello"}`)
	id := 10
	for _, p := range paths {
		if _, err := muxPingPong(p, ping, &id, rttWarmup); err != nil {
			return nil, err
		}
	}
	for i := 0; i < rttRounds; i++ {
		for _, p := range paths {
			d, err := muxPingPong(p, ping, &id, rttPerRound)
			if err != nil {
				return nil, err
			}
			mr.RTT[p.name] = append(mr.RTT[p.name], d...)
		}
	}
	fmt.Fprintln(os.Stderr, "mux latency: done")
	for _, tc := range tputCases {
		const head, tail = `{"d":"`, `"}`
		f := newIDFrame(head + repeatX(tc.Size-len(head)-len(tail)) + tail)
		mr.Tput[tc.Label] = map[string][]float64{}
		for i := 0; i < tputReps; i++ {
			for _, p := range paths {
				bps, err := muxStream(p, f, &id, tc.Size, tc.Count)
				if err != nil {
					return nil, fmt.Errorf("mux %s %s: %w", tc.Label, p.name, err)
				}
				mr.Tput[tc.Label][p.name] = append(mr.Tput[tc.Label][p.name], bps)
			}
		}
		fmt.Fprintf(os.Stderr, "mux throughput: %s done\n", tc.Label)
	}
	if mr.Exit, err = proxy.quit(false, quitTimeout); err != nil {
		return mr, err
	}
	for _, c := range children[2:] {
		c.quit(false, quitTimeout)
	}
	direct.quit(false, quitTimeout)
	return mr, nil
}

func repeatX(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'x'
	}
	return string(b)
}

func muxPingPong(p *path, f *idFrame, id *int, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	t := time.AfterFunc(streamTimout, p.abort)
	defer t.Stop()
	for i := 0; i < n; i++ {
		*id++
		start := time.Now()
		if _, err := p.w.Write(f.next(*id)); err != nil {
			return nil, fmt.Errorf("%s: write: %w", p.name, err)
		}
		if _, err := p.fr.skip(); err != nil {
			return nil, fmt.Errorf("%s: read: %w", p.name, err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// muxStream writes count requests while reading the answers and returns
// framed request bytes per second (each byte travels there and back).
func muxStream(p *path, f *idFrame, id *int, size, count int) (float64, error) {
	t := time.AfterFunc(streamTimout, p.abort)
	defer t.Stop()
	base := *id
	*id += count
	werr := make(chan error, 1)
	start := time.Now()
	go func() {
		for i := 1; i <= count; i++ {
			if _, err := p.w.Write(f.next(base + i)); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	for i := 0; i < count; i++ {
		n, err := p.fr.skip()
		if err != nil {
			<-werr
			return 0, fmt.Errorf("%s: read: %w", p.name, err)
		}
		if n < size {
			<-werr
			return 0, fmt.Errorf("%s: answer of %d bytes, want at least %d (an error instead of the echo?)", p.name, n, size)
		}
	}
	elapsed := time.Since(start)
	if err := <-werr; err != nil {
		return 0, fmt.Errorf("%s: write: %w", p.name, err)
	}
	return float64(len(f.b)*count) / elapsed.Seconds(), nil
}

// print writes the mux tables and goals.
func (m *muxResults) print(w io.Writer) {
	fmt.Fprintln(w, "### Mux mode: `procref -- procbench lsp-echo` vs the same server on stdio")
	fmt.Fprintln(w)
	names := append([]string{"direct", "mux"}, m.Refs...)
	fmt.Fprintln(w, "| path | p50 | p90 | p99 | added p50 | added p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	d50, d99 := percentile(m.RTT["direct"], 50), percentile(m.RTT["direct"], 99)
	for _, n := range names {
		d := m.RTT[n]
		added := "–"
		added99 := "–"
		if n != "direct" {
			added, added99 = us(percentile(d, 50)-d50), us(percentile(d, 99)-d99)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", n, us(percentile(d, 50)), us(percentile(d, 90)), us(percentile(d, 99)), added, added99)
	}
	a50 := percentile(m.RTT["mux"], 50) - d50
	a99 := percentile(m.RTT["mux"], 99) - d99
	fmt.Fprintf(w, "\nAdded by the mux: p50 %s, p99 %s\n\n", us(a50), us(a99))
	fmt.Fprintln(w, "| size | "+strings.Join(names, " | ")+" |")
	fmt.Fprintln(w, "|---"+strings.Repeat("|---", len(names))+"|")
	for _, tc := range tputCases {
		row := "| " + tc.Label
		for _, n := range names {
			row += " | " + mbps(medianF(m.Tput[tc.Label][n]))
		}
		fmt.Fprintln(w, row+" |")
	}
	big := medianF(m.Tput["16 MiB"]["mux"])
	fmt.Fprintf(w, "\nGoals: added p50 ≤ 60 µs: %s; ≥ 300 MB/s at 16 MiB: %s. Proxy exit code after a clean quit: %d\n",
		yes(a50 <= 60*time.Microsecond), yes(big >= 300e6), m.Exit)
}
