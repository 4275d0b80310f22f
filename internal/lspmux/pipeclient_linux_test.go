//go:build linux

package lspmux

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procref/procref/internal/pipeio"
)

// pipeConn is the mux's side of a client on two OS pipes, as the host
// serves an editor after the descriptor handoff: reads and writes through
// pipeio, with TryWrite for the mux's direct writes.
type pipeConn struct{ in, out *pipeio.File }

func (c *pipeConn) Read(p []byte) (int, error)     { return c.in.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)    { return c.out.Write(p) }
func (c *pipeConn) TryWrite(p []byte) (int, error) { return c.out.TryWrite(p) }
func (c *pipeConn) Close() error {
	c.in.Close()
	return c.out.Close()
}

// fileConn is the client's side: plain *os.File ends.
type fileConn struct{ r, w *os.File }

func (c *fileConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fileConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *fileConn) Close() error {
	c.w.Close()
	return c.r.Close()
}

// TestDirectWritesToAPipeClient: answers bigger than the client's pipe
// (shrunk to one page) leave through the session reader's non-blocking
// direct write, which writes what fits and hands the rest to the client's
// writer goroutine. Every answer must arrive whole and in order, and the
// hand-over must have happened.
func TestDirectWritesToAPipeClient(t *testing.T) {
	h := newHarness(t, nil)
	var rests atomic.Int64
	h.mux.testHook = func(ev string) {
		if ev == "direct-rest" {
			rests.Add(1)
		}
	}
	toMuxR, toMuxW, err := os.Pipe()
	mustNoErr(t, err)
	toCliR, toCliW, err := os.Pipe()
	mustNoErr(t, err)
	// Through the RawConn: Fd() would make the descriptor blocking.
	rc, err := toCliW.SyscallConn()
	mustNoErr(t, err)
	var serr error
	mustNoErr(t, rc.Control(func(fd uintptr) { _, serr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 4096) }))
	if serr != nil {
		t.Fatalf("F_SETPIPE_SZ: %v", serr)
	}
	ch := make(chan error, 1)
	go func() {
		ch <- h.mux.ServeClient(h.ctx, &pipeConn{in: pipeio.New(toMuxR), out: pipeio.New(toCliW)})
	}()
	c := newTClient(t, "piped", &fileConn{r: toCliR, w: toMuxW})
	h.mu.Lock()
	h.clients = append(h.clients, c)
	h.served["piped"] = ch
	h.mu.Unlock()
	if _, err := c.initialize(h.ctx, "file:///ws/r"); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	mustNoErr(t, c.notify("initialized", map[string]any{}))

	// 64 requests in flight at once, each answered with ~40 KiB (under
	// directMax, so the direct path takes them).
	const n = 64
	chans := make([]chan wireMsg, n)
	want := make([]string, n)
	for i := range chans {
		want[i] = fmt.Sprintf("%02d:%s", i, strings.Repeat(string(rune('a'+i%26)), 40<<10))
		_, chans[i] = c.start("test/echo", want[i])
	}
	for i, ch := range chans {
		got, err := wait(h.ctx, ch)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if s := string(got); s != `"`+want[i]+`"` {
			t.Fatalf("answer %d: %d bytes starting %.20q, want the %d-byte echo", i, len(s), s, len(want[i])+2)
		}
	}
	if rests.Load() == 0 {
		t.Fatal("no direct write was partial: the test did not exercise the hand-over to the writer goroutine")
	}
}
