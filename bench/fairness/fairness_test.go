// Package fairness measures, for the LSP multiplexer, another window's
// worst call while one window floods the shared server with pipelined
// requests (issue 22 item 5; goal: ≤ 1 s), and the turn order: how many
// of the flood's requests the server read after the other window sent
// its call and before it read that call ("ahead"). The server is this
// test binary re-run as an LSP echo server (a real process on real
// pipes); the windows are in-process clients of lspmux over net.Pipe.
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
	"slices"
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

// echoServer answers every request with its params until exit;
// initialize with empty capabilities, and victim/echo, whose params are
// the time it was sent (Unix ns, the same clock), with the number of
// flood/echo requests it read since then.
func echoServer() int {
	in := wire.NewReader(bufio.NewReaderSize(os.Stdin, 1<<20), 1<<26)
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	var floods []int64 // when each flood/echo request was read
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
		case m == "victim/echo":
			sent, _ := strconv.ParseInt(string(f.Params.Of(body)), 10, 64)
			i, _ := slices.BinarySearch(floods, sent+1)
			out.Write(wire.AppendFrame(nil, []byte(`{"jsonrpc":"2.0","id":`+string(f.ID.Of(body))+`,"result":`+strconv.Itoa(len(floods)-i)+`}`)))
		default:
			if m == "flood/echo" {
				floods = append(floods, time.Now().UnixNano())
			}
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
// worst and median call, and how many flood requests the server read
// after the window sent a call and before it read that call (ahead-p50,
// ahead-max: the flood's requests queued before it, in the host and the
// server's stdin pipe; with turns toward the server, at most one per
// turn of those in the host's queue). Cases:
// MaxRequests=32 (the default) with small requests; the mux without the
// bound ("unbounded"); and 32 with 64 KiB requests ("max=32/64KiB"),
// where the flood's requests wait in the host's queue (the server's
// stdin pipe is full) and the turns decide.
func BenchmarkFloodOtherWindowWorstCall(b *testing.B) {
	for _, tc := range []struct {
		name           string
		max, flood, kb int
	}{{"max=32", 32, 100000, 0}, {"unbounded", 1 << 30, 100000, 0}, {"max=32/64KiB", 32, 4000, 64}} {
		b.Run(tc.name, func(b *testing.B) { benchFlood(b, tc.max, tc.flood, tc.kb) })
	}
}

func benchFlood(b *testing.B, maxRequests, flood, kb int) {
	const calls = 200
	var worst, all []time.Duration
	var aheadMax, aheadMid []int64
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
		payload := strconv.Quote(fmt.Sprintf("%0*d", max(128, kb<<10), 0))
		go func() {
			for i := range flood {
				if fl.send(i+1, "flood/echo", payload) != nil {
					return
				}
			}
		}()
		var lat []time.Duration
		var ahead []int64
		for i := range calls {
			t0 := time.Now()
			if err := vi.send(i+1, "victim/echo", strconv.FormatInt(t0.UnixNano(), 10)); err != nil {
				b.Fatal(err)
			}
			body, err := vi.r.Read()
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			var r struct{ Result *int64 }
			if json.Unmarshal(body, &r); r.Result == nil {
				b.Fatalf("victim got %s", body)
			}
			ahead = append(ahead, *r.Result)
		}
		<-done
		slices.Sort(lat)
		slices.Sort(ahead)
		worst, all = append(worst, lat[len(lat)-1]), append(all, lat[len(lat)/2])
		aheadMax, aheadMid = append(aheadMax, ahead[len(ahead)-1]), append(aheadMid, ahead[len(ahead)/2])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m.Close(ctx)
		cancel()
		fl.c.Close()
		vi.c.Close()
	}
	slices.Sort(worst)
	slices.Sort(all)
	slices.Sort(aheadMax)
	slices.Sort(aheadMid)
	b.ReportMetric(float64(worst[len(worst)-1].Microseconds())/1000, "worst-ms")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(aheadMax[len(aheadMax)-1]), "ahead-max")
	b.ReportMetric(float64(aheadMid[len(aheadMid)/2]), "ahead-p50")
}
