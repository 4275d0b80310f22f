package handshake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
)

// guardedServer serves handshakes for token on a loopback listener through
// a Guard, answering "ok n"; it stops at cleanup.
func guardedServer(t *testing.T, token string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := g.Accept(ctx, ln)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err := ReadRequest(conn, token)
				g.Done(conn, err)
				if err == nil {
					Accept(conn, "n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestGuardPushesOutOldest: with MaxPending silent connections waiting, a
// new one closes the oldest, and a real client still gets through.
func TestGuardPushesOutOldest(t *testing.T) {
	token := NewSecret()
	addr := guardedServer(t, token)
	var silent []net.Conn
	for i := 0; i < MaxPending+1; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
		time.Sleep(time.Millisecond) // distinct admission times
	}
	silent[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(silent[0]); string(got) != "busy\n" || err != nil {
		t.Fatalf("oldest silent connection: read %q, %v; want \"busy\" and closed by the guard", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := Client(ctx, c, token, "n", 1, ""); err != nil {
		t.Fatalf("a real client among %d silent ones: %v", MaxPending, err)
	}
}

// TestGuardBurst: 4×MaxPending real clients at once all get through: young
// pending connections are not pushed out, and one that is (a loaded machine
// can delay a handler past minPushOut) is told "busy" and Dial tries again.
func TestGuardBurst(t *testing.T) {
	token := NewSecret()
	addr := guardedServer(t, token)
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 4*MaxPending)
	for i := 0; i < 4*MaxPending; i++ {
		go func() {
			c, err := Dial(ctx, port, token, "n", 1, "")
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 4*MaxPending; i++ {
		if err := <-errs; err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
}

// failingListener fails every Accept with EMFILE, counting calls.
type failingListener struct {
	net.Listener
	calls atomic.Int64
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	return nil, &net.OpError{Op: "accept", Err: syscall.EMFILE}
}

// TestGuardAcceptBacksOff: a listener that fails at once is not retried in
// a spin, and the failures are one summary line, not a line each.
func TestGuardAcceptBacksOff(t *testing.T) {
	var log syncBuffer
	g := NewGuard(slog.New(slog.NewTextHandler(&log, nil)))
	g.interval = 200 * time.Millisecond
	l := &failingListener{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := g.Accept(ctx, l); err == nil {
		t.Fatal("Accept on a failing listener returned a connection")
	}
	// 5+10+...+640 ms, then 1 s steps: 8 calls fit in a second.
	if n := l.calls.Load(); n > 10 {
		t.Errorf("%d accepts in 1 s: the guard spins", n)
	}
	if n := strings.Count(log.String(), "\n"); n < 1 || n > 5 {
		t.Errorf("%d log lines for %d failed accepts, want one summary per 200 ms:\n%s", n, l.calls.Load(), log.String())
	}
	if !strings.Contains(log.String(), "accept_errors=") {
		t.Errorf("summary lacks the accept error count:\n%s", log.String())
	}
}

// TestGuardSummary: 1000 refusals make one summary line with their count.
func TestGuardSummary(t *testing.T) {
	var log syncBuffer
	g := NewGuard(slog.New(slog.NewTextHandler(&log, nil)))
	g.interval = 100 * time.Millisecond
	for i := 0; i < 1000; i++ {
		g.Done(nil, ErrBadToken)
	}
	proctest.WaitFor(t, 5*time.Second, "a summary with refused=1000", func() error {
		if s := log.String(); !strings.Contains(s, "refused=1000") {
			return fmt.Errorf("the log:\n%s", s)
		}
		return nil
	})
	if n := strings.Count(log.String(), "\n"); n != 1 {
		t.Errorf("%d lines for 1000 refusals:\n%s", n, log.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGuardFlush: Flush logs what is counted at once, and nothing when
// nothing is.
func TestGuardFlush(t *testing.T) {
	var log syncBuffer
	g := NewGuard(slog.New(slog.NewTextHandler(&log, nil)))
	g.Flush()
	if log.String() != "" {
		t.Fatalf("Flush with nothing counted logged %q", log.String())
	}
	g.Done(nil, ErrBadToken)
	g.Flush()
	if !strings.Contains(log.String(), "refused=1 ") {
		t.Fatalf("Flush after one refusal logged %q", log.String())
	}
}
