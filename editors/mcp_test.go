//go:build linux

package editors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// wantMCP are the MCP server commands every MCP client snippet configures;
// the filesystem server's directory is "." in a project's config and
// globalDir in a global one (a "." there would be the app's own working
// directory).
func wantMCP(dir string) map[string][]string {
	return map[string][]string{
		"memory":     {"procref", "--", "npx", "-y", "@modelcontextprotocol/server-memory"},
		"filesystem": {"procref", "--", "npx", "-y", "@modelcontextprotocol/server-filesystem", dir},
	}
}

const globalDir = "/ABSOLUTE/PATH/TO/YOUR/PROJECT"

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
	for _, tc := range []struct{ file, key, typ, dir string }{
		{"claude-code.mcp.json", "mcpServers", "", "."},
		{"cursor-mcp.json", "mcpServers", "", "."},
		{"vscode-mcp.json", "servers", "stdio", "."},
		{"zed-context-servers.json", "context_servers", "", globalDir},
		{"claude-desktop-config.json", "mcpServers", "", globalDir},
		{"cursor-global-mcp.json", "mcpServers", "", globalDir},
		{"windsurf-mcp_config.json", "mcpServers", "", globalDir},
		{"gemini-settings.json", "mcpServers", "", globalDir},
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
		if want := wantMCP(tc.dir); !reflect.DeepEqual(got, want) {
			t.Errorf("%s configures %v under %q, want %v", tc.file, got, tc.key, want)
		}
	}
	// Codex CLI: TOML, one [mcp_servers.NAME] table with command and args
	// (the subset the file uses: quoted strings, a one-line array).
	b, err := os.ReadFile(filepath.Join("mcp", "codex-config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	got, name := map[string][]string{}, ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "[mcp_servers.") && strings.HasSuffix(line, "]"):
			name = strings.TrimSuffix(strings.TrimPrefix(line, "[mcp_servers."), "]")
		case strings.HasPrefix(line, "command = "):
			var c string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "command = ")), &c); err != nil {
				t.Fatalf("codex-config.toml: %q: %v", line, err)
			}
			got[name] = append([]string{c}, got[name]...)
		case strings.HasPrefix(line, "args = "):
			var a []string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "args = ")), &a); err != nil {
				t.Fatalf("codex-config.toml: %q: %v", line, err)
			}
			got[name] = append(got[name], a...)
		}
	}
	if want := wantMCP(globalDir); !reflect.DeepEqual(got, want) {
		t.Errorf("codex-config.toml configures %v, want %v", got, want)
	}
}
