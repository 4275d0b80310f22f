package mux

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/wire"
)

// socketPair returns the two ends of a real unix stream connection: the
// host's (served by a Client) and the client's.
func socketPair(t *testing.T) (host, peer *net.UnixConn) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, _ := l.AcceptUnix()
		accepted <- c
	}()
	peer, err = net.DialUnix("unix", nil, l.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	host = <-accepted
	if host == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { host.Close(); peer.Close() })
	return host, peer
}

// recClient is a ClientPolicy that records its calls; onMsg decides what
// a message does.
type recClient struct {
	mu     sync.Mutex
	msgs   []string
	failed []error
	left   []error
	onMsg  func(body string) error
}

func (p *recClient) FromClient(body []byte) error {
	p.mu.Lock()
	p.msgs = append(p.msgs, string(body))
	p.mu.Unlock()
	if p.onMsg != nil {
		return p.onMsg(string(body))
	}
	return nil
}

func (p *recClient) ReadFailed(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = append(p.failed, err)
	return err
}

func (p *recClient) Left(why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.left = append(p.left, why)
}

// serve runs c.Serve on its own goroutine; the result arrives on the
// channel.
func serve(ctx context.Context, c *Client, conn io.Reader, p ClientPolicy) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, wire.NDJSON.NewReader(conn, 0), p) }()
	return done
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

// endReadBack is the reason a relaying proxy reads back from line.
func endReadBack(line string) string {
	tl := hostproto.NewTail()
	tl.Write([]byte(line + "\n"))
	return tl.EndReason()
}

// readLines reads what the client is sent until the host closes.
func readLines(t *testing.T, peer net.Conn) []string {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	var lines []string
	sc := bufio.NewScanner(peer)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// A reset is an end too: the host closed with what the client sent
	// after its end unread.
	if err := sc.Err(); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the client's side: %v (got %q)", err, lines)
	}
	return lines
}

// A message the policy refuses ends the client: the policy's error answer,
// then the end notice with the reason, then the connection closes; Left
// is told the reason once, ReadFailed never.
func TestClientRefusedMessageEnds(t *testing.T) {
	host, peer := socketPair(t)
	c := NewClient(host, ClientConfig{Framing: lineFraming{}})
	refused := errors.New("the client sent a batch")
	p := &recClient{onMsg: func(body string) error {
		if body == "bad" {
			c.Send(Item{Body: []byte("answer")})
			return refused
		}
		return nil
	}}
	done := serve(context.Background(), c, host, p)
	if _, err := peer.Write([]byte("one\nbad\nnever\n")); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, peer)
	if err := result(t, done); err != refused {
		t.Fatalf("Serve = %v, want %v", err, refused)
	}
	if len(lines) != 2 || lines[0] != "answer" {
		t.Fatalf("client got %q, want the answer then the end notice", lines)
	}
	if why := endReadBack(lines[1]); !strings.Contains(why, "the client sent a batch") {
		t.Fatalf("end notice %q reads back as %q", lines[1], why)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.Join(p.msgs, ",") != "one,bad" || len(p.failed) != 0 || len(p.left) != 1 || p.left[0] != refused {
		t.Fatalf("policy saw msgs %q, failed %v, left %v", p.msgs, p.failed, p.left)
	}
}

// A clean EOF ends the client with no notice; what was queued for it
// still goes out.
func TestClientEOF(t *testing.T) {
	host, peer := socketPair(t)
	c := NewClient(host, ClientConfig{Framing: lineFraming{}})
	p := &recClient{onMsg: func(body string) error {
		c.Send(Item{Body: []byte("re " + body)})
		return nil
	}}
	done := serve(context.Background(), c, host, p)
	peer.Write([]byte("a\nb\n"))
	peer.CloseWrite()
	lines := readLines(t, peer)
	if err := result(t, done); !errors.Is(err, io.EOF) {
		t.Fatalf("Serve = %v, want EOF", err)
	}
	if strings.Join(lines, ",") != "re a,re b" {
		t.Fatalf("client got %q", lines)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failed) != 1 || !errors.Is(p.failed[0], io.EOF) || len(p.left) != 1 {
		t.Fatalf("failed %v, left %v", p.failed, p.left)
	}
}

// End from elsewhere (the multiplexer stopping) ends a client that keeps
// sending: what it sends after is not routed, the notice says why, and
// Serve returns that reason, not the read error of the closed connection.
func TestClientEndedFromOutside(t *testing.T) {
	host, peer := socketPair(t)
	c := NewClient(host, ClientConfig{Framing: lineFraming{}})
	routed := make(chan struct{}, 10)
	p := &recClient{onMsg: func(string) error { routed <- struct{}{}; return nil }}
	done := serve(context.Background(), c, host, p)
	peer.Write([]byte("first\n"))
	select {
	case <-routed:
	case <-time.After(20 * time.Second):
		t.Fatal("first message never routed")
	}
	c.End(ErrClosed)
	c.End(errors.New("a later reason")) // ignored: the first wins
	go peer.Write([]byte("after\n"))
	lines := readLines(t, peer)
	if err := result(t, done); err != ErrClosed {
		t.Fatalf("Serve = %v, want ErrClosed", err)
	}
	if len(lines) != 1 || !strings.Contains(endReadBack(lines[0]), "stopped") {
		t.Fatalf("client got %q, want the end notice of a stop", lines)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.msgs) != 1 || len(p.failed) != 0 || len(p.left) != 1 || p.left[0] != ErrClosed {
		t.Fatalf("msgs %q, failed %v, left %v", p.msgs, p.failed, p.left)
	}
}

// A client that does not read while more is queued for it than its bound
// is ended with ErrClientStalled, and Serve returns although the flush
// of its queue can never finish (flushWait closes the connection).
func TestClientNotReadingEnds(t *testing.T) {
	host, peer := socketPair(t)
	c := NewClient(host, ClientConfig{Framing: lineFraming{}, MaxQueue: 64 << 10})
	big := strings.Repeat("x", 16<<10)
	p := &recClient{onMsg: func(string) error {
		for range 1000 {
			c.Send(Item{Body: []byte(big)})
		}
		return nil
	}}
	done := serve(context.Background(), c, host, p)
	peer.Write([]byte("flood me\n")) // and never read
	err := result(t, done)
	if !errors.Is(err, ErrClientStalled) {
		t.Fatalf("Serve = %v, want ErrClientStalled", err)
	}
}

// The caller's ctx ending ends the client as a stop (ErrClosed), keeping
// the ctx's error.
func TestClientCtxEnds(t *testing.T) {
	host, peer := socketPair(t)
	c := NewClient(host, ClientConfig{Framing: lineFraming{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(ctx, c, host, &recClient{})
	cancel()
	lines := readLines(t, peer)
	err := result(t, done)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want ErrClosed and context.Canceled", err)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], hostproto.EndMethod) {
		t.Fatalf("client got %q, want the end notice", lines)
	}
}

// End with a last message queues it and sets the reason in one step: a
// client that reads its error answer and leaves at once still ends for
// that reason, and the end notice follows the answer (the LSP initialize
// of a server that cannot start: the editor closes on the answer).
func TestClientEndWithAnswer(t *testing.T) {
	failed := errors.New("the server did not start")
	for range 50 {
		host, peer := socketPair(t)
		c := NewClient(host, ClientConfig{Framing: lineFraming{}})
		p := &recClient{onMsg: func(string) error {
			go c.End(failed, []byte("answer")) // from elsewhere, as the core's NeverUp does
			return nil
		}}
		done := serve(context.Background(), c, host, p)
		peer.Write([]byte("initialize\n"))
		r := bufio.NewReader(peer)
		if line, err := r.ReadString('\n'); err != nil || line != "answer\n" {
			t.Fatalf("first line %q, %v; want the answer", line, err)
		}
		peer.CloseWrite() // leaves at once
		if err := result(t, done); err != failed {
			t.Fatalf("Serve = %v, want %v", err, failed)
		}
		rest, _ := io.ReadAll(r)
		if !strings.Contains(string(rest), hostproto.EndMethod) {
			t.Fatalf("after the answer: %q, want the end notice", rest)
		}
	}
}
