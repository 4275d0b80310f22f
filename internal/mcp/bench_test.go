package mcp_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"

	"github.com/procref/procref/internal/mcp"
	"github.com/procref/procref/internal/sampleserver"
)

// BenchmarkCall is one tools/call (echo) round trip, straight to the
// in-process sample server and through the mux: the difference is the
// multiplexer's own work per call (routing, ids, framing), without the
// process hops bench/mcp.sh measures.
func BenchmarkCall(b *testing.B) {
	const init = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}` + "\n"
	const call = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}` + "\n"
	run := func(b *testing.B, conn net.Conn) {
		r := bufio.NewReader(conn)
		io.WriteString(conn, init)
		if _, err := r.ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			io.WriteString(conn, call)
			if _, err := r.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		c, s := net.Pipe()
		go sampleserver.ServeMCP(context.Background(), s, s)
		defer c.Close()
		run(b, c)
	})
	b.Run("mux", func(b *testing.B) {
		m, err := mcp.New(mcp.Config{Start: startPipeBackend})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close(context.Background())
		c, s := net.Pipe()
		go m.ServeClient(context.Background(), s)
		defer c.Close()
		run(b, c)
	})
}
