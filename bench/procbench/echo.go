package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// echoServerMain is `procbench echo-server -listen ADDR [-stamp FILE]`: the
// instant backend. It runs until SIGTERM/SIGINT.
func echoServerMain(args []string) int {
	fs := flag.NewFlagSet("procbench echo-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to listen on")
	stamp := fs.String("stamp", "", "append each connection's first-byte time (Unix ns) to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo-server: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &echoServer{stampPath: *stamp}
	if err := e.serve(ctx, ln); err != nil {
		fmt.Fprintf(os.Stderr, "echo-server: %v\n", err)
		return 1
	}
	return 0
}

// echoServer echoes every TCP connection's bytes back to it.
type echoServer struct {
	stampPath string
	mu        sync.Mutex // serialises stamp appends
}

// serve accepts until ctx is done; it closes ln and blocks until every
// connection has ended.
func (e *echoServer) serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.echo(ctx, c)
		}()
	}
}

// echo copies c back to itself with plain reads and writes (256 KiB
// buffer), as a language server reading into a buffer would; io.Copy(c, c)
// would splice the socket to itself, and once in about ten runs such a
// direct-path stream stalled until procbench's 2-minute abort. The arrival
// of the first chunk is stamped before it is echoed, so a client that has
// seen the echo can rely on the stamp being written.
func (e *echoServer) echo(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	buf := make([]byte, 256<<10)
	for first := true; ; first = false {
		n, err := c.Read(buf)
		if n > 0 {
			if first && e.stampPath != "" {
				e.stamp(time.Now())
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func (e *echoServer) stamp(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := os.OpenFile(e.stampPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(strconv.AppendInt(nil, t.UnixNano(), 10), '\n'))
}
