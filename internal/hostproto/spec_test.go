package hostproto

import (
	"strings"
	"testing"
)

// TestModeFor: a {socket} or {port} anywhere in the arguments (not the
// program name) means tcp mode; anything else is the multiplexer's.
func TestModeFor(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"/usr/bin/clangd"}, ModeMux},
		{[]string{"/bin/gopls", "serve", "-listen=unix;{socket}"}, ModeTCP},
		{[]string{"/bin/srv", "--port", "{port}"}, ModeTCP},
		{[]string{"/weird/{socket}/srv"}, ModeMux},
	} {
		if got := ModeFor(tc.cmd); got != tc.want {
			t.Errorf("ModeFor(%q) = %s, want %s", tc.cmd, got, tc.want)
		}
	}
}

// TestSpecKey: everything that makes two backends different changes the
// key (and so the name); what does not (linger, log level) leaves it.
func TestSpecKey(t *testing.T) {
	base := Spec{Mode: ModeMux, Command: []string{"/usr/bin/clangd", "--background-index"}, Share: ShareRoot, Root: "/src/a"}
	name := base.ServiceName()
	if !strings.HasPrefix(name, "clangd-") || len(name) != len("clangd-")+12 {
		t.Errorf("ServiceName = %q, want clangd-<12 hex>", name)
	}
	for what, change := range map[string]func(*Spec){
		"another root":     func(s *Spec) { s.Root = "/src/b" },
		"another argument": func(s *Spec) { s.Command = []string{"/usr/bin/clangd"} },
		"another program":  func(s *Spec) { s.Command[0] = "/opt/clangd" },
		"global sharing":   func(s *Spec) { s.Share, s.Root = ShareGlobal, "" },
		"a key env value":  func(s *Spec) { s.KeyEnv = []string{"CC=clang"} },
		"MCP": func(s *Spec) {
			s.Protocol, s.Framing, s.MCPVersion = ProtocolMCP, "ndjson", "2025-06-18"
		},
		"tcp mode": func(s *Spec) { s.Mode = ModeTCP },
	} {
		s := base
		s.Command = append([]string(nil), base.Command...)
		change(&s)
		if s.Key() == base.Key() {
			t.Errorf("%s: same key as the base spec", what)
		}
	}
	same := base
	same.Linger, same.LogLevel = 5e9, "debug"
	if same.Key() != base.Key() {
		t.Error("linger or log level changed the key")
	}
	// Both MCP eras share one server: the protocol version is not in the key.
	legacy, modern := base, base
	legacy.Protocol, legacy.Framing, legacy.MCPVersion = ProtocolMCP, "ndjson", "2025-11-25"
	modern.Protocol, modern.Framing, modern.MCPVersion = ProtocolMCP, "ndjson", "2026-07-28"
	if legacy.Key() != modern.Key() {
		t.Error("the MCP protocol version changed the key: the two eras would get two servers")
	}
	named := base
	named.Name = "my clangd"
	if n := named.ServiceName(); !strings.HasPrefix(n, "my_clangd-") {
		t.Errorf("--name: ServiceName = %q", n)
	}
}
