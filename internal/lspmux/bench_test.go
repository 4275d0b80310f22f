package lspmux

import (
	"context"
	"fmt"
	"github.com/procref/procref/internal/mux"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/procref/procref/internal/wire"
)

// echoServer is a lean server for benchmarks: it answers test/echo with
// its params (spliced, never decoded), initialize and shutdown, and
// optionally publishes diagnostics for every didOpen'd URI in a loop.
type echoServer struct {
	in      io.Reader
	out     io.WriteCloser
	wmu     sync.Mutex
	done    chan struct{}
	publish func(s *echoServer, uri string) // started on didOpen
}

func (s *echoServer) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return wire.Write(s.out, b)
}

func (s *echoServer) run() {
	defer close(s.done)
	defer s.out.Close()
	r := wire.NewReader(s.in, 1<<30)
	for {
		body, err := r.Read()
		if err != nil {
			return
		}
		f, err := wire.ScanTrusted(body)
		if err != nil {
			continue
		}
		switch f.MethodName() {
		case "test/echo":
			// {"jsonrpc":"2.0","id":ID,"result":PARAMS} from the request's
			// own bytes: everything but id and params replaced by edits
			// (msgRequest puts id before method before params, params last)
			s.wmu.Lock()
			wire.WriteEdited(s.out, body,
				wire.Edit{At: wire.Span{Start: 0, End: f.ID.Start}, With: []byte(`{"jsonrpc":"2.0","id":`)},
				wire.Edit{At: wire.Span{Start: f.ID.End, End: f.Params.Start}, With: []byte(`,"result":`)})
			s.wmu.Unlock()
			wire.Recycle(body)
		case "initialize":
			s.write(msgResult(f.ID.Of(body), []byte(defaultCaps)))
		case "shutdown":
			s.write(msgResult(f.ID.Of(body), nil))
		case "exit":
			return
		case "textDocument/didOpen":
			if s.publish != nil {
				sp, _, _ := wire.Lookup(f.Params.Of(body), "textDocument", "uri")
				uri, _ := wire.Unquote(sp.Of(f.Params.Of(body)))
				go s.publish(s, uri)
			}
		default:
			if f.Kind() == wire.Request {
				s.write(msgResult(f.ID.Of(body), nil))
			}
		}
	}
}

type echoBackend struct {
	s        *echoServer
	w        *io.PipeWriter
	r        *io.PipeReader
	inR      *io.PipeReader
	outW     *io.PipeWriter
	killOnce sync.Once
}

func newEchoBackend(publish func(*echoServer, string)) *echoBackend {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &echoServer{in: inR, out: outW, done: make(chan struct{}), publish: publish}
	go s.run()
	return &echoBackend{s: s, w: inW, r: outR, inR: inR, outW: outW}
}

func (b *echoBackend) Read(p []byte) (int, error)  { return b.r.Read(p) }
func (b *echoBackend) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b *echoBackend) Close() error                { b.w.Close(); b.r.CloseWithError(io.EOF); return nil }
func (b *echoBackend) Kill() error {
	b.killOnce.Do(func() { b.inR.CloseWithError(io.EOF); b.outW.CloseWithError(io.EOF) })
	return nil
}
func (b *echoBackend) Wait() error { <-b.s.done; return nil }

// benchClient is a lean synchronous client: one request at a time.
type benchClient struct {
	conn io.ReadWriteCloser
	r    *wire.Reader
	id   int
}

func newBenchClient(conn io.ReadWriteCloser) *benchClient {
	return &benchClient{conn: conn, r: wire.NewReader(conn, 1<<30)}
}

// call sends a request with raw params and waits for its answer, skipping
// anything else.
func (c *benchClient) call(method string, params []byte) ([]byte, error) {
	c.id++
	if err := wire.Write(c.conn, msgRequest(int64(c.id), method, params)); err != nil {
		return nil, err
	}
	want := strconv.Itoa(c.id)
	for {
		body, err := c.r.Read()
		if err != nil {
			return nil, err
		}
		f, err := wire.ScanTrusted(body)
		if err != nil {
			return nil, err
		}
		if f.Kind() == wire.Response && string(f.ID.Of(body)) == want {
			return body, nil
		}
		wire.Recycle(body)
	}
}

// benchMux starts a mux over an echo server and returns a connector.
func benchMux(b *testing.B, publish func(*echoServer, string), tune func(*Config)) (*Mux, func() *benchClient) {
	cfg := Config{
		Logger: slog.New(slog.NewTextHandler(benchLog, nil)),
		Start: func(context.Context) (Backend, error) {
			return newEchoBackend(publish), nil
		},
		MaxMessage: 1 << 30,
	}
	if tune != nil {
		tune(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Close(ctx)
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	connect := func() *benchClient {
		a, z := net.Pipe()
		conns = append(conns, a)
		wg.Add(1)
		go func() { defer wg.Done(); m.ServeClient(context.Background(), z) }()
		c := newBenchClient(a)
		if _, err := c.call("initialize", []byte(`{"rootUri":"file:///ws/r"}`)); err != nil {
			b.Fatal(err)
		}
		wire.Write(a, msgNotification("initialized", []byte("{}")))
		return c
	}
	return m, connect
}

// direct returns a client talking straight to an echo server.
func benchDirect(b *testing.B) *benchClient {
	be := newEchoBackend(nil)
	b.Cleanup(func() { be.Kill(); be.Wait() })
	return newBenchClient(struct {
		io.Reader
		io.Writer
		io.Closer
	}{be, be, closerFunc(be.Close)})
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// timeEchoes times b.N test/echo round trips on c and reports their
// p50/p99.
func timeEchoes(b *testing.B, c *benchClient, params []byte) {
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.call("test/echo", params); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkRoundTrip: small request round trips straight to a server and
// through the mux (over in-memory pipes on both sides, so the difference
// is the mux's own cost). p50/p99 are reported as metrics.
func BenchmarkRoundTrip(b *testing.B) {
	params := []byte(`{"textDocument":{"uri":"file:///ws/r/a.c"},"position":{"line":10,"character":4}}`)
	run := func(b *testing.B, c *benchClient) {
		b.ReportAllocs()
		timeEchoes(b, c, params)
	}
	b.Run("direct", func(b *testing.B) { run(b, benchDirect(b)) })
	b.Run("mux", func(b *testing.B) {
		_, connect := benchMux(b, nil, nil)
		run(b, connect())
	})
}

// BenchmarkThroughput: echo round trips of 1 KiB, 64 KiB and 16 MiB params
// (request and response each carry the payload; bytes counted once each
// way).
func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 16 << 20} {
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = 'a' + byte(i%26)
		}
		payload[0], payload[size-1] = '"', '"'
		for _, via := range []string{"direct", "mux"} {
			b.Run(fmt.Sprintf("%s/%s", sizeLabel(size), via), func(b *testing.B) {
				var c *benchClient
				if via == "direct" {
					c = benchDirect(b)
				} else {
					_, connect := benchMux(b, nil, nil)
					c = connect()
				}
				b.SetBytes(int64(2 * size))
				for b.Loop() {
					res, err := c.call("test/echo", payload)
					if err != nil {
						b.Fatal(err)
					}
					if len(res) < size {
						b.Fatalf("short answer %d", len(res))
					}
					wire.Recycle(res)
				}
			})
		}
	}
}

func sizeLabel(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkRoundTripDeafClient: a client that never reads has a document
// open while the server publishes diagnostics for it heavily (a 25 KiB
// publishDiagnostics every 100µs, for the whole run); another client in
// another root measures its round trips (compare with
// BenchmarkRoundTrip/mux). The deaf client is disconnected once its queue
// bound (8 MiB here) is reached, so host memory stays bounded; heap-MiB is
// the live heap at the end.
func BenchmarkRoundTripDeafClient(b *testing.B) {
	stop := make(chan struct{})
	diag := []byte(`{"uri":"file:///ws/r/deaf.c","diagnostics":[` + string(bigDiagnostics(200)) + `]}`)
	var once sync.Once
	publish := func(s *echoServer, uri string) {
		if uri != "file:///ws/r/deaf.c" {
			return
		}
		once.Do(func() {
			msg := msgNotification("textDocument/publishDiagnostics", diag)
			t := time.NewTicker(100 * time.Microsecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				if s.write(msg) != nil {
					return
				}
			}
		})
	}
	m, connect := benchMux(b, publish, func(cfg *Config) { cfg.ClientQueue = 8 << 20 })
	good := connect()
	deaf := connect()
	b.Cleanup(func() { close(stop) })
	wire.Write(good.conn, msgNotification("workspace/didChangeWorkspaceFolders",
		[]byte(`{"event":{"added":[{"uri":"file:///ws/other","name":"other"}],"removed":[{"uri":"file:///ws/r","name":"r"}]}}`)))
	wire.Write(deaf.conn, msgNotification("textDocument/didOpen",
		[]byte(`{"textDocument":{"uri":"file:///ws/r/deaf.c","languageId":"c","version":1,"text":"int x;"}}`)))
	// The deaf client now stops reading; net.Pipe writes block, so the
	// mux's queue for it fills up.
	params := []byte(`{"textDocument":{"uri":"file:///ws/other/a.c"},"position":{"line":10,"character":4}}`)
	timeEchoes(b, good, params)
	b.ReportMetric(float64(m.Clients()), "clients-left")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
}

func bigDiagnostics(n int) []byte {
	var out []byte
	for i := range n {
		if i > 0 {
			out = append(out, ',')
		}
		out = fmt.Appendf(out, `{"range":{"start":{"line":%d,"character":0},"end":{"line":%d,"character":5}},"severity":1,"message":"problem %d here"}`, i, i, i)
	}
	return out
}

var benchLog io.Writer = io.Discard

// helperEcho runs the benchmarks' echo server on this process's stdio (the
// test binary re-run with GO_WANT_HELPER_PROCESS=echo).
func helperEcho() {
	s := &echoServer{in: os.Stdin, out: os.Stdout, done: make(chan struct{})}
	s.run()
}

// startEcho starts the echo server as a process with ExecBackend.
func startEcho(tb testing.TB) Backend {
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=echo")
	cmd.Stderr = os.Stderr
	be, err := mux.Exec(cmd)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { be.Close(); be.Kill(); be.Wait() })
	return be
}

// BenchmarkRoundTripOS is BenchmarkRoundTrip over the kernel: the echo
// server is a process on pipes, and the mux's client a loopback TCP
// connection, so "mux" minus "direct" is what the host side of mux mode
// adds (one more process on the path, TCP in and out) without procref's
// proxy. p50/p99 are reported as metrics.
func BenchmarkRoundTripOS(b *testing.B) {
	params := []byte(`{"textDocument":{"uri":"file:///ws/r/a.c"},"position":{"line":10,"character":4}}`)
	run := func(b *testing.B, c *benchClient) {
		for range 200 { // warm up
			if _, err := c.call("test/echo", params); err != nil {
				b.Fatal(err)
			}
		}
		timeEchoes(b, c, params)
	}
	b.Run("direct", func(b *testing.B) {
		be := startEcho(b)
		run(b, newBenchClient(struct {
			io.Reader
			io.Writer
			io.Closer
		}{be, be, closerFunc(be.Close)}))
	})
	b.Run("mux", func(b *testing.B) {
		m, err := New(Config{
			Logger: slog.New(slog.NewTextHandler(benchLog, nil)),
			Start:  func(context.Context) (Backend, error) { return startEcho(b), nil },
		})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			m.ServeClient(context.Background(), conn)
		}()
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ln.Close()
			m.Close(ctx)
			wg.Wait()
		})
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		c := newBenchClient(conn)
		if _, err := c.call("initialize", []byte(`{"rootUri":"file:///ws/r"}`)); err != nil {
			b.Fatal(err)
		}
		wire.Write(conn, msgNotification("initialized", []byte("{}")))
		run(b, c)
	})
}
