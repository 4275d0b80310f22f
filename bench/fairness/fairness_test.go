// Package fairness measures, for the LSP multiplexer, another window's
// worst call while one window floods the shared server with pipelined
// requests (issue 22 item 5; goal: ≤ 1 s). The server is this test binary
// re-run as an LSP echo server (a real process on real pipes); the
// windows are in-process clients of lspmux over net.Pipe.
//
//	go test -run '^$' -bench Flood -benchtime 3x ./fairness
package fairness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/procref/procref/internal/lspmux"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

func TestMain(m *testing.M) {
	if os.Getenv("FAIRNESS_ECHO") == "1" {
		os.Exit(echoServer())
	}
	os.Exit(m.Run())
}

// echoServer answers every request with its params (initialize: empty
// capabilities) until exit.
func echoServer() int {
	in := wire.NewReader(bufio.NewReaderSize(os.Stdin, 1<<20), 1<<26)
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	for {
		body, err := in.Read()
		if err != nil {
			return 0
		}
		f, err := wire.Scan(body)
		if err != nil {
			return 1
		}
		switch m := f.MethodName(); {
		case m == "exit":
			return 0
		case !f.ID.Ok():
		case m == "initialize":
			out.Write(wire.AppendFrame(nil, []byte(`{"jsonrpc":"2.0","id":`+string(f.ID.Of(body))+`,"result":{"capabilities":{}}}`)))
		default:
			res := f.Params.Of(body)
			if !f.Params.Ok() {
				res = []byte("null")
			}
			out.Write(wire.AppendFrame(nil, []byte(`{"jsonrpc":"2.0","id":`+string(f.ID.Of(body))+`,"result":`+string(res)+`}`)))
		}
		if in.Buffered() == 0 {
			out.Flush()
		}
	}
}

type conn struct {
	c  net.Conn
	r  *wire.Reader
	mu sync.Mutex
}

func dial(b *testing.B, m *lspmux.Mux) *conn {
	a, z := net.Pipe()
	go m.ServeClient(context.Background(), z)
	c := &conn{c: a, r: wire.NewReader(bufio.NewReader(a), 1<<26)}
	c.send(0, "initialize", `{"capabilities":{}}`)
	if _, err := c.r.Read(); err != nil {
		b.Fatal(err)
	}
	c.mu.Lock()
	c.c.Write(wire.AppendFrame(nil, []byte(`{"jsonrpc":"2.0","method":"initialized","params":{}}`)))
	c.mu.Unlock()
	return c
}

func (c *conn) send(id int, method, params string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.c.Write(wire.AppendFrame(nil, []byte(`{"jsonrpc":"2.0","id":`+strconv.Itoa(id)+`,"method":"`+method+`","params":`+params+`}`)))
	return err
}

// BenchmarkFloodOtherWindowWorstCall: one window pipelines flood requests
// as fast as the mux takes them (and reads its answers); meanwhile
// another window makes calls one after another. Reported: that window's
// worst and median call. MaxRequests=32 is the default; "unbounded" is
// the mux without the bound, measured in the same run.
func BenchmarkFloodOtherWindowWorstCall(b *testing.B) {
	for _, tc := range []struct {
		name string
		max  int
	}{{"max=32", 32}, {"unbounded", 1 << 30}} {
		b.Run(tc.name, func(b *testing.B) { benchFlood(b, tc.max) })
	}
}

func benchFlood(b *testing.B, maxRequests int) {
	const flood, calls = 100000, 200
	var worst, all []time.Duration
	for range b.N {
		m, err := lspmux.New(lspmux.Config{
			Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
			MaxRequests: maxRequests,
			Start: func(ctx context.Context) (lspmux.Backend, error) {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "FAIRNESS_ECHO=1")
				return mux.Exec(cmd)
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		fl, vi := dial(b, m), dial(b, m)
		done := make(chan struct{})
		go func() { // the flooder's answers
			defer close(done)
			for range flood {
				if _, err := fl.r.Read(); err != nil {
					return
				}
			}
		}()
		payload := strconv.Quote(fmt.Sprintf("%0128d", 0))
		go func() {
			for i := range flood {
				if fl.send(i+1, "flood/echo", payload) != nil {
					return
				}
			}
		}()
		var lat []time.Duration
		for i := range calls {
			t0 := time.Now()
			if err := vi.send(i+1, "victim/echo", `"v"`); err != nil {
				b.Fatal(err)
			}
			body, err := vi.r.Read()
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			var r struct{ Result string }
			json.Unmarshal(body, &r)
			if r.Result != "v" {
				b.Fatalf("victim got %s", body)
			}
		}
		<-done
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		worst = append(worst, lat[len(lat)-1])
		all = append(all, lat[len(lat)/2])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m.Close(ctx)
		cancel()
		fl.c.Close()
		vi.c.Close()
	}
	sort.Slice(worst, func(i, j int) bool { return worst[i] < worst[j] })
	b.ReportMetric(float64(worst[len(worst)-1].Microseconds())/1000, "worst-ms")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "median-ms")
}
