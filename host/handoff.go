package host

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/internal/pipeio"
	"github.com/procref/procref/lspmux"
)

// The handoff (mux mode): instead of relaying an editor's bytes through its
// proxy, the proxy passes its stdin and stdout to the host, which then reads
// and writes the editor's pipes itself — one process hop fewer on every
// message. The proxy stays as the editor's child: it holds the kernel
// reference and its session connection, whose end tells the host that the
// proxy is gone (kill -9 included), and it exits when the host says "bye"
// (the window's LSP session ended: exit, EOF) or when the host is gone.
//
//	proxy → host, on the authenticated session:   handoff KEY\n
//	host → proxy:                                 ok\n   (KEY is now expected)
//	proxy → host, on HandoffSocket:               KEY N\n + SCM_RIGHTS{stdin, stdout}, then N pending bytes
//	... the host serves the client on the passed descriptors ...
//	host → proxy, on the session:                 bye\n or end REASON\n (then closes)
//
// KEY is random and travels only on the session, which passed the token
// handshake; the socket lives in the private runtime dir and the host also
// checks the peer's uid (SO_PEERCRED).

const (
	handoffLine = "handoff "
	handoffWait = 5 * time.Second
)

// delivery is what arrives on the handoff socket for one key.
type delivery struct {
	in, out *os.File
	pending []byte
}

// handoffServer receives editors' descriptors for the mux.
type handoffServer struct {
	log *slog.Logger
	ln  net.Listener

	mu      sync.Mutex
	waiting map[string]chan delivery
}

func (h *handoffServer) expect(key string) (<-chan delivery, func()) {
	ch := make(chan delivery, 1)
	h.mu.Lock()
	h.waiting[key] = ch
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.waiting, key)
		h.mu.Unlock()
	}
}

func (h *handoffServer) deliver(key string, d delivery) bool {
	h.mu.Lock()
	ch := h.waiting[key]
	delete(h.waiting, key)
	h.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- d
	return true
}

// close stops accepting; the listener removes the socket (unlink on
// close).
func (h *handoffServer) close() { h.ln.Close() }

// fdClient is an editor's stdin and stdout as one client connection.
type fdClient struct {
	r         io.Reader
	in, out   *pipeio.File
	closeOnce sync.Once
}

func (c *fdClient) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fdClient) Write(p []byte) (int, error) { return c.out.Write(p) }

// TryWrite lets the mux write to the editor without waiting (its direct
// writes on the round-trip path); SetWriteDeadline bounds them where
// TryWrite is not supported.
func (c *fdClient) TryWrite(p []byte) (int, error)     { return c.out.TryWrite(p) }
func (c *fdClient) SetWriteDeadline(t time.Time) error { return c.out.SetWriteDeadline(t) }

func (c *fdClient) Close() error {
	c.closeOnce.Do(func() {
		c.in.Close()
		c.out.Close()
	})
	return nil
}

// serveSession serves one proxy's session: a handoff if it asks for one,
// else the LSP stream on the connection itself. serve is the mux's
// ServeClient.
func (h *handoffServer) serveSession(ctx context.Context, conn net.Conn, serve func(context.Context, io.ReadWriteCloser) error) error {
	br := bufio.NewReader(conn)
	if b, err := br.Peek(1); err != nil || h == nil || b[0] != handoffLine[0] {
		// No handoff socket here: a proxy that asks anyway gets a
		// malformed-frame disconnect from the mux; proxies only ask when
		// the socket exists.
		return serve(ctx, bufConn{conn, br})
	}
	// LSP frames start with a header ("Content-Length"); 'h' is a handoff.
	conn.SetReadDeadline(time.Now().Add(handoffWait))
	line, err := br.ReadString('\n')
	conn.SetReadDeadline(time.Time{})
	key, ok := strings.CutPrefix(strings.TrimSpace(line), handoffLine)
	if err != nil || !ok || len(key) != 32 {
		conn.Close()
		return fmt.Errorf("bad handoff request %q: %v", line, err)
	}
	ch, cancel := h.expect(key)
	defer cancel()
	if _, err := io.WriteString(conn, "ok\n"); err != nil {
		conn.Close()
		return err
	}
	var d delivery
	select {
	case d = <-ch:
	case <-time.After(handoffWait):
		conn.Close()
		return errors.New("handoff: the proxy's descriptors did not arrive")
	case <-ctx.Done():
		conn.Close()
		return ctx.Err()
	}
	in, out := pipeio.New(d.in), pipeio.New(d.out)
	c := &fdClient{r: io.Reader(in), in: in, out: out}
	if len(d.pending) > 0 {
		c.r = io.MultiReader(bytes.NewReader(d.pending), in)
	}
	// The proxy's end of the session is its life: when it is gone (exit,
	// kill -9), the editor's descriptors are closed, which ends the client.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		io.Copy(io.Discard, br)
		c.Close()
	}()
	err = serve(ctx, c)
	c.Close()
	io.WriteString(conn, endLine(err))
	conn.Close()
	<-gone
	return err
}

// endLine is the host's last line to a proxy whose window was handed off:
// "bye" for a normal end, else "end REASON" (see [WaitHandedOff]).
func endLine(err error) string {
	if why := lspmux.EndReason(err); why != "" {
		return "end " + why + "\n"
	}
	return "bye\n"
}

// newHandoffKey returns a random key for one handoff.
func newHandoffKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// bufConn is a connection whose first bytes were peeked.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }
