package lspmux

import (
	"fmt"
	"strconv"

	"github.com/procref/procref/internal/wire"
)

// doc is one URI open in at least one client.
type doc struct {
	uri        string
	languageID string
	openers    map[*client]*cdoc
	lastEditor *client // the client whose text the backend has
	vmap       [8]verMap
	vnext      int
	lastDiag   []byte // the backend's last publishDiagnostics, version removed, for late openers
}

// cdoc is one client's copy of a document.
type cdoc struct {
	version int64
	text    string
	// view is viewText's line diff against the backend's text viewFor,
	// kept because every message to and from the window needs it
	// (textview.go)
	view              *lineView
	viewText, viewFor string
}

// verMap records which client version a backend version stands for.
type verMap struct {
	server int64
	c      *client
	client int64
}

type textDocumentItem struct {
	URI        string `json:"uri"`
	LanguageID string `json:"languageId"`
	Version    int64  `json:"version"`
	Text       string `json:"text"`
}

type didOpenParams struct {
	TextDocument textDocumentItem `json:"textDocument"`
}

type didChangeParams struct {
	TextDocument struct {
		URI     string `json:"uri"`
		Version int64  `json:"version"`
	} `json:"textDocument"`
	ContentChanges []contentChange `json:"contentChanges"`
}

// nextVersion returns the next backend version for uri and records which
// client version it stands for. Called with mu held.
func (m *Mux) nextVersion(d *doc, c *client, cv int64) int64 {
	m.verSeq[d.uri]++
	v := m.verSeq[d.uri]
	d.vmap[d.vnext%len(d.vmap)] = verMap{server: v, c: c, client: cv}
	d.vnext++
	return v
}

// clientVersion maps a backend version to c's version (false if that
// backend text was not c's).
func (d *doc) clientVersion(c *client, server int64) (int64, bool) {
	for _, vm := range d.vmap {
		if vm.server == server && vm.c == c && vm.server != 0 {
			return vm.client, true
		}
	}
	return 0, false
}

// openDoc records c's didOpen and returns what the backend gets: the
// original message with its version rewritten if c is the first to open
// the URI, a full-text change if c reopens it, else nothing. Called with
// mu held.
func (m *Mux) openDoc(c *client, p *didOpenParams, body []byte, verAt wire.Span) []byte {
	td := &p.TextDocument
	d := m.docs[td.URI]
	if d == nil {
		d = &doc{uri: td.URI, languageID: td.LanguageID, openers: map[*client]*cdoc{}}
		m.docs[td.URI] = d
	}
	cd := d.openers[c]
	if cd != nil { // opened twice: treat as a full replacement of its text
		cd.version, cd.text = td.Version, td.Text
		return m.syncFrom(d, c)
	}
	d.openers[c] = &cdoc{version: td.Version, text: td.Text}
	c.docs[td.URI] = d.openers[c]
	if len(d.openers) > 1 {
		// The backend has it open already and will not publish again
		// until something changes: give c the last diagnostics.
		if d.lastDiag != nil {
			c.send(m.lastDiagFor(c, d))
		}
		return nil
	}
	d.lastEditor = c
	v := m.nextVersion(d, c, td.Version)
	if !verAt.Ok() {
		return m.fullOpen(d, c, v)
	}
	return wire.Splice(body, verAt, strconv.AppendInt(nil, v, 10))
}

// changeDoc applies c's change to its copy and returns what the backend
// gets: the original change with the next version if the backend has c's
// text, else c's full text. Called with mu held.
func (m *Mux) changeDoc(c *client, p *didChangeParams, body []byte, verAt wire.Span) []byte {
	d := m.docs[p.TextDocument.URI]
	if d == nil || d.openers[c] == nil {
		c.log.Warn("lsp client changed a document it has not opened; dropped", "uri", p.TextDocument.URI)
		return nil
	}
	cd := d.openers[c]
	cd.text = applyChanges(cd.text, p.ContentChanges, m.enc)
	cd.version = p.TextDocument.Version
	if d.lastEditor != c || !verAt.Ok() {
		return m.syncFrom(d, c)
	}
	v := m.nextVersion(d, c, cd.version)
	return wire.Splice(body, verAt, strconv.AppendInt(nil, v, 10))
}

// syncFrom makes c the document's last editor and returns a didChange that
// gives the backend c's full text. Called with mu held.
func (m *Mux) syncFrom(d *doc, c *client) []byte {
	cd := d.openers[c]
	d.lastEditor = c
	v := m.nextVersion(d, c, cd.version)
	return msgNotification("textDocument/didChange", mustJSON(map[string]any{
		"textDocument":   map[string]any{"uri": d.uri, "version": v},
		"contentChanges": []map[string]string{{"text": cd.text}},
	}))
}

// fullOpen returns a didOpen carrying c's text as version v.
func (m *Mux) fullOpen(d *doc, c *client, v int64) []byte {
	return msgNotification("textDocument/didOpen", mustJSON(map[string]any{
		"textDocument": textDocumentItem{URI: d.uri, LanguageID: d.languageID, Version: v, Text: d.openers[c].text},
	}))
}

// closeDoc forgets c's copy of uri. The last close reaches the backend; if
// c's text was the backend's, another opener's text replaces it (when it
// differs). Called with mu held; live is false while the backend is down
// (the replay then uses the state as it is).
func (m *Mux) closeDoc(c *client, uri string, live bool) {
	d := m.docs[uri]
	delete(c.docs, uri)
	if d == nil || d.openers[c] == nil {
		return
	}
	old := d.openers[c]
	delete(d.openers, c)
	if len(d.openers) == 0 {
		delete(m.docs, uri)
		if live {
			m.toServer(msgNotification("textDocument/didClose", mustJSON(map[string]any{
				"textDocument": map[string]string{"uri": uri},
			})), nil)
		}
		return
	}
	if !c.left {
		// The backend, which still has it open for others, will not clear
		// c's diagnostics as it would on a real close: do it for it.
		c.send(msgNotification("textDocument/publishDiagnostics", mustJSON(map[string]any{
			"uri": uri, "diagnostics": []any{},
		})))
	}
	if d.lastEditor != c {
		return
	}
	// Hand the document to the most recently active remaining opener.
	var next *client
	for o := range d.openers {
		if next == nil || o.active > next.active {
			next = o
		}
	}
	d.lastEditor = next
	if d.openers[next].text != old.text && live {
		m.toServer(m.syncFrom(d, next), nil)
	}
}

// replayDocs opens every document at a freshly started backend with its
// last editor's text. Called with mu held.
func (m *Mux) replayDocs() {
	for _, d := range m.docs {
		c := d.lastEditor
		if c == nil || d.openers[c] == nil {
			for o := range d.openers {
				c = o
				break
			}
		}
		d.lastEditor = c
		v := m.nextVersion(d, c, d.openers[c].version)
		m.toServer(m.fullOpen(d, c, v), nil)
	}
}

// parseDidOpen reads didOpen params without a full decode (the text may
// be large): it returns the document and the span of its version within
// params.
func parseDidOpen(params []byte) (didOpenParams, wire.Span, error) {
	var p didOpenParams
	tdSp, ok, err := wire.Lookup(params, "textDocument")
	if err != nil || !ok {
		return p, wire.Span{}, fmt.Errorf("no textDocument: %v", err)
	}
	td := tdSp.Of(params)
	sp, err := wire.Members(td, "uri", "languageId", "version", "text")
	if err != nil {
		return p, wire.Span{}, err
	}
	item := &p.TextDocument
	if item.URI, err = wire.Unquote(sp[0].Of(td)); err != nil || item.URI == "" {
		return p, wire.Span{}, fmt.Errorf("bad uri: %v", err)
	}
	if sp[1].Ok() {
		item.LanguageID, _ = wire.Unquote(sp[1].Of(td))
	}
	if item.Text, err = wire.Unquote(sp[3].Of(td)); err != nil {
		return p, wire.Span{}, fmt.Errorf("bad text: %v", err)
	}
	var vs wire.Span
	if v, err := strconv.ParseInt(string(sp[2].Of(td)), 10, 64); err == nil {
		item.Version = v
		vs = wire.Span{Start: tdSp.Start + sp[2].Start, End: tdSp.Start + sp[2].End}
	}
	return p, vs, nil
}

// toOpeners sends a server notification about d's document to the clients
// that have it open; publishDiagnostics carries the backend's version,
// which each client gets as the version it knows (or none).
func (m *Mux) toOpeners(d *doc, f *wire.Fields, body []byte) {
	params := f.Params.Of(body)
	abs := func(sp wire.Span) wire.Span { return inParams(f, sp) }
	var verSp wire.Span
	var server int64
	if f.MethodName() == "textDocument/publishDiagnostics" {
		if sp, ok, _ := wire.Lookup(params, "version"); ok {
			if v, ok := parseHostID(sp.Of(params)); ok {
				verSp, server = abs(sp), v
			}
		}
	}
	var stripped []byte
	strip := func() []byte {
		if stripped == nil {
			np, _, _ := wire.DeleteMember(params, "version")
			stripped = wire.Splice(body, f.Params, np)
		}
		return stripped
	}
	if f.MethodName() == "textDocument/publishDiagnostics" {
		d.lastDiag = body
		if verSp.Ok() {
			d.lastDiag = strip()
		}
	}
	for c := range d.openers {
		if f.MethodName() == "textDocument/publishDiagnostics" {
			if b := m.viewDiagnostics(c, d, params); b != nil { // c's text differs (textview.go)
				c.send(b)
				continue
			}
		}
		if !verSp.Ok() {
			c.send(body)
			continue
		}
		if cv, ok := d.clientVersion(c, server); ok {
			c.send(wire.Splice(body, verSp, idToken(cv)))
			continue
		}
		c.send(strip())
	}
}
