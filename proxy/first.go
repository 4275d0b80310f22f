package proxy

import (
	"fmt"
	"os"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/protocol"
	"github.com/procref/procref/internal/wire"
)

// scope completes spec from the client's first bytes: the protocol, and
// with --share=root the workspace root from the editor's initialize (which
// is then replayed to the backend as the first message).
func (p *run) scope(spec *hostproto.Spec, cwd string) error {
	if err := p.setProtocol(spec, cwd); err != nil {
		return wrapFirst("the client's", err)
	}
	if spec.Share != hostproto.ShareRoot || p.proto.ReadsFirst {
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
// stays recognisable (isStdinClosed).
func wrapFirst(whose string, err error) error {
	if isStdinClosed(err) {
		return err
	}
	return fmt.Errorf("reading %s first message: %w", whose, err)
}

// setProtocol sets the spec's protocol fields in mux mode (the protocol,
// its framing, its version) from the client's first bytes. A protocol
// that reads its first message before attaching (MCP, JSON-RPC: it is in
// the key) shares by the working directory; LSP consumes nothing here and
// takes its root from its initialize. With --share=global or --share-key
// the protocol is still detected (only the root is not needed).
func (p *run) setProtocol(spec *hostproto.Spec, cwd string) error {
	if spec.Mode != hostproto.ModeMux {
		return nil
	}
	proto, err := p.learnProtocol(p.cfg.Protocol)
	if err != nil {
		return err
	}
	p.proto = proto
	spec.Protocol, spec.Framing = proto.Name, string(p.framing)
	if !proto.ReadsFirst {
		return nil
	}
	if proto.Version != nil {
		spec.MCPVersion = proto.Version(p.first)
	}
	if spec.Share == hostproto.ShareRoot {
		spec.Root = cwd
	}
	return nil
}

// learnProtocol finds the client's protocol in mux mode: forced (a
// --protocol name) or detected ([protocol.Detect]) from the client's
// framing alone, else from its first message, which is then read (kept in
// p.first, sent on after attaching). A forced protocol that does not read
// its first message (LSP) consumes nothing.
func (p *run) learnProtocol(forced string) (*protocol.Protocol, error) {
	var proto *protocol.Protocol
	if forced != "" {
		var err error
		if proto, err = protocol.Lookup(forced); err != nil {
			return nil, err
		}
		if !proto.ReadsFirst {
			if proto.Framing != "" {
				p.framing = proto.Framing
			}
			return proto, nil
		}
	}
	framing, err := wire.DetectFraming(p.in)
	if err != nil {
		return nil, err
	}
	p.framing = framing
	if proto == nil {
		if proto = protocol.Detect(framing, nil); proto != nil {
			return proto, nil
		}
	}
	if proto != nil && proto.Framing != "" && proto.Framing != framing {
		return nil, fmt.Errorf("--protocol=%s needs %s, but the client sent %s; use another --protocol (%s)",
			proto.Name, describe(proto.Framing), describe(framing), protocol.Names())
	}
	body, err := framing.NewReader(p.in, p.cfg.MaxMessage).Read()
	if err != nil {
		return nil, err
	}
	in, err := parseInitialize(body)
	if err != nil {
		return nil, fmt.Errorf("the client's first message is not JSON-RPC: %w", err)
	}
	p.first, p.init = body, in
	if proto == nil {
		if proto = protocol.Detect(framing, body); proto == nil {
			return nil, fmt.Errorf("no protocol procref speaks (%s) claims the client's first message; use --protocol", protocol.Names())
		}
	}
	return proto, nil
}

// describe names a framing for an error message.
func describe(f wire.Framing) string {
	if f == wire.NDJSON {
		return "newline-delimited JSON"
	}
	return "a Content-Length header"
}

// peekInitialize reads the editor's first LSP message (kept in p.first).
func (p *run) peekInitialize() error {
	body, err := wire.NewReader(p.in, p.cfg.MaxMessage).Read()
	if err != nil {
		return err
	}
	in, err := parseInitialize(body)
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
			init initializeParams
		}
		got := make(chan first, 1)
		go func() {
			defer close(got)
			if body, err := wire.NewReader(p.in, 0).Read(); err == nil {
				if in, err := parseInitialize(body); err == nil {
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
		p.write(errorResponse(p.init.ID, p.proto.ErrorCode, "procref: "+msg))
	}
}
