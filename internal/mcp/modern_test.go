package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procref/procref/internal/mcp"
	"github.com/procref/procref/internal/mux"
)

// modernServer is a scripted 2026-07-28 server on pipes: server/discover
// (counted), subscriptions/listen (one tagged list_changed, never
// answered), and tools/call "ask" (MRTR: input_required with a
// requestState of this incarnation, complete on a retry that carries it).
type modernServer struct {
	discovers atomic.Int32
	gens      atomic.Int32
}

func (ms *modernServer) start(ctx context.Context) (mux.Server, error) {
	gen := ms.gens.Add(1)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	b := &pipeBackend{Reader: outR, Writer: inW, inW: inW, outR: outR, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer outW.Close()
		go func() { <-ctx.Done(); inR.Close() }()
		var mu sync.Mutex
		send := func(v any) {
			b, _ := json.Marshal(v)
			mu.Lock()
			outW.Write(append(b, '\n'))
			mu.Unlock()
		}
		sc := bufio.NewScanner(inR)
		for sc.Scan() {
			var in struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Params struct {
					Name         string `json:"name"`
					RequestState string `json:"requestState"`
				} `json:"params"`
			}
			json.Unmarshal(sc.Bytes(), &in)
			switch in.Method {
			case "server/discover":
				ms.discovers.Add(1)
				send(map[string]any{"jsonrpc": "2.0", "id": in.ID, "result": map[string]any{
					"supportedVersions": []string{"2026-07-28"}, "capabilities": map[string]any{"tools": map[string]any{"listChanged": true}}}})
			case "subscriptions/listen":
				send(map[string]any{"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
					"params": map[string]any{"_meta": map[string]any{mcp.MetaSubscriptionID: in.ID}}})
			case "tools/call":
				if in.Params.Name == "burst" {
					for i := 0; i < burst; i++ {
						send(map[string]any{"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
					}
					send(map[string]any{"jsonrpc": "2.0", "id": in.ID, "result": map[string]any{"content": []any{}}})
					continue
				}
				state := fmt.Sprintf("signed-by-%d", gen)
				switch {
				case in.Params.RequestState == "":
					send(map[string]any{"jsonrpc": "2.0", "id": in.ID, "result": map[string]any{"resultType": "input_required",
						"inputRequests": map[string]any{"q": map[string]any{"method": "elicitation/create"}}, "requestState": state}})
				case in.Params.RequestState == state:
					send(map[string]any{"jsonrpc": "2.0", "id": in.ID, "result": map[string]any{"resultType": "complete",
						"content": []any{map[string]any{"type": "text", "text": "answered"}}}})
				default:
					send(map[string]any{"jsonrpc": "2.0", "id": in.ID, "error": map[string]any{"code": -32602, "message": "requestState signature invalid"}})
				}
			}
		}
	}()
	return b, nil
}

// burst is how many notifications the "burst" tool sends before its answer.
const burst = 20000

const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`

// TestModernSessions: 2026-07-28 sessions (no initialize): server/discover
// is cached, each session's subscriptions/listen gets only its own tagged
// notification with its own id, an MRTR round trip works, and a retry
// whose requestState came from a server process that has since crashed is
// refused with "issue ... again" (not the new server's signature error).
func TestModernSessions(t *testing.T) {
	ms := &modernServer{}
	m, open := newMux(t, ms.start)
	a, b := open(), open()
	for _, s := range []session{a, b} {
		s.call(t, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+meta+`}}`, `"supportedVersions"`)
	}
	if n := ms.discovers.Load(); n != 1 {
		t.Errorf("server/discover reached the server %d times, want 1 (cached per version)", n)
	}
	got := a.call(t, `{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{`+meta+`,"notifications":{"toolsListChanged":true}}}`, "list_changed")
	if !strings.Contains(got, `"io.modelcontextprotocol/subscriptionId":7`) {
		t.Errorf("A's tagged notification carries another id: %s", got)
	}
	b.call(t, `{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{`+meta+`,"notifications":{"toolsListChanged":true}}}`, "list_changed")
	// A must not have received B's stream notification: the next line A
	// reads after its own request is that request's answer.
	if got := a.call(t, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{`+meta+`,"name":"ask"}}`, `"id":8`); !strings.Contains(got, "input_required") {
		t.Fatalf("MRTR: %s", got)
	}
	got = a.call(t, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{`+meta+`,"name":"ask","requestState":"signed-by-1","inputResponses":{"q":{}}}}`, `"id":9`)
	if !strings.Contains(got, "answered") {
		t.Fatalf("MRTR retry: %s", got)
	}
	a.call(t, `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{`+meta+`,"name":"ask"}}`, "signed-by-1")
	mcp.KillServer(m)
	a.call(t, "", `"id":7`) // A's listen fails with the crash
	got = a.call(t, `{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{`+meta+`,"name":"ask","requestState":"signed-by-1","inputResponses":{"q":{}}}}`, `"id":11`)
	if !strings.Contains(got, "again") || strings.Contains(got, "signature") {
		t.Fatalf("retry across a restart: %s", got)
	}
}

// TestFloodFairness: one session pipelines a flood of calls without
// reading its answers; another session's calls still complete (the flood
// holds at most MaxInflight places at the server).
func TestFloodFairness(t *testing.T) {
	_, open := newMux(t, startPipeBackend)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}`
	flood, other := open(), open()
	flood.call(t, init, `"serverInfo"`)
	other.call(t, init, `"serverInfo"`)
	go func() {
		w := bufio.NewWriter(flood.conn)
		for i := 0; i < 20000; i++ {
			if _, err := fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"f"}}}`+"\n", i+10); err != nil {
				return
			}
		}
		w.Flush()
	}()
	go io.Copy(io.Discard, flood.r)
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("other-%d", i)
		other.call(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":%q}}}`, msg), "echo: "+msg)
	}
}

// TestBurstAndBadInput: a session reading a burst of 20000 server
// notifications gets all of them and is not dropped; a batch and an answer
// with an id the mux never sent each end only the session that sent it,
// with an error saying why.
func TestBurstAndBadInput(t *testing.T) {
	ms := &modernServer{}
	_, open := newMux(t, ms.start)
	a, batch, stray := open(), open(), open()
	a.call(t, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+meta+`}}`, `"supportedVersions"`)
	a.conn.SetDeadline(time.Now().Add(60 * time.Second))
	io.WriteString(a.conn, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{`+meta+`,"name":"burst"}}`+"\n")
	n := 0
	for {
		line, err := a.r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d of %d notifications: %v", n, burst, err)
		}
		if strings.Contains(line, "list_changed") {
			n++
		} else if strings.Contains(line, `"id":2`) {
			break
		}
	}
	if n != burst {
		t.Errorf("got %d of %d notifications", n, burst)
	}
	for _, tc := range []struct {
		s          session
		line, want string
	}{
		{batch, `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, "batch"},
		{stray, `{"jsonrpc":"2.0","id":987654,"result":{}}`, "matches no request"},
	} {
		tc.s.call(t, tc.line, tc.want)
		tc.s.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, tc.s.r); err != nil {
			t.Errorf("%s: the session did not end: %v", tc.want, err)
		}
	}
	a.call(t, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{`+meta+`,"name":"ask"}}`, "input_required")
}

// newMux returns a Mux on start, checking its tables and closed when the
// test ends, and a function that opens one session on it.
func newMux(t *testing.T, start func(context.Context) (mux.Server, error)) (*mcp.Mux, func() session) {
	t.Helper()
	m, err := mcp.New(mcp.Config{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	mcp.CheckTables(m)
	t.Cleanup(func() { m.Close(context.Background()) })
	return m, func() session {
		c, s := net.Pipe()
		go m.ServeClient(context.Background(), s)
		t.Cleanup(func() { c.Close() })
		return session{conn: c, r: bufio.NewReader(c)}
	}
}
