//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
)

// goSession is one Go SDK client session through procref, recording the
// progress tokens it is sent.
type goSession struct {
	name string
	s    *mcpsdk.ClientSession
	mu   sync.Mutex
	toks []string
	got  chan string // each progress token as it arrives
}

func (g *goSession) tokens() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.toks...)
}

// TestMCPErasOneServer: Go SDK v1.8.0 sessions with its defaults
// (2026-07-28: server/discover, _meta on every request) and with
// 2025-11-25 (initialize) share one Go SDK server process: shared state
// seen across eras, each session's progress carries only its own token,
// and one session cancelling its call leaves another session's call
// alone.
func TestMCPErasOneServer(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	connect := func(name, version string) *goSession {
		g := &goSession{name: name, got: make(chan string, 64)}
		cmd := exec.Command(procrefBin, "--", self)
		cmd.Env = append(append([]string{}, e.vars...), "GO_WANT_HELPER_PROCESS=gosdk")
		cmd.Dir, cmd.Stderr = ws, os.Stderr
		c := mcpsdk.NewClient(&mcpsdk.Implementation{Name: name, Version: "1.0.0"}, &mcpsdk.ClientOptions{
			ProgressNotificationHandler: func(_ context.Context, req *mcpsdk.ProgressNotificationClientRequest) {
				tok := fmt.Sprint(req.Params.ProgressToken)
				g.mu.Lock()
				g.toks = append(g.toks, tok)
				g.mu.Unlock()
				select {
				case g.got <- tok:
				default:
				}
			},
		})
		var opts *mcpsdk.ClientSessionOptions
		if version != "" {
			opts = &mcpsdk.ClientSessionOptions{ProtocolVersion: version}
		}
		s, err := c.Connect(ctx, &mcpsdk.CommandTransport{Command: cmd}, opts)
		if err != nil {
			t.Fatalf("%s: connect: %v", name, err)
		}
		t.Cleanup(func() { s.Close() })
		g.s = s
		return g
	}
	call := func(ctx context.Context, g *goSession, tool string, args map[string]any, tok string) (string, error) {
		p := &mcpsdk.CallToolParams{Name: tool, Arguments: args}
		if tok != "" {
			p.SetProgressToken(tok)
		}
		res, err := g.s.CallTool(ctx, p)
		if err != nil {
			return "", err
		}
		b, _ := json.Marshal(res.Content)
		if res.IsError {
			return string(b), fmt.Errorf("error result %s", b)
		}
		return string(b), nil
	}

	legacy := connect("L", "2025-11-25")
	m1, m2 := connect("M1", ""), connect("M2", "")
	if v := m1.s.InitializeResult().ProtocolVersion; v < "2026-07-28" {
		t.Fatalf("the default Go SDK session negotiated %s through procref, want 2026-07-28", v)
	}
	if v := legacy.s.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Fatalf("the legacy session negotiated %s, want 2025-11-25", v)
	}
	pids := map[string]bool{}
	for i, g := range []*goSession{legacy, m1, m2} {
		got, err := call(ctx, g, "incr", nil, "")
		if err != nil {
			t.Fatalf("%s: incr: %v", g.name, err)
		}
		if !strings.Contains(got, fmt.Sprintf("count=%d ", i+1)) {
			t.Fatalf("%s: incr = %s, want count=%d: state is not shared across eras", g.name, got, i+1)
		}
		pids[serverPID(got)] = true
	}
	// A TypeScript SDK session (2025-11-25) on the same server sees the
	// same counter, when node and the SDK are installed (required under
	// PROCREF_REQUIRE_SERVERS=1, as CI runs).
	_, nerr := exec.LookPath("node")
	if nerr == nil {
		_, nerr = os.Stat(filepath.Join(mcpNode, "node_modules"))
	}
	if nerr != nil && os.Getenv("PROCREF_REQUIRE_SERVERS") == "1" {
		t.Fatalf("the TypeScript SDK session: %v (run `npm ci --prefix testdata/mcp-node`)", nerr)
	}
	if nerr != nil {
		t.Logf("SKIPPED the TypeScript SDK session: %v: run `npm ci --prefix testdata/mcp-node`", nerr)
	}
	if nerr == nil {
		{
			te := *e
			te.vars = append(append([]string{}, e.vars...), "GO_WANT_HELPER_PROCESS=gosdk")
			ts := startTSClient(t, &te, ws, "TS", self)
			ts.send(map[string]any{"op": "call", "id": "incr", "name": "incr", "args": map[string]any{}})
			got := text(ts.answer("incr", 30*time.Second))
			if !strings.Contains(got, "count=4 ") {
				t.Fatalf("TS: incr = %s, want count=4", got)
			}
			pids[serverPID(got)] = true
		}
	}
	if names, _ := discovery.List(e.privDir()); len(names) != 1 || len(pids) != 1 {
		t.Fatalf("want one host and one server for both eras, got hosts %v, server pids %v", names, pids)
	}
	if kids := children(e.onlyHint().Host.PID, filepath.Base(self)[:min(15, len(filepath.Base(self)))]); len(kids) != 1 {
		t.Fatalf("host has server children %v, want exactly one", kids)
	}

	// L holds a call open; M2 starts one and gives up on it after its own
	// first progress; L's call must still complete once released.
	lDone := make(chan error, 1)
	go func() {
		got, err := call(ctx, legacy, "slow", map[string]any{"steps": 3, "hold": true}, "tok-L")
		if err == nil && !strings.Contains(got, "done") {
			err = fmt.Errorf("got %s", got)
		}
		lDone <- err
	}()
	cctx, ccancel := context.WithCancel(ctx)
	m2Done := make(chan error, 1)
	go func() {
		_, err := call(cctx, m2, "slow", map[string]any{"steps": 3, "hold": true}, "tok-M2")
		m2Done <- err
	}()
	for _, g := range []*goSession{legacy, m2} {
		select {
		case <-g.got:
		case <-ctx.Done():
			t.Fatalf("%s: no progress", g.name)
		}
	}
	ccancel()
	if err := <-m2Done; err == nil {
		t.Fatal("M2's cancelled call succeeded")
	}
	if got, err := call(ctx, m1, "slow", map[string]any{"steps": 2}, "tok-M1"); err != nil || !strings.Contains(got, "done") {
		t.Fatalf("M1: slow: %s %v", got, err)
	}
	if _, err := call(ctx, m1, "release", nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-lDone; err != nil {
		t.Fatalf("L's call failed after M2 cancelled its own: %v", err)
	}
	for _, g := range []*goSession{legacy, m1, m2} {
		toks := g.tokens()
		if len(toks) == 0 {
			t.Errorf("%s got no progress", g.name)
		}
		for _, tok := range toks {
			if tok != "tok-"+g.name {
				t.Errorf("%s got progress token %q, want only its own tok-%s (all: %v)", g.name, tok, g.name, toks)
			}
		}
	}
}

// TestMCPShServerIgnoringEOF: a server behind `sh -c` whose child ignores
// stdin EOF and holds the server's stderr (as npx, uvx and shell wrappers
// do): when the last session leaves, the host ends the server's whole
// process group and exits; nothing it started is left running.
func TestMCPShServerIgnoringEOF(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(procrefBin, "--", "sh", "-c", `trap "" TERM HUP; sleep 300 </dev/null & exec "$0"`, self)
	cmd.Env = append(append([]string{}, e.vars...), "GO_WANT_HELPER_PROCESS=gosdk")
	cmd.Dir, cmd.Stderr = ws, os.Stderr
	s, err := mcpsdk.NewClient(&mcpsdk.Implementation{Name: "sh", Version: "1"}, nil).Connect(ctx, &mcpsdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CallTool(ctx, &mcpsdk.CallToolParams{Name: "incr"}); err != nil {
		t.Fatal(err)
	}
	host := e.onlyHint().Host
	var sleeps []platform.Identity
	for _, p := range proctest.Processes() {
		if p.Comm == "sleep" && (p.PPID != 0) {
			for _, q := range proctest.Processes() {
				if q.PID == p.PPID && q.PPID == host.PID {
					id, err := platform.Lookup(p.PID)
					if err == nil {
						sleeps = append(sleeps, id)
					}
				}
			}
		}
	}
	if len(sleeps) != 1 {
		t.Fatalf("want the wrapper's one sleep child under the server, got %v", sleeps)
	}
	t.Cleanup(func() { sleeps[0].Kill() })
	s.Close()
	proctest.WaitGone(t, host, 30*time.Second, "the host after the last session left")
	proctest.WaitGone(t, sleeps[0], 10*time.Second, "the server's sleep child (its process group)")
}

// TestRunWithoutSeparator: `procref CMD ARGS...` without `--` runs CMD
// when it is not a procref subcommand (the MCP Inspector's CLI drops the
// `--`), and a typo of a subcommand that is no program still gets the
// suggestion.
func TestRunWithoutSeparator(t *testing.T) {
	e := newEnv(t)
	ws := t.TempDir()
	p := e.start(ws, nil, procrefBin, "sample-server", "--mcp")
	s := ndjsonSession{p: p, r: bufio.NewReader(p.stdout)}
	s.send(t, mcpInit("2025-11-25"))
	s.expect(t, `"serverInfo"`)
	typo := e.start(ws, nil, "stauts")
	if code := typo.wait(t, 20*time.Second); code == 0 || !strings.Contains(typo.stderr.String(), "did you mean `procref status`") {
		t.Fatalf("typo: exit %d, stderr %q", code, typo.stderr.String())
	}
}

// TestMCPModernClientLegacyServer: Go SDK sessions with their defaults
// (2026-07-28) on server-everything, a TypeScript SDK server without
// server/discover: the SDK falls back to initialize, and all sessions,
// with a TypeScript SDK one, end on the one shared server.
func TestMCPModernClientLegacyServer(t *testing.T) {
	node, everything := requireMCPServer(t, "server-everything")
	e := newEnv(t)
	ws := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func(name string) *mcpsdk.ClientSession {
		cmd := exec.Command(procrefBin, "--", node, everything, "stdio")
		cmd.Env, cmd.Dir, cmd.Stderr = e.vars, ws, os.Stderr
		s, err := mcpsdk.NewClient(&mcpsdk.Implementation{Name: name, Version: "1"}, nil).Connect(ctx, &mcpsdk.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatalf("%s: connect: %v", name, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	for _, name := range []string{"G1", "G2"} {
		if name == "G2" {
			// A TypeScript SDK session joins between them (it waits for its
			// initialize answer).
			startTSClient(t, e, ws, "TS", node, everything, "stdio")
		}
		s := connect(name)
		res, err := s.CallTool(ctx, &mcpsdk.CallToolParams{Name: "echo", Arguments: map[string]any{"message": name}})
		if err != nil {
			t.Fatalf("%s: echo: %v", name, err)
		}
		if b, _ := json.Marshal(res.Content); !strings.Contains(string(b), name) {
			t.Fatalf("%s: echo answered %s", name, b)
		}
	}
	if names, _ := discovery.List(e.privDir()); len(names) != 1 {
		t.Fatalf("want one shared server-everything for both eras' clients, got %v", names)
	}
	mcpServerPID(t, e.onlyHint()) // exactly one node server under the host
}

// serverPID returns the "pid=N" the test server's incr answers with.
func serverPID(answer string) string {
	f := strings.FieldsFunc(answer[strings.Index(answer, "pid="):], func(r rune) bool { return r < '0' || r > '9' })
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
