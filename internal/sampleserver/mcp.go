package sampleserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/procref/procref/internal/wire"
)

// ServeMCP runs a small MCP server on r/w (newline-delimited JSON-RPC, MCP's
// stdio transport) until EOF. It blocks. Its tools: echo (the message and
// the server's pid, so sessions can see they share one process), remember
// (stores a note) and recall (returns every note stored by any session:
// state shared on purpose, like a memory server's).
func ServeMCP(ctx context.Context, r io.Reader, w io.Writer) error {
	s := &mcpServer{w: w}
	fr := wire.NDJSON.NewReader(r, 0)
	for ctx.Err() == nil {
		body, err := fr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		if m.ID != nil && m.Method != "" {
			res, err := s.call(m.Method, m.Params)
			s.answer(m.ID, res, err)
		}
	}
	return ctx.Err()
}

type mcpServer struct {
	mu    sync.Mutex
	w     io.Writer
	notes []string
}

var sampleTools = []map[string]any{
	{"name": "echo", "description": "Echoes the message and names the server's pid", "inputSchema": map[string]any{
		"type": "object", "properties": map[string]any{"message": map[string]any{"type": "string"}}, "required": []string{"message"}}},
	{"name": "remember", "description": "Stores a note every session can recall", "inputSchema": map[string]any{
		"type": "object", "properties": map[string]any{"note": map[string]any{"type": "string"}}, "required": []string{"note"}}},
	{"name": "recall", "description": "Returns the notes stored by any session", "inputSchema": map[string]any{"type": "object"}},
}

func (s *mcpServer) call(method string, params json.RawMessage) (any, error) {
	var p struct {
		ProtocolVersion string            `json:"protocolVersion"`
		Name            string            `json:"name"`
		Arguments       map[string]string `json:"arguments"`
	}
	json.Unmarshal(params, &p)
	switch method {
	case "initialize":
		return map[string]any{"protocolVersion": p.ProtocolVersion, "capabilities": map[string]any{"tools": map[string]any{}},
			"serverInfo": map[string]any{"name": "procref-sample-mcp", "version": "1.0.0"}}, nil
	case "ping":
		return map[string]any{}, nil
	case "tools/list":
		return map[string]any{"tools": sampleTools}, nil
	case "tools/call":
		s.mu.Lock()
		defer s.mu.Unlock()
		var text string
		switch p.Name {
		case "echo":
			text = fmt.Sprintf("echo: %s (server pid %d)", p.Arguments["message"], os.Getpid())
		case "remember":
			s.notes = append(s.notes, p.Arguments["note"])
			text = fmt.Sprintf("remembered (%d notes)", len(s.notes))
		case "recall":
			text = fmt.Sprintf("%q", s.notes)
		default:
			return nil, fmt.Errorf("unknown tool %q", p.Name)
		}
		return map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}}, nil
	}
	return nil, fmt.Errorf("method not found: %s", method)
}

func (s *mcpServer) answer(id json.RawMessage, res any, err error) {
	m := map[string]any{"jsonrpc": "2.0", "id": id, "result": res}
	if err != nil {
		delete(m, "result")
		m["error"] = map[string]any{"code": -32601, "message": err.Error()}
	}
	b, _ := json.Marshal(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	wire.NDJSON.Write(s.w, b)
}
