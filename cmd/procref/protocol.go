package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/procref/procref/host"
	"github.com/procref/procref/mcp"
	"github.com/procref/procref/proxy"
)

// setProtocol sets the spec's protocol fields in mux mode. MCP and
// JSON-RPC: the first message is read before attaching (the MCP
// protocolVersion is in the key) and the share root is the working
// directory. With --share=global or --share-key nothing is read for LSP
// unless --protocol says otherwise.
func (p *proxyRun) setProtocol(f *proxyFlags, spec *host.Spec, cwd string) error {
	if spec.Mode != host.ModeMux || f.protocol == host.ProtocolLSP || (f.protocol == "" && spec.Share != host.ShareRoot) {
		return nil
	}
	var err error
	spec.Protocol, p.framing, spec.MCPVersion, err = p.learnProtocol(f.protocol, f.maxMessage)
	if err != nil {
		return err
	}
	if spec.Protocol == "" {
		return nil // LSP: the root comes from its initialize
	}
	spec.Framing = string(p.framing)
	if spec.Share == host.ShareRoot {
		spec.Root = cwd
	}
	return nil
}

// learnProtocol finds the session's protocol in mux mode: forced
// ("lsp", "mcp", "jsonrpc") or, if "", detected from the client's first
// bytes: Content-Length is LSP; a JSON line is MCP if it is an initialize
// with a protocolVersion, else generic JSON-RPC. For anything but LSP it
// reads the first message (kept in p.first, sent on after attaching) and
// returns the spec fields that go into the share key. For LSP it consumes
// nothing and returns protocol "".
func (p *proxyRun) learnProtocol(forced string, max int64) (protocol string, framing mcp.Framing, version string, err error) {
	framing, err = mcp.Detect(p.in)
	if err != nil {
		return "", "", "", err
	}
	if forced == host.ProtocolLSP || (forced == "" && framing == mcp.Header) {
		return "", mcp.Header, "", nil
	}
	if forced == host.ProtocolMCP && framing != mcp.NDJSON {
		return "", "", "", errors.New("--protocol=mcp needs newline-delimited JSON (MCP's stdio transport), but the client sent a Content-Length header; use --protocol=jsonrpc or lsp")
	}
	p.framing = framing
	body, err := mcp.NewReader(framing, p.in, max).Read()
	if err != nil {
		return "", "", "", err
	}
	in, err := proxy.ParseInitialize(body)
	if err != nil {
		return "", "", "", fmt.Errorf("the client's first message is not JSON-RPC: %w", err)
	}
	p.first, p.init = body, in
	var m struct {
		Params struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"params"`
	}
	json.Unmarshal(body, &m)
	protocol = forced
	if protocol == "" {
		protocol = host.ProtocolJSONRPC
		if framing == mcp.NDJSON && in.Method == "initialize" && m.Params.ProtocolVersion != "" {
			protocol = host.ProtocolMCP
		}
	}
	if protocol == host.ProtocolMCP {
		version = m.Params.ProtocolVersion
	}
	return protocol, framing, version, nil
}
