package lspmux

import (
	"encoding/json"
	"strings"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

func (m *Mux) clientNotification(c *client, f *wire.Fields, body []byte) error {
	if !m.ready(c) {
		// Dropped: LSP forbids notifications before the initialize result.
		// Say so, or a client that sends didOpen early never learns why it
		// gets no diagnostics.
		m.log.Warn("notification before the initialize result dropped (LSP forbids it)", "client", c.id, "method", f.MethodName())
		return nil
	}
	params := f.Params.Of(body)
	switch f.MethodName() {
	case "$/cancelRequest":
		sp, ok, _ := wire.Lookup(params, "id")
		if !ok {
			return nil
		}
		at := wire.Span{Start: f.Params.Start + sp.Start, End: f.Params.Start + sp.End}
		return m.forward(c, body, func(int64) (mux.Item, func()) {
			hid, ok := m.calls.HostID(c, at.Of(body))
			if !ok {
				return mux.Item{}, nil // already answered
			}
			return mux.Item{Body: body, Edits: []wire.Edit{{At: at, With: idToken(hid)}}}, nil
		})
	case "window/workDoneProgress/cancel":
		sp, ok, _ := wire.Lookup(params, "token")
		if !ok {
			return nil
		}
		at := wire.Span{Start: f.Params.Start + sp.Start, End: f.Params.Start + sp.End}
		return m.forward(c, body, func(int64) (mux.Item, func()) {
			if htok, ok := m.calls.HostToken(c, at.Of(body)); ok {
				return mux.Item{Body: body, Edits: []wire.Edit{{At: at, With: []byte(htok)}}}, nil
			}
			return mux.Item{Body: body}, nil // a token the backend created
		})
	case "textDocument/didOpen":
		p, vs, err := parseDidOpen(params)
		if err != nil {
			c.log.Warn("lsp client sent a bad didOpen; dropped", "err", err)
			return nil
		}
		verAt := wire.Span{}
		if vs.Ok() {
			verAt = wire.Span{Start: f.Params.Start + vs.Start, End: f.Params.Start + vs.End}
		}
		return m.forward(c, body, func(int64) (mux.Item, func()) {
			return mux.Item{Body: m.openDoc(c, &p, body, verAt)}, nil
		})
	case "textDocument/didChange":
		var p didChangeParams
		if err := json.Unmarshal(params, &p); err != nil || p.TextDocument.URI == "" {
			c.log.Warn("lsp client sent a bad didChange; dropped", "err", err)
			return nil
		}
		vs, _, _ := wire.Lookup(params, "textDocument", "version")
		verAt := wire.Span{}
		if vs.Ok() {
			verAt = wire.Span{Start: f.Params.Start + vs.Start, End: f.Params.Start + vs.End}
		}
		return m.forward(c, body, func(int64) (mux.Item, func()) {
			return mux.Item{Body: m.changeDoc(c, &p, body, verAt)}, nil
		})
	case "textDocument/didClose":
		var p struct {
			TextDocument struct {
				URI string `json:"uri"`
			} `json:"textDocument"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil
		}
		return m.forward(c, body, func(int64) (mux.Item, func()) {
			if _, ok := c.docs[p.TextDocument.URI]; ok {
				m.closeDoc(c, p.TextDocument.URI, true)
			}
			return mux.Item{}, nil
		})
	case "workspace/didChangeWorkspaceFolders":
		return m.changeFolders(c, body, params)
	}
	// nothing keeps body: recycled once written
	return m.forward(c, body, func(int64) (mux.Item, func()) { return mux.Item{Body: body, Recycle: true}, nil })
}

func (m *Mux) serverNotification(f *wire.Fields, body []byte) {
	params := f.Params.Of(body)
	abs := func(sp wire.Span) wire.Span { return inParams(f, sp) }
	m.mu.Lock()
	defer m.mu.Unlock()
	switch f.MethodName() {
	case "$/progress":
		sp, ok, _ := wire.Lookup(params, "token")
		if !ok {
			return
		}
		tok := string(sp.Of(params))
		if c, orig, ok := m.calls.Token(tok); ok {
			c.send(wire.Splice(body, abs(sp), orig))
			return
		}
		kind := ""
		if k, ok, _ := wire.Lookup(params, "value", "kind"); ok {
			kind = string(k.Of(params))
		}
		told := m.stokens[tok]
		if told == nil && kind == `"begin"` {
			// A token the backend never created (pylsp 1.x sends
			// $/progress without window/workDoneProgress/create): it goes
			// to the windows that declared window.workDoneProgress when it
			// began, and to them only until it ends.
			told = m.progressWindows()
			m.stokens[tok] = told
		}
		if told == nil {
			m.log.Debug("progress for an unknown token; dropped", "token", tok)
			return
		}
		for c := range told {
			if !c.left {
				c.send(body)
			}
		}
		if kind == `"end"` {
			delete(m.stokens, tok)
		}
		return
	case "$/cancelRequest":
		sp, ok, _ := wire.Lookup(params, "id")
		if !ok {
			return
		}
		if c, hid, ok := m.asks.ByServerID(sp.Of(params)); ok {
			c.send(wire.Splice(body, abs(sp), idToken(hid)))
		}
		return
	}
	// URI-scoped: params.uri or params.textDocument.uri
	uriSp, ok, _ := wire.Lookup(params, "uri")
	if !ok {
		uriSp, ok, _ = wire.Lookup(params, "textDocument", "uri")
	}
	if !ok {
		m.broadcast(body)
		return
	}
	uri, err := wire.Unquote(uriSp.Of(params))
	if err != nil {
		return
	}
	if d := m.docs[uri]; d != nil {
		m.toOpeners(d, f, body)
		return
	}
	// Nobody has it open: the clients whose folders contain it.
	for c := range m.clients {
		if !c.inited {
			continue
		}
		for _, fo := range c.folders {
			root := strings.TrimSuffix(fo.URI, "/")
			if strings.HasPrefix(uri, root+"/") || uri == root {
				c.send(body)
				break
			}
		}
	}
}

// inParams is sp, a span within f's params, as a span of the whole body.
func inParams(f *wire.Fields, sp wire.Span) wire.Span {
	return wire.Span{Start: f.Params.Start + sp.Start, End: f.Params.Start + sp.End}
}

// progressWindows returns the ready windows that declared
// window.workDoneProgress. Called with mu held.
func (m *Mux) progressWindows() map[*client]bool {
	told := map[*client]bool{}
	for c := range m.clients {
		if c.ready && c.wants("window/workDoneProgress/create") {
			told[c] = true
		}
	}
	return told
}
