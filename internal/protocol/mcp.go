package protocol

import (
	"encoding/json"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/mcp"
	"github.com/procref/procref/internal/wire"
)

// MCP is the Model Context Protocol over stdio: newline-delimited JSON
// whose first message shows an MCP era ([MCPEra]); the multiplexer is
// package mcp with its MCP policy.
var MCP = Protocol{
	Name:       hostproto.ProtocolMCP,
	Framing:    wire.NDJSON,
	Detect:     func(_ wire.Framing, first []byte) bool { era, _ := MCPEra(first); return era != "" },
	ReadsFirst: true,
	Version:    func(first []byte) string { _, v := MCPEra(first); return v },
	ErrorCode:  -32002,
	NewMux:     mcpMux(mcp.MCP),
}

// JSONRPC is any other JSON-RPC protocol, in either framing; package
// mcp multiplexes it with its plain policy (ids rewritten, notifications
// broadcast).
var JSONRPC = Protocol{
	Name:       hostproto.ProtocolJSONRPC,
	Detect:     func(_ wire.Framing, first []byte) bool { return first != nil },
	ReadsFirst: true,
	ErrorCode:  -32002,
	NewMux:     mcpMux(mcp.Plain),
}

func mcpMux(policy mcp.Policy) func(MuxConfig) (Multiplexer, error) {
	return func(c MuxConfig) (Multiplexer, error) {
		m, err := mcp.New(mcp.Config{
			Start:      c.Start,
			Policy:     policy,
			Framing:    wire.Framing(c.Spec.Framing),
			MaxMessage: c.Spec.MaxMessage,
			Logger:     c.Logger,
		})
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}

// MCP eras a first message can show.
const (
	EraLegacy = "legacy" // initialize (protocol 2025-11-25 and earlier)
	EraModern = "modern" // server/discover or _meta protocolVersion (2026-07-28)
)

// MCPEra tells the MCP era of a client's first message: an initialize
// with a protocolVersion is legacy; server/discover, or any request whose
// _meta carries io.modelcontextprotocol/protocolVersion, is modern (the
// Go SDK's default starts with server/discover). "" means not MCP.
func MCPEra(body []byte) (era, version string) {
	var m struct {
		Method string `json:"method"`
		Params struct {
			ProtocolVersion string                     `json:"protocolVersion"`
			Meta            map[string]json.RawMessage `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil || m.Method == "" {
		return "", ""
	}
	var metaVersion string
	json.Unmarshal(m.Params.Meta[mcp.MetaProtocolVersion], &metaVersion)
	switch {
	case m.Method == "initialize" && m.Params.ProtocolVersion != "":
		return EraLegacy, m.Params.ProtocolVersion
	case metaVersion != "":
		return EraModern, metaVersion
	case m.Method == "server/discover":
		return EraModern, ""
	}
	return "", ""
}
