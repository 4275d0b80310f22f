//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
)

// mcpNode is the npm project with the real MCP servers and the TypeScript
// SDK client (npm ci --prefix testdata/mcp-node).
var mcpNode, _ = filepath.Abs("../../testdata/mcp-node")

// requireMCPServer returns node and the path of an npm MCP server's entry
// point (e.g. "server-everything"), or skips (fails under
// PROCREF_REQUIRE_SERVERS=1).
func requireMCPServer(t *testing.T, pkg string) (node, entry string) {
	t.Helper()
	node, err := exec.LookPath("node")
	entry = filepath.Join(mcpNode, "node_modules/@modelcontextprotocol", pkg, "dist/index.js")
	if err == nil {
		_, err = os.Stat(entry)
	}
	if err != nil {
		if os.Getenv("PROCREF_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s: %v (run `npm ci --prefix testdata/mcp-node`)", pkg, err)
		}
		t.Skipf("SKIPPED, NODE MODULES MISSING: %s: %v: run `npm ci --prefix testdata/mcp-node` (PROCREF_REQUIRE_SERVERS=1 fails instead)", pkg, err)
	}
	return node, entry
}

// tsClient is one agent session: testdata/mcp-node/client.js (the
// official TypeScript SDK client) running `procref -- SERVER...`.
type tsClient struct {
	t     *testing.T
	label string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}

	mu    sync.Mutex
	cond  *sync.Cond
	lines []map[string]any
}

func startTSClient(t *testing.T, e *env, dir, label string, server ...string) *tsClient {
	t.Helper()
	args := append([]string{filepath.Join(mcpNode, "client.js"), label, procrefBin, "--"}, server...)
	c := &tsClient{t: t, label: label, cmd: exec.Command("node", args...), done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	c.cmd.Env, c.cmd.Dir, c.cmd.Stderr = e.vars, dir, os.Stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"raw": sc.Text()}
			}
			c.mu.Lock()
			c.lines = append(c.lines, m)
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		c.cmd.Wait()
		c.mu.Lock()
		close(c.done)
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	c.waitFor(func(m map[string]any) bool { return m["event"] == "ready" }, 30*time.Second, "ready")
	return c
}

// send writes one command (see client.js).
func (c *tsClient) send(cmd map[string]any) {
	b, _ := json.Marshal(cmd)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("%s: %v", c.label, err)
	}
}

// waitFor returns the first line (from the start) that match accepts.
func (c *tsClient) waitFor(match func(map[string]any) bool, timeout time.Duration, what string) map[string]any {
	c.t.Helper()
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for _, m := range c.lines {
			if match(m) {
				return m
			}
		}
		select {
		case <-c.done:
			c.t.Fatalf("%s: client exited waiting for %s; got %v", c.label, what, c.lines)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no %s within %v; got %v", c.label, what, timeout, c.lines)
		}
		c.cond.Wait()
	}
}

// answer waits for the answer to the command with id.
func (c *tsClient) answer(id string, timeout time.Duration) map[string]any {
	c.t.Helper()
	return c.waitFor(func(m map[string]any) bool { return m["id"] == id && m["op"] != nil }, timeout, "answer "+id)
}

// count returns how many lines match.
func (c *tsClient) count(match func(map[string]any) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.lines {
		if match(m) {
			n++
		}
	}
	return n
}

// text returns the tool result's text content.
func text(m map[string]any) string {
	b, _ := json.Marshal(m["result"])
	return string(b)
}

func isEvent(kind string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["event"] == kind }
}

// mcpServerPID returns the one node server the host runs.
func mcpServerPID(t *testing.T, hint *discovery.Hint) platform.Identity {
	t.Helper()
	kids := children(hint.Host.PID, "node")
	if len(kids) != 1 {
		t.Fatalf("host %d has node children %v, want exactly one server", hint.Host.PID, kids)
	}
	id, err := platform.Lookup(kids[0])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestMCPEverythingFourSessions: four TypeScript SDK sessions share one
// server-everything process through procref: tools/list, each its own
// echo, progress only to the caller, a sampling request answered by the
// session that triggered it, resource updates only to subscribers, kill -9
// of one session mid-call, kill -9 of the server (restarted; the next call
// works), and the server gone within 1 s of the last session.
func TestMCPEverythingFourSessions(t *testing.T) {
	_, everything := requireMCPServer(t, "server-everything")
	e := newEnv(t)
	ws := t.TempDir()
	server := []string{"node", everything, "stdio"}
	var cs []*tsClient
	for i := 0; i < 4; i++ {
		cs = append(cs, startTSClient(t, e, ws, fmt.Sprintf("S%d", i), server...))
	}
	hint := e.onlyHint()
	srv := mcpServerPID(t, hint)

	for i, c := range cs {
		c.send(map[string]any{"op": "list", "id": "list"})
		c.send(map[string]any{"op": "call", "id": "echo", "name": "echo", "args": map[string]any{"message": "from " + c.label}})
		if a := c.answer("list", 20*time.Second); a["ok"] != true || !strings.Contains(text(a), `"name":"echo"`) {
			t.Fatalf("session %d: tools/list: %v", i, a)
		}
		if a := c.answer("echo", 20*time.Second); !strings.Contains(text(a), "Echo: from "+c.label) {
			t.Fatalf("session %d: echo got another answer: %v", i, a)
		}
	}

	// Progress: S0 and S1 each run a long operation; each gets its own
	// four progress notifications, S2 and S3 none.
	for _, c := range cs[:2] {
		c.send(map[string]any{"op": "call", "id": "long", "name": "trigger-long-running-operation", "args": map[string]any{"duration": 1, "steps": 4}, "progress": true})
	}
	for i, c := range cs[:2] {
		if a := c.answer("long", 20*time.Second); a["ok"] != true {
			t.Fatalf("session %d: long operation: %v", i, a)
		}
		// The server sends 4; the TS SDK client handles notifications a
		// tick later than answers, so it drops the last one that comes
		// right before the answer (it does so without procref too).
		if n := c.count(isEvent("progress")); n < 3 || n > 4 {
			t.Errorf("session %d: %d progress notifications, want 3 or 4: %v", i, n, c.lines)
		}
	}
	for _, c := range cs[2:] {
		if n := c.count(isEvent("progress")); n != 0 {
			t.Errorf("%s got %d progress notifications for others' calls", c.label, n)
		}
	}

	// Sampling: the server's sampling/createMessage goes to S2, who
	// triggered it, not to S3, whose long call is also in flight.
	cs[3].send(map[string]any{"op": "call", "id": "busy", "name": "trigger-long-running-operation", "args": map[string]any{"duration": 1, "steps": 4}, "progress": true})
	cs[3].waitFor(isEvent("progress"), 20*time.Second, "progress of S3's call") // in flight; S2 is then the most recent
	cs[2].send(map[string]any{"op": "call", "id": "sample", "name": "trigger-sampling-request", "args": map[string]any{"prompt": "hi"}})
	cs[3].answer("busy", 20*time.Second)
	if a := cs[2].answer("sample", 20*time.Second); !strings.Contains(text(a), "sampled by S2") {
		t.Fatalf("S2's sampling was answered by another session: %v", a)
	}
	for _, c := range []*tsClient{cs[0], cs[1], cs[3]} {
		if n := c.count(isEvent("sampling")); n != 0 {
			t.Errorf("%s was asked to sample for S2", c.label)
		}
	}

	// Subscriptions: S0 and S1 subscribe; the update goes to them only.
	const uri = "demo://resource/static/document/architecture.md"
	for _, c := range cs[:2] {
		c.send(map[string]any{"op": "subscribe", "id": "sub", "uri": uri})
		if a := c.answer("sub", 20*time.Second); a["ok"] != true {
			t.Fatalf("%s: subscribe: %v", c.label, a)
		}
	}
	cs[0].send(map[string]any{"op": "call", "id": "toggle", "name": "toggle-subscriber-updates"})
	cs[0].answer("toggle", 20*time.Second)
	for _, c := range cs[:2] {
		c.waitFor(func(m map[string]any) bool { return m["event"] == "updated" && m["uri"] == uri }, 20*time.Second, "resource update")
	}
	cs[0].send(map[string]any{"op": "call", "id": "toggle2", "name": "toggle-subscriber-updates"})
	cs[0].answer("toggle2", 20*time.Second) // the answer follows any update sent before it
	for _, c := range cs[2:] {
		if n := c.count(isEvent("updated")); n != 0 {
			t.Errorf("%s did not subscribe but got %d resource updates", c.label, n)
		}
	}

	// kill -9 of S3's session (its procref proxy) mid-call: the others go on.
	cs[3].send(map[string]any{"op": "pid", "id": "pid"})
	pid := int(cs[3].answer("pid", 10*time.Second)["result"].(map[string]any)["pid"].(float64))
	cs[3].send(map[string]any{"op": "call", "id": "long3", "name": "trigger-long-running-operation", "args": map[string]any{"duration": 2, "steps": 4}, "progress": true})
	cs[0].send(map[string]any{"op": "call", "id": "long0", "name": "trigger-long-running-operation", "args": map[string]any{"duration": 1, "steps": 4}, "progress": true})
	for _, c := range []*tsClient{cs[3], cs[0]} { // both calls are in the server
		c.waitFor(func(m map[string]any) bool { return m["event"] == "progress" && m["id"] != "long" && m["id"] != "busy" }, 20*time.Second, "progress")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if a := cs[0].answer("long0", 20*time.Second); a["ok"] != true {
		t.Fatalf("S0's call failed after S3's session was killed: %v", a)
	}
	cs[1].send(map[string]any{"op": "call", "id": "echo2", "name": "echo", "args": map[string]any{"message": "still here"}})
	if a := cs[1].answer("echo2", 20*time.Second); !strings.Contains(text(a), "still here") {
		t.Fatalf("S1 after S3's kill: %v", a)
	}
	if !srv.Alive() {
		t.Fatal("killing one session ended the shared server")
	}

	// kill -9 of the server: restarted; sessions are told; the next call works.
	srv.Kill()
	proctest.WaitGone(t, srv, 5*time.Second, "killed server")
	cs[1].waitFor(func(m map[string]any) bool {
		return m["event"] == "message" && strings.Contains(fmt.Sprint(m["data"]), "restarted")
	}, 20*time.Second, "restart notice")
	cs[1].send(map[string]any{"op": "call", "id": "echo3", "name": "echo", "args": map[string]any{"message": "after crash"}})
	if a := cs[1].answer("echo3", 20*time.Second); !strings.Contains(text(a), "after crash") {
		t.Fatalf("first call after the server crash: %v", a)
	}
	srv2 := mcpServerPID(t, hint)

	// The last session gone: the server is gone within 1 s.
	for _, c := range cs {
		c.stdin.Close()
	}
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not exit", c.label)
		}
	}
	proctest.WaitGone(t, srv2, time.Second, "server after the last session")
}

// TestMCPGoSDKSharedMemory: two official Go SDK sessions on one
// server-memory process: an entity one session creates, the other reads;
// and two sessions of server-filesystem see the same directory listing.
func TestMCPGoSDKSharedMemory(t *testing.T) {
	node, memory := requireMCPServer(t, "server-memory")
	_, filesystem := requireMCPServer(t, "server-filesystem")
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func(name string, server ...string) *mcpsdk.ClientSession {
		cmd := exec.Command(procrefBin, append([]string{"--"}, server...)...)
		cmd.Env = append(append([]string{}, e.vars...), "MEMORY_FILE_PATH="+filepath.Join(ws, "memory.jsonl"))
		cmd.Dir, cmd.Stderr = ws, os.Stderr
		c := mcpsdk.NewClient(&mcpsdk.Implementation{Name: name, Version: "1.0.0"}, nil)
		s, err := c.Connect(ctx, &mcpsdk.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatalf("%s: connect: %v", name, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	call := func(s *mcpsdk.ClientSession, tool string, args map[string]any) string {
		res, err := s.CallTool(ctx, &mcpsdk.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		b, _ := json.Marshal(res.Content)
		if res.IsError {
			t.Fatalf("%s: error result %s", tool, b)
		}
		return string(b)
	}
	a, b := connect("A", node, memory), connect("B", node, memory)
	call(a, "create_entities", map[string]any{"entities": []any{map[string]any{
		"name": "procref", "entityType": "tool", "observations": []string{"shares servers"}}}})
	if got := call(b, "open_nodes", map[string]any{"names": []string{"procref"}}); !strings.Contains(got, "shares servers") {
		t.Fatalf("session B does not see A's entity: %s", got)
	}
	if got := children(e.onlyHint().Host.PID, "node"); len(got) != 1 {
		t.Fatalf("want one server-memory process, got %v", got)
	}

	os.WriteFile(filepath.Join(ws, "shared.txt"), []byte("hello"), 0o600)
	f1, f2 := connect("F1", node, filesystem, ws), connect("F2", node, filesystem, ws)
	for _, s := range []*mcpsdk.ClientSession{f1, f2} {
		if got := call(s, "list_directory", map[string]any{"path": ws}); !strings.Contains(got, "shared.txt") {
			t.Fatalf("filesystem listing lacks shared.txt: %s", got)
		}
	}
}

// ndjsonSession is a raw NDJSON session on a proxy's stdio.
type ndjsonSession struct {
	p *proc
	r *bufio.Reader
}

func (s ndjsonSession) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.p.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// expect reads lines until one contains want.
func (s ndjsonSession) expect(t *testing.T, want string) string {
	t.Helper()
	for {
		line := readLine(t, s.r, 20*time.Second)
		if line == "" {
			t.Fatalf("session ended waiting for %q; stderr: %s", want, s.p.stderr.String())
		}
		if strings.Contains(line, want) {
			return line
		}
	}
}

func startNDJSON(t *testing.T, e *env, ws string, flags ...string) ndjsonSession {
	args := append(append([]string{}, flags...), "--", procrefBin, "sample-server", "--mcp")
	p := e.start(ws, nil, args...)
	return ndjsonSession{p: p, r: bufio.NewReader(p.stdout)}
}

func mcpInit(version string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + version + `","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
}

// TestMCPSampleServer: with the built-in sample MCP server (no node):
// sessions share one server whatever protocolVersion they ask; a session that sends a bad frame gets an error
// and ends, the others go on; --protocol=jsonrpc rewrites ids so two
// sessions using the same id each get their own answer.
func TestMCPSampleServer(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	a, b := startNDJSON(t, e, ws), startNDJSON(t, e, ws)
	for _, s := range []ndjsonSession{a, b} {
		s.send(t, mcpInit("2025-06-18"))
		s.expect(t, `"serverInfo"`)
		s.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	}
	// Another protocolVersion shares the server too: it gets the shared
	// server's negotiated version (MCP negotiation; its client decides).
	c := startNDJSON(t, e, ws)
	c.send(t, mcpInit("2025-03-26"))
	c.expect(t, `"protocolVersion":"2025-06-18"`)
	if names, _ := discovery.List(e.privDir()); len(names) != 1 {
		t.Fatalf("want one server for every protocolVersion, got %v", names)
	}

	a.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"A"}}}`)
	b.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"B"}}}`)
	pidA := a.expect(t, `"id":2`)
	pidB := b.expect(t, `"id":2`)
	if !strings.Contains(pidA, "echo: A") || !strings.Contains(pidB, "echo: B") {
		t.Fatalf("answers crossed: A got %s, B got %s", pidA, pidB)
	}
	if pidA[strings.Index(pidA, "pid"):] != pidB[strings.Index(pidB, "pid"):] {
		t.Fatalf("A and B are on different servers: %s / %s", pidA, pidB)
	}

	// A bad frame, from a session whose proxy handed its stdio to the host
	// (a) and from one whose proxy relays (d).
	d := ndjsonSession{p: e.start(ws, []string{"PROCREF_HANDOFF=0"}, "--", procrefBin, "sample-server", "--mcp")}
	d.r = bufio.NewReader(d.p.stdout)
	d.send(t, mcpInit("2025-06-18"))
	d.expect(t, `"serverInfo"`)
	for _, s := range []ndjsonSession{a, d} {
		s.send(t, `{"jsonrpc":"2.0","id":3,"method":"tools/call",`)
		s.expect(t, `"error"`)
		if code := s.p.wait(t, 10*time.Second); code != 1 {
			t.Errorf("proxy of a session that sent a bad frame exited %d, want 1; stderr: %s", code, s.p.stderr.String())
		}
		if msg := s.p.stderr.String(); !strings.Contains(msg, "invalid JSON") || !strings.Contains(msg, ".log") {
			t.Errorf("stderr of a session (%d) that sent a bad frame = %q, want the reason and the log path", s.p.cmd.Process.Pid, msg)
		}
	}
	b.send(t, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"still"}}}`)
	b.expect(t, "echo: still")

	// Generic JSON-RPC: every message is the client's own (initialize too).
	x, y := startNDJSON(t, e, ws, "--protocol=jsonrpc"), startNDJSON(t, e, ws, "--protocol=jsonrpc")
	for _, s := range []ndjsonSession{x, y} {
		s.send(t, `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
	}
	x.send(t, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"message":"X"}}}`)
	y.send(t, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"message":"Y"}}}`)
	x.expect(t, `"id":7`)
	y.expect(t, `"id":7`)
	if got := x.expect(t, `"id":8`); !strings.Contains(got, "echo: X") {
		t.Fatalf("jsonrpc session X got %s", got)
	}
	if got := y.expect(t, `"id":8`); !strings.Contains(got, "echo: Y") {
		t.Fatalf("jsonrpc session Y got %s", got)
	}
	if names, _ := discovery.List(e.privDir()); len(names) != 2 {
		t.Fatalf("want a second server for --protocol=jsonrpc, got %v", names)
	}
}
