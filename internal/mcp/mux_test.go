package mcp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procref/procref/internal/mcp"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/sampleserver"
)

// pipeBackend runs the sample MCP server in-process as a Backend.
type pipeBackend struct {
	io.Reader
	io.Writer
	inW    *io.PipeWriter
	outR   *io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func startPipeBackend(ctx context.Context) (mux.Server, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	b := &pipeBackend{Reader: outR, Writer: inW, inW: inW, outR: outR, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		sampleserver.ServeMCP(ctx, inR, outW)
		outW.Close()
		inR.Close()
	}()
	return b, nil
}

func (b *pipeBackend) Close() error {
	b.once.Do(func() { b.inW.Close(); b.outR.Close() })
	return nil
}
func (b *pipeBackend) Kill() error { b.cancel(); b.Close(); return nil }
func (b *pipeBackend) Wait() error { <-b.done; return nil }

// session is one client on a net.Pipe served by the mux.
type session struct {
	conn net.Conn
	r    *bufio.Reader
}

func (s session) call(t *testing.T, line, want string) string {
	t.Helper()
	s.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(s.conn, line+"\n"); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if strings.Contains(got, want) {
			return got
		}
	}
}

// TestConcurrentSessions: many sessions initialize and call concurrently
// with colliding ids (run with -race); each gets only its own answers; a
// session with an oversized line is ended, the others are not.
func TestConcurrentSessions(t *testing.T) {
	m, err := mcp.New(mcp.Config{Start: startPipeBackend, MaxMessage: 4096})
	if err != nil {
		t.Fatal(err)
	}
	mcp.CheckTables(m)
	defer m.Close(context.Background())
	var wg sync.WaitGroup
	open := func() session {
		c, s := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.ServeClient(context.Background(), s)
		}()
		return session{conn: c, r: bufio.NewReader(c)}
	}
	var twg sync.WaitGroup
	for i := 0; i < 8; i++ {
		twg.Add(1)
		go func() {
			defer twg.Done()
			s := open()
			defer s.conn.Close()
			s.call(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}`, `"serverInfo"`)
			for j := 0; j < 20; j++ {
				msg := fmt.Sprintf("s%d-%d", i, j)
				got := s.call(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":%q}}}`, msg), `"id":2`)
				if !strings.Contains(got, "echo: "+msg+" ") {
					t.Errorf("session %d got %s", i, got)
					return
				}
			}
		}()
	}
	twg.Wait()
	big := open()
	big.call(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}`, `"serverInfo"`)
	got := big.call(t, `{"jsonrpc":"2.0","id":3,"method":"ping","params":{"pad":"`+strings.Repeat("x", 5000)+`"}}`, `"error"`)
	if !strings.Contains(got, "size limit") {
		t.Errorf("oversized line: %s", got)
	}
	other := open()
	other.call(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}`, `"serverInfo"`)
	other.call(t, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok"}}}`, "echo: ok")
	if m.Backends() != 1 {
		t.Errorf("%d servers started, want 1", m.Backends())
	}
	other.conn.Close()
	big.conn.Close()
	wg.Wait()
}

// TestServerCrash: the server dies; the mux restarts it, replays
// initialize, tells the session, and the next call works.
func TestServerCrash(t *testing.T) {
	var mu sync.Mutex
	var backends []mux.Server
	start := func(ctx context.Context) (mux.Server, error) {
		b, err := startPipeBackend(ctx)
		mu.Lock()
		backends = append(backends, b)
		mu.Unlock()
		return b, err
	}
	m, err := mcp.New(mcp.Config{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	mcp.CheckTables(m)
	defer m.Close(context.Background())
	c, srv := net.Pipe()
	go m.ServeClient(context.Background(), srv)
	s := session{conn: c, r: bufio.NewReader(c)}
	defer c.Close()
	s.call(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}`, `"serverInfo"`)
	mu.Lock()
	backends[0].Kill()
	mu.Unlock()
	s.call(t, `{"jsonrpc":"2.0","id":"p","method":"ping"}`, "was restarted")
	s.call(t, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"again"}}}`, "echo: again")
	if m.Backends() != 2 {
		t.Errorf("%d servers started, want 2", m.Backends())
	}
}
