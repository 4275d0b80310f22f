package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/pipeio"
	"github.com/procref/procref/platform"
)

// The host's half of the descriptor handoff (the protocol is in package
// hostproto): a session that asks for it registers a key, the proxy's
// descriptors arrive on the handoff socket under that key, and the mux
// serves the editor's pipes as one client.

// handoffServer receives editors' descriptors for the mux.
type handoffServer struct {
	log *slog.Logger
	ln  *platform.UnixListener

	mu      sync.Mutex
	waiting map[string]chan hostproto.Handed
}

// startHandoff listens on the socket name (hostproto.HandoffName) in the
// runtime dir d, relative to its handle, for proxies' descriptors; an error
// wrapping hostproto.ErrNoHandoff means not here.
func startHandoff(d *platform.PrivateDir, name string, log *slog.Logger) (*handoffServer, error) {
	ln, err := hostproto.ListenHandoff(d, name)
	if err != nil {
		return nil, err
	}
	h := &handoffServer{log: log, ln: ln, waiting: map[string]chan hostproto.Handed{}}
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go h.receive(c)
		}
	}()
	return h, nil
}

// receive takes one proxy's descriptors and hands them to the session that
// expects their key.
func (h *handoffServer) receive(c *net.UnixConn) {
	d, err := hostproto.ReceiveHandoff(c)
	if err != nil {
		h.log.Warn("handoff refused", "err", err)
		return
	}
	if !h.deliver(d) {
		h.log.Warn("handoff: nobody expects this key")
		d.In.Close()
		d.Out.Close()
	}
}

func (h *handoffServer) expect(key string) (<-chan hostproto.Handed, func()) {
	ch := make(chan hostproto.Handed, 1)
	h.mu.Lock()
	h.waiting[key] = ch
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.waiting, key)
		h.mu.Unlock()
	}
}

func (h *handoffServer) deliver(d hostproto.Handed) bool {
	h.mu.Lock()
	ch := h.waiting[d.Key]
	delete(h.waiting, d.Key)
	h.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- d
	return true
}

// close stops accepting; the listener removes the socket (through the
// dir handle).
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
// else the client's stream on the connection itself. serve is the mux's
// ServeClient.
func (h *handoffServer) serveSession(ctx context.Context, conn net.Conn, serve func(context.Context, io.ReadWriteCloser) error) error {
	br := bufio.NewReader(conn)
	if b, err := br.Peek(1); err != nil || h == nil || !hostproto.IsHandoffRequest(b[0]) {
		// No handoff socket here: a proxy that asks anyway gets a
		// malformed-frame disconnect from the mux; proxies only ask when
		// the socket exists.
		return serve(ctx, bufConn{conn, br})
	}
	d, err := h.await(ctx, conn, br)
	if err != nil {
		conn.Close()
		return err
	}
	in, out := pipeio.New(d.In), pipeio.New(d.Out)
	c := &fdClient{r: io.Reader(in), in: in, out: out}
	if len(d.Pending) > 0 {
		c.r = io.MultiReader(bytes.NewReader(d.Pending), in)
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
	io.WriteString(conn, hostproto.EndLine(mux.EndReason(err)))
	conn.Close()
	<-gone
	return err
}

// await accepts the handoff request on the session and waits for the
// descriptors.
func (h *handoffServer) await(ctx context.Context, conn net.Conn, br *bufio.Reader) (hostproto.Handed, error) {
	var ch <-chan hostproto.Handed
	cancel := func() {}
	defer func() { cancel() }()
	if err := hostproto.AcceptHandoff(conn, br, func(key string) { ch, cancel = h.expect(key) }); err != nil {
		return hostproto.Handed{}, err
	}
	select {
	case d := <-ch:
		return d, nil
	case <-time.After(hostproto.HandoffWait):
		return hostproto.Handed{}, errors.New("handoff: the proxy's descriptors did not arrive")
	case <-ctx.Done():
		return hostproto.Handed{}, ctx.Err()
	}
}

// bufConn is a connection whose first bytes were peeked.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }
