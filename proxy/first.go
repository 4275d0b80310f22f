package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/mcp"
	"github.com/procref/procref/internal/wire"
)

// scope completes spec from the client's first bytes: the protocol, and
// with --share=root the workspace root from the editor's initialize (which
// is then replayed to the backend as the first message).
func (p *run) scope(spec *hostproto.Spec, cwd string) error {
	if err := p.setProtocol(spec, cwd); err != nil {
		return wrapFirst("the client's", err)
	}
	if spec.Share != hostproto.ShareRoot || spec.Protocol != "" {
		return nil
	}
	if err := p.peekInitialize(); err != nil {
		return wrapFirst("the editor's", err)
	}
	spec.Root = p.init.Root
	if spec.Root == "" {
		spec.Root = cwd
	}
	if fi, err := os.Stat(spec.Root); err == nil && fi.IsDir() {
		spec.Dir = spec.Root
	}
	return nil
}

// wrapFirst says whose first message could not be read; a closed stdin
// stays recognisable (IsStdinClosed).
func wrapFirst(whose string, err error) error {
	if IsStdinClosed(err) {
		return err
	}
	return fmt.Errorf("reading %s first message: %w", whose, err)
}

// setProtocol sets the spec's protocol fields in mux mode. MCP and
// JSON-RPC: the first message is read before attaching (the MCP
// protocolVersion is in the key) and the share root is the working
// directory. With --share=global or --share-key the framing and protocol
// are still read from the first bytes (only the root is not needed): a
// Content-Length header is LSP and consumes nothing.
func (p *run) setProtocol(spec *hostproto.Spec, cwd string) error {
	forced := p.cfg.Protocol
	if spec.Mode != hostproto.ModeMux || forced == hostproto.ProtocolLSP {
		return nil
	}
	var err error
	spec.Protocol, p.framing, spec.MCPVersion, err = p.learnProtocol(forced)
	if err != nil {
		return err
	}
	if spec.Protocol == "" {
		return nil // LSP: the root comes from its initialize
	}
	spec.Framing = string(p.framing)
	if spec.Share == hostproto.ShareRoot {
		spec.Root = cwd
	}
	return nil
}

// learnProtocol finds the session's protocol in mux mode: forced
// ("lsp", "mcp", "jsonrpc") or, if "", detected from the client's first
// bytes: Content-Length is LSP; a JSON line is MCP if [MCPEra] knows its
// era, else generic JSON-RPC. For anything but LSP it
// reads the first message (kept in p.first, sent on after attaching) and
// returns the spec fields that go into the share key. For LSP it consumes
// nothing and returns protocol "".
func (p *run) learnProtocol(forced string) (protocol string, framing wire.Framing, version string, err error) {
	var era string
	framing, err = wire.DetectFraming(p.in)
	if err != nil {
		return "", "", "", err
	}
	if forced == hostproto.ProtocolLSP || (forced == "" && framing == wire.Header) {
		return "", wire.Header, "", nil
	}
	if forced == hostproto.ProtocolMCP && framing != wire.NDJSON {
		return "", "", "", errors.New("--protocol=mcp needs newline-delimited JSON (MCP's stdio transport), but the client sent a Content-Length header; use --protocol=jsonrpc or lsp")
	}
	p.framing = framing
	body, err := framing.NewReader(p.in, p.cfg.MaxMessage).Read()
	if err != nil {
		return "", "", "", err
	}
	in, err := ParseInitialize(body)
	if err != nil {
		return "", "", "", fmt.Errorf("the client's first message is not JSON-RPC: %w", err)
	}
	p.first, p.init = body, in
	era, version = MCPEra(body)
	protocol = forced
	if protocol == "" {
		protocol = hostproto.ProtocolJSONRPC
		if framing == wire.NDJSON && era != "" {
			protocol = hostproto.ProtocolMCP
		}
	}
	if protocol != hostproto.ProtocolMCP {
		version = "" // informative only for MCP: both eras share one server
	}
	return protocol, framing, version, nil
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
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
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

// peekInitialize reads the editor's first LSP message (kept in p.first).
func (p *run) peekInitialize() error {
	body, err := wire.NewReader(p.in, p.cfg.MaxMessage).Read()
	if err != nil {
		return err
	}
	in, err := ParseInitialize(body)
	if err != nil {
		return fmt.Errorf("the editor's first message is not JSON-RPC: %w", err)
	}
	p.first, p.init = body, in
	return nil
}

// answerInitialize answers the editor's first request with an error, so the
// editor shows why instead of waiting. If the first message has not been
// read yet, it waits briefly for it.
func (p *run) answerInitialize(msg string) {
	if p.first == nil {
		type first struct {
			body []byte
			init Initialize
		}
		got := make(chan first, 1)
		go func() {
			defer close(got)
			if body, err := wire.NewReader(p.in, 0).Read(); err == nil {
				if in, err := ParseInitialize(body); err == nil {
					got <- first{body, in}
				}
			}
		}()
		select {
		case f, ok := <-got:
			if ok {
				p.first, p.init = f.body, f.init
			}
		case <-time.After(3 * time.Second):
			return
		}
	}
	if p.first != nil && p.init.ID != nil {
		p.write(ErrorResponse(p.init.ID, -32002, "procref: "+msg))
	}
}
