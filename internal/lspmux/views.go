package lspmux

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/procref/procref/internal/wire"
)

// Each window's own view of a shared document, part 1: versions. The
// backend numbers a URI's texts itself (nextVersion); a window knows only
// its own numbers. Whatever carries a document version to a window
// (TextDocumentEdit in a WorkspaceEdit's documentChanges: rename, code
// actions, workspace/applyEdit) is rewritten to that window's version of
// the same text, or refused when the backend computed it on text the
// window does not have.

// errOtherText says a result was computed on text the window does not
// have (another window has unsaved edits of that file).
// codeContentModified is LSP's ContentModified: the result no longer fits
// the document the window has.
const codeContentModified = -32801

var errOtherText = errors.New("the language server computed this on text another window has (unsaved edits there); save or undo them, then retry")

// walkEdits rewrites the versions of every documentChanges array within
// v, reporting whether it changed anything.
func (m *Mux) walkEdits(c *client, v any) (bool, error) {
	changed := false
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == "documentChanges" {
				if list, ok := e.([]any); ok {
					for _, dc := range list {
						ch, err := m.editVersion(c, dc)
						if err != nil {
							return false, err
						}
						changed = changed || ch
					}
					continue
				}
			}
			ch, err := m.walkEdits(c, e)
			if err != nil {
				return false, err
			}
			changed = changed || ch
		}
	case []any:
		for _, e := range x {
			ch, err := m.walkEdits(c, e)
			if err != nil {
				return false, err
			}
			changed = changed || ch
		}
	}
	return changed, nil
}

// editVersion rewrites one documentChanges entry: a TextDocumentEdit's
// textDocument {uri, version}; file operations (create, rename, delete)
// carry no version.
func (m *Mux) editVersion(c *client, dc any) (bool, error) {
	e, _ := dc.(map[string]any)
	td, _ := e["textDocument"].(map[string]any)
	uri, _ := td["uri"].(string)
	num, ok := td["version"].(json.Number)
	if uri == "" || !ok {
		return false, nil // no version (null) or no identifier: nothing to map
	}
	server, err := num.Int64()
	if err != nil {
		return false, nil
	}
	cv, known, err := m.versionFor(c, uri, server)
	if err != nil || !known {
		return false, err
	}
	if cv == nil {
		td["version"] = nil
	} else {
		td["version"] = json.Number(strconv.FormatInt(*cv, 10))
	}
	return true, nil
}

// versionFor maps backend version server of uri to c's version: the
// version c gave that same text, or c's current version when c's text is
// the backend's current one. nil: c does not have the document open (an
// editor then edits the file as on disk). known is false for a URI no
// window has open (the backend's own numbering stands). errOtherText: the
// text was another window's and differs from c's. Called with mu held.
func (m *Mux) versionFor(c *client, uri string, server int64) (cv *int64, known bool, err error) {
	d := m.docs[uri]
	if d == nil {
		return nil, false, nil
	}
	cd := d.openers[c]
	if cd == nil {
		return nil, true, nil
	}
	if v, ok := d.clientVersion(c, server); ok {
		return &v, true, nil
	}
	if server == m.verSeq[uri] {
		// the backend's current text: c's own, or one viewJSON has
		// mapped the edit's positions from into c's text
		v := cd.version
		return &v, true, nil
	}
	return nil, true, errOtherText
}

// viewResult is serverResponse's step for a result to c: it returns the
// body c gets in c's view (viewJSON), or an error answer when the result
// was computed on text c does not have; false when body needs no change.
// uri is the request's document. Takes mu.
func (m *Mux) viewResult(c *client, f *wire.Fields, body, id []byte, uri string) ([]byte, bool) {
	if !f.Result.Ok() {
		return nil, false
	}
	m.mu.Lock()
	out, changed, err := m.viewJSON(c, uri, f.Result.Of(body))
	m.mu.Unlock()
	if err != nil {
		return msgError(id, codeContentModified, err.Error()), true
	}
	if !changed {
		return nil, false
	}
	return msgResult(id, out), true
}
