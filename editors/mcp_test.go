//go:build linux

package editors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// wantMCP are the MCP server commands every MCP client snippet configures.
var wantMCP = map[string][]string{
	"memory":     {"procref", "--", "npx", "-y", "@modelcontextprotocol/server-memory"},
	"filesystem": {"procref", "--", "npx", "-y", "@modelcontextprotocol/server-filesystem", "."},
}

// mcpEntry is one server in an MCP client's config.
type mcpEntry struct {
	Type    string   `json:"type"`
	Command string   `json:"command"`
	Args    []string `json:"args"`
}

// TestMCPClientSnippets: each MCP client config in editors/mcp parses (as
// JSON, or JSON with comments for Zed) and holds the commands the README
// gives, under the key its client reads.
func TestMCPClientSnippets(t *testing.T) {
	for _, tc := range []struct{ file, key, typ string }{
		{"claude-code.mcp.json", "mcpServers", ""},
		{"cursor-mcp.json", "mcpServers", ""},
		{"vscode-mcp.json", "servers", "stdio"},
		{"zed-context-servers.json", "context_servers", ""},
	} {
		b, err := os.ReadFile(filepath.Join("mcp", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]map[string]mcpEntry
		if err := json.Unmarshal(stripLineComments(b), &cfg); err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		got := map[string][]string{}
		for name, s := range cfg[tc.key] {
			if s.Type != tc.typ {
				t.Errorf("%s: server %s has type %q, want %q", tc.file, name, s.Type, tc.typ)
			}
			got[name] = append([]string{s.Command}, s.Args...)
		}
		if !reflect.DeepEqual(got, wantMCP) {
			t.Errorf("%s configures %v under %q, want %v", tc.file, got, tc.key, wantMCP)
		}
	}
}
