package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/procref/procref/internal/wire"
)

// runMCP is `procref demo --mode mcp`: three simulated agent sessions
// share the built-in sample MCP server; one stores a note, another reads
// it; the status table shows one server with three clients; when all leave
// the server is gone. The caller has set up a private runtime dir.
func runMCP(ctx context.Context, cfg Config, ws string, out io.Writer) error {
	exe := cfg.Exe
	server := []string{exe, "sample-server", "--mcp"}
	fmt.Fprintf(out, "procref demo: three agent sessions share one MCP server (mux mode)\n")
	fmt.Fprintf(out, "  server command: procref -- procref sample-server --mcp\n\n")
	var sessions []*mcpSession
	defer func() {
		for _, s := range sessions {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	}()
	for i := 1; i <= 3; i++ {
		s, err := startMCPSession(ctx, exe, ws, server)
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		sessions = append(sessions, s)
		echo, err := s.callTool("echo", map[string]string{"message": fmt.Sprintf("hello from session %d", i)})
		if err != nil {
			return fmt.Errorf("session %d: %w (proxy stderr: %s)", i, err, s.stderr.String())
		}
		fmt.Fprintf(out, "session %d: proxy pid %d; tools/call echo: %s\n", i, s.cmd.Process.Pid, echo)
	}
	r, err := sessions[0].callTool("remember", map[string]string{"note": "procref shares this server"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "session 1: tools/call remember: %s\n", r)
	notes, err := sessions[2].callTool("recall", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "session 3: tools/call recall: %s (stored by session 1: one server, shared state)\n", notes)
	if !strings.Contains(notes, "procref shares this server") {
		return errors.New("session 3 does not see session 1's note")
	}

	backend, hostID, err := shared(ctx, cfg, out, len(sessions))
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	for i, s := range sessions {
		s.stdin.Close() // an MCP client ends its session by closing stdin
		err := s.cmd.Wait()
		fmt.Fprintf(out, "session %d: closed, proxy exit code %d\n", i+1, s.cmd.ProcessState.ExitCode())
		if err != nil {
			return fmt.Errorf("session %d: proxy exited with %v: %s", i+1, err, s.stderr.String())
		}
	}
	sessions = nil
	if err := gone(ctx, cfg, out, backend, hostID); err != nil {
		return err
	}
	fmt.Fprintln(out, "\ndemo OK")
	return nil
}

// mcpSession is one simulated agent session: a proxy and a sequential
// NDJSON MCP client on its stdio.
type mcpSession struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	r      wire.MessageReader
	stderr strings.Builder
	nextID int
}

func startMCPSession(ctx context.Context, exe, ws string, server []string) (*mcpSession, error) {
	s := &mcpSession{cmd: exec.CommandContext(ctx, exe, append([]string{"--"}, server...)...)}
	s.cmd.Dir, s.cmd.Stderr = ws, &s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.r = wire.NDJSON.NewReader(bufio.NewReader(stdout), 0)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	if _, err := s.call("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]string{"name": "procref-demo", "version": "1"}}); err != nil {
		return s, err
	}
	return s, s.send(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
}

func (s *mcpSession) send(v any) error {
	b, _ := json.Marshal(v)
	return wire.NDJSON.Write(s.stdin, b)
}

// call sends a request and returns its result, skipping other messages.
func (s *mcpSession) call(method string, params any) (json.RawMessage, error) {
	s.nextID++
	if err := s.send(map[string]any{"jsonrpc": "2.0", "id": s.nextID, "method": method, "params": params}); err != nil {
		return nil, err
	}
	for {
		body, err := s.r.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		if json.Unmarshal(body, &m) != nil || string(m.ID) != fmt.Sprint(s.nextID) {
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		return m.Result, nil
	}
}

// callTool calls a tool and returns its text.
func (s *mcpSession) callTool(name string, args any) (string, error) {
	res, err := s.call("tools/call", map[string]any{"name": name, "arguments": args})
	if err != nil {
		return "", err
	}
	var r struct{ Content []struct{ Text string } }
	json.Unmarshal(res, &r)
	if len(r.Content) == 0 {
		return "", fmt.Errorf("tools/call %s: no content in %s", name, res)
	}
	return r.Content[0].Text, nil
}
