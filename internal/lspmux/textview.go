package lspmux

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/procref/procref/internal/wire"
)

// Each window's own view of a shared document, part 2: text. The backend
// has one text per URI, its last editor's (documents.go). Another window
// with different text (unsaved edits on either side) sees the backend's
// answers through a line diff of the two texts (linediff.go): every line
// the diff matches is moved to its line in the other text; lines it does
// not match are a differing region. A request at a position in a
// differing region is refused with ContentModified; result elements
// (locations, diagnostics, symbols, hints, hierarchy items) with a
// position there are dropped; a WorkspaceEdit with an edit there is
// refused as a whole (half a rename is worse than none). Results the mux
// cannot map (semantic tokens, folding ranges) are refused for such a
// window. Characters need no mapping: matched lines are equal.

// lineView maps lines between a window's text and the backend's.
type lineView struct {
	c2s, s2c []int32 // per line of the window's / backend's text: the other's line, -1 if it differs
	sDiff    []int32 // sDiff[i]: lines before line i of the backend's text that differ
}

func newLineView(ctext, stext string) *lineView {
	v := &lineView{}
	v.c2s, v.s2c = matchLines(strings.Split(ctext, "\n"), strings.Split(stext, "\n"))
	v.sDiff = make([]int32, len(v.s2c)+1)
	for i, l := range v.s2c {
		v.sDiff[i+1] = v.sDiff[i]
		if l < 0 {
			v.sDiff[i+1]++
		}
	}
	return v
}

// editToClient reports whether the backend's lines s..e (an edit's range)
// are one run of shared lines in both texts: an edit's endpoints alone
// may map while a line it replaces differs.
func (v *lineView) editToClient(s, e int) bool {
	cs, ok1 := v.toClient(s)
	ce, ok2 := v.toClient(e)
	if !ok1 || !ok2 || e < s || ce-cs != e-s {
		return false
	}
	e = min(e, len(v.s2c)-1) // past the end: as the last line
	return s > e || v.sDiff[e+1] == v.sDiff[s]
}

// mapLine maps line through to; false in a differing region. A line past
// the end (a range ending after the last line) moves with the last line.
func mapLine(line int, to []int32, other int) (int, bool) {
	switch {
	case line < 0 || len(to) == 0:
		return line, false
	case line < len(to):
		l := to[line]
		return int(l), l >= 0
	}
	last := to[len(to)-1]
	return line - len(to) + other, last >= 0
}

func (v *lineView) toServer(line int) (int, bool) { return mapLine(line, v.c2s, len(v.s2c)) }
func (v *lineView) toClient(line int) (int, bool) { return mapLine(line, v.s2c, len(v.c2s)) }

// viewOf returns c's view of uri, or nil when c's text is the backend's
// (or c does not have uri open). Called with mu held.
func (m *Mux) viewOf(c *client, uri string) *lineView {
	d := m.docs[uri]
	if d == nil || d.openers[c] == nil || d.lastEditor == nil || d.lastEditor == c || d.openers[d.lastEditor] == nil {
		return nil
	}
	cd, st := d.openers[c], d.openers[d.lastEditor].text
	if cd.text == st {
		return nil
	}
	// Strings compare by pointer first: a hit costs no text scan.
	if cd.view == nil || cd.viewText != cd.text || cd.viewFor != st {
		cd.view, cd.viewText, cd.viewFor = newLineView(cd.text, st), cd.text, st
	}
	return cd.view
}

// errDiffers refuses a request at a position another window's unsaved
// edits have changed.
var errDiffers = errors.New("this part of the file differs from the text the shared language server has (another window has unsaved edits); save or undo them there")

// viewRequest maps the position and range of c's request about a
// document whose text differs from the backend's. It returns the edits to
// the request body (spans in params moved to the backend's lines) and the
// request's URI; err is errDiffers when the request cannot be answered for
// c's text. Called with mu held.
func (m *Mux) viewRequest(c *client, f *wire.Fields, body []byte) (edits []wire.Edit, uri string, err error) {
	params := f.Params.Of(body)
	sp, ok, _ := wire.Lookup(params, "textDocument", "uri")
	if !ok {
		// callHierarchy/incomingCalls, outgoingCalls, typeHierarchy/
		// supertypes, subtypes: the item the window was given
		if sp, ok, _ = wire.Lookup(params, "item", "uri"); !ok {
			return nil, "", nil
		}
	}
	uri, _ = wire.Unquote(sp.Of(params))
	v := m.viewOf(c, uri)
	if v == nil {
		return nil, uri, nil
	}
	switch f.MethodName() {
	case "textDocument/semanticTokens/full", "textDocument/semanticTokens/full/delta",
		"textDocument/semanticTokens/range", "textDocument/foldingRange":
		return nil, uri, errDiffers
	}
	// context: codeAction's diagnostics, ranges in the same document;
	// item: a hierarchy item's range and selectionRange
	for _, key := range []string{"position", "range", "context", "item"} {
		sp, ok, _ := wire.Lookup(params, key)
		if !ok {
			continue
		}
		var x any
		if json.Unmarshal(sp.Of(params), &x) != nil {
			continue
		}
		if !mapRanges(x, v.toServer) {
			return nil, uri, errDiffers
		}
		edits = append(edits, wire.Edit{At: inParams(f, sp), With: mustJSON(x)})
	}
	return edits, uri, nil
}

// differs reports whether c has a document open whose text is not the
// backend's. Called with mu held.
func (m *Mux) differs(c *client) bool {
	for uri, cd := range c.docs {
		d := m.docs[uri]
		if d != nil && d.lastEditor != nil && d.lastEditor != c && d.openers[d.lastEditor] != nil && d.openers[d.lastEditor].text != cd.text {
			return true
		}
	}
	return false
}

// viewJSON returns raw, a result or params from the backend for c, in
// c's view: positions in documents whose text differs moved to c's lines,
// elements in differing regions dropped (null if the whole value goes),
// and TextDocumentEdit versions in c's numbering (views.go). uri is the
// document of ranges that name none (the request's). err is errDiffers
// for a WorkspaceEdit touching a differing region, or errOtherText.
// changed is false when raw is returned as is. Called with mu held.
func (m *Mux) viewJSON(c *client, uri string, raw []byte) (out []byte, changed bool, err error) {
	hasView := m.differs(c)
	hasDC := bytes.Contains(raw, []byte(`"documentChanges"`))
	if !hasView && !hasDC {
		return raw, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return raw, false, nil // not ours to judge: passed on as the server sent it
	}
	if hasView {
		w := &viewWalk{m: m, c: c, views: map[string]*lineView{}}
		nv, ok := w.walk(uri, v, false)
		if w.strictFail {
			return nil, false, errDiffers
		}
		if !ok {
			nv = nil
		}
		v, changed = nv, true
	}
	if hasDC {
		ch, err := m.walkEdits(c, v)
		if err != nil {
			return nil, false, err
		}
		changed = changed || ch
	}
	if !changed {
		return raw, false, nil
	}
	out, err = json.Marshal(v)
	return out, err == nil, err
}

// viewWalk maps decoded JSON into one window's view.
type viewWalk struct {
	m          *Mux
	c          *client
	views      map[string]*lineView // per URI; nil: same text
	strictFail bool                 // an edit fell in a differing region
}

func (w *viewWalk) view(uri string) *lineView {
	v, ok := w.views[uri]
	if !ok {
		v = w.m.viewOf(w.c, uri)
		w.views[uri] = v
	}
	return v
}

// walk returns x mapped for documents named by uri (or by x's own uri,
// targetUri or textDocument.uri), false if x falls in a differing region.
// strict (inside a WorkspaceEdit) turns a dropped element into a failure
// of the whole.
func (w *viewWalk) walk(uri string, x any, strict bool) (any, bool) {
	switch y := x.(type) {
	case map[string]any:
		if ln, ok := y["line"].(json.Number); ok {
			if _, ok := y["character"]; ok {
				v := w.view(uri)
				if v == nil {
					return y, true
				}
				n, _ := ln.Int64()
				l, ok := v.toClient(int(n))
				y["line"] = l
				return y, ok
			}
		}
		for _, k := range []string{"uri", "targetUri"} {
			if u, ok := y[k].(string); ok {
				uri = u
			}
		}
		// textDocument: a TextDocumentEdit's; from: an incoming call's
		// caller, the document of its fromRanges
		for _, k := range []string{"textDocument", "from"} {
			if td, ok := y[k].(map[string]any); ok {
				if u, ok := td["uri"].(string); ok {
					uri = u
				}
			}
		}
		if _, ok := y["newText"]; ok && !w.editRanges(uri, y) {
			return y, false // TextEdit, InsertReplaceEdit, AnnotatedTextEdit
		}
		for k, e := range y {
			if k == "changes" {
				if ch, ok := e.(map[string]any); ok {
					for u, edits := range ch {
						ne, ok := w.walk(u, edits, true)
						if !ok {
							w.strictFail = true
							return y, false
						}
						ch[u] = ne
					}
					continue
				}
			}
			ne, ok := w.walk(uri, e, strict || k == "documentChanges")
			if !ok {
				return y, false
			}
			y[k] = ne
		}
	case []any:
		kept := y[:0]
		for _, e := range y {
			ne, ok := w.walk(uri, e, strict)
			if ok {
				kept = append(kept, ne)
			} else if strict {
				w.strictFail = true
				return y, false
			}
		}
		return kept, true
	}
	return x, true
}

// editRanges checks the ranges of a text edit e (range, or insert and
// replace) against c's view of uri: each must be a run of shared lines.
func (w *viewWalk) editRanges(uri string, e map[string]any) bool {
	v := w.view(uri)
	if v == nil {
		return true
	}
	for _, k := range []string{"range", "insert", "replace"} {
		r, _ := e[k].(map[string]any)
		st, _ := r["start"].(map[string]any)
		en, _ := r["end"].(map[string]any)
		sl, ok1 := st["line"].(json.Number)
		el, ok2 := en["line"].(json.Number)
		if !ok1 || !ok2 {
			continue
		}
		s, _ := sl.Int64()
		e, _ := el.Int64()
		if !v.editToClient(int(s), int(e)) {
			return false
		}
	}
	return true
}

// mapRanges maps every position ({line, character}) within x in place;
// false if one falls in the differing region.
func mapRanges(x any, to func(int) (int, bool)) bool {
	switch y := x.(type) {
	case map[string]any:
		if ln, ok := y["line"].(float64); ok {
			if _, ok := y["character"]; ok {
				l, ok := to(int(ln))
				y["line"] = l
				return ok
			}
		}
		for _, e := range y {
			if !mapRanges(e, to) {
				return false
			}
		}
	case []any:
		for _, e := range y {
			if !mapRanges(e, to) {
				return false
			}
		}
	}
	return true
}

// viewDiagnostics returns the publishDiagnostics c gets when its text of
// d differs from the backend's: the diagnostics in shared lines, moved to
// c's lines, without a version (they are for no version c has); nil when
// c's text is the backend's. Called with mu held.
func (m *Mux) viewDiagnostics(c *client, d *doc, params []byte) []byte {
	if m.viewOf(c, d.uri) == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.UseNumber()
	var p map[string]any
	if dec.Decode(&p) != nil {
		return nil
	}
	delete(p, "version")
	w := &viewWalk{m: m, c: c, views: map[string]*lineView{}}
	diags, _ := w.walk(d.uri, p["diagnostics"], false)
	if diags == nil {
		diags = []any{}
	}
	p["diagnostics"] = diags
	return msgNotification("textDocument/publishDiagnostics", mustJSON(p))
}

// lastDiagFor is d's last diagnostics as c, a late opener, gets them: in
// c's view where its text differs. Called with mu held.
func (m *Mux) lastDiagFor(c *client, d *doc) []byte {
	if f, err := wire.ScanTrusted(d.lastDiag); err == nil {
		if b := m.viewDiagnostics(c, d, f.Params.Of(d.lastDiag)); b != nil {
			return b
		}
	}
	return d.lastDiag
}
