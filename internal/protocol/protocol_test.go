package protocol

import (
	"testing"

	"github.com/procref/procref/internal/wire"
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		framing wire.Framing
		first   string // "" = not read yet
		want    *Protocol
	}{
		{"lsp on framing alone", wire.Header, "", &LSP},
		{"ndjson needs the first message", wire.NDJSON, "", nil},
		{"mcp legacy", wire.NDJSON, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`, &MCP},
		{"mcp modern", wire.NDJSON, `{"jsonrpc":"2.0","id":1,"method":"server/discover"}`, &MCP},
		{"mcp modern _meta", wire.NDJSON, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, &MCP},
		{"plain json-rpc", wire.NDJSON, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, &JSONRPC},
	} {
		var first []byte
		if tc.first != "" {
			first = []byte(tc.first)
		}
		if got := Detect(tc.framing, first); got != tc.want {
			t.Errorf("%s: Detect = %v, want %v", tc.name, name(got), name(tc.want))
		}
	}
}

func name(p *Protocol) string {
	if p == nil {
		return "nil"
	}
	return p.Name
}

func TestLookup(t *testing.T) {
	for in, want := range map[string]*Protocol{"": &LSP, "lsp": &LSP, "mcp": &MCP, "jsonrpc": &JSONRPC} {
		if got, err := Lookup(in); err != nil || got != want {
			t.Errorf("Lookup(%q) = %v, %v", in, name(got), err)
		}
	}
	if _, err := Lookup("smtp"); err == nil {
		t.Error(`Lookup("smtp"): no error`)
	}
	if got := Names(); got != "lsp, mcp or jsonrpc" {
		t.Errorf("Names = %q", got)
	}
}

func TestRegistryComplete(t *testing.T) {
	for _, p := range registry {
		if p.Name == "" || p.Detect == nil || p.NewMux == nil || p.ErrorCode == 0 {
			t.Errorf("protocol %q lacks a required field", p.Name)
		}
	}
}

func TestMCPVersion(t *testing.T) {
	v := MCP.Version([]byte(`{"id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`))
	if v != "2025-11-25" {
		t.Errorf("version = %q", v)
	}
}
