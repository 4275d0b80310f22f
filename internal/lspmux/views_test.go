package lspmux

import (
	"encoding/json"
	"errors"
	"testing"
)

// renameHook makes the fake server answer textDocument/rename the way
// gopls does: a WorkspaceEdit with documentChanges at the server's
// current version of the document.
func renameHook(s *fakeServer, method string, id, params json.RawMessage) bool {
	if method != "textDocument/rename" {
		return false
	}
	var p struct {
		TextDocument struct{ URI string } `json:"textDocument"`
	}
	json.Unmarshal(params, &p)
	s.mu.Lock()
	var v int64
	if d := s.open[p.TextDocument.URI]; d != nil {
		v = d.version
	}
	s.mu.Unlock()
	s.reply(id, editAt(p.TextDocument.URI, v))
	return true
}

func editAt(uri string, v int64) map[string]any {
	return map[string]any{"documentChanges": []any{map[string]any{
		"textDocument": map[string]any{"uri": uri, "version": v},
		"edits":        []any{map[string]any{"range": textRange{End: position{Character: 1}}, "newText": "y"}},
	}}}
}

// editVersion reads the one TextDocumentEdit version of a WorkspaceEdit.
func editVersion(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var we struct {
		DocumentChanges []struct {
			TextDocument struct {
				Version int64 `json:"version"`
			} `json:"textDocument"`
		} `json:"documentChanges"`
	}
	if err := json.Unmarshal(raw, &we); err != nil || len(we.DocumentChanges) != 1 {
		t.Fatalf("not a one-document WorkspaceEdit: %s (%v)", raw, err)
	}
	return we.DocumentChanges[0].TextDocument.Version
}

func fullChange(c *tclient, uri string, version int, text string) error {
	return c.notify("textDocument/didChange", map[string]any{
		"textDocument":   map[string]any{"uri": uri, "version": version},
		"contentChanges": []any{map[string]any{"text": text}},
	})
}

// Two windows on one file: every WorkspaceEdit a window gets (rename
// results, workspace/applyEdit) carries that window's own version, and an
// edit computed on text a window does not have is refused, not applied at
// the wrong place.
func TestWorkspaceEditVersionsPerWindow(t *testing.T) {
	h := newHarness(t, func(cfg *Config, f *fakeFarm) { f.hook = renameHook })
	a, b := h.join("a", "r"), h.join("b", "r")
	const uri = "file:///ws/r/x.go"
	rename := func(c *tclient) (json.RawMessage, error) {
		return c.call(h.ctx, "textDocument/rename", map[string]any{
			"textDocument": map[string]any{"uri": uri}, "position": position{}, "newName": "y",
		})
	}
	a.didOpen(uri, "x := 1\n", 0)
	b.didOpen(uri, "x := 1\n", 5)
	h.sync(a)
	h.sync(b)
	if res, err := rename(a); err != nil || editVersion(t, res) != 0 {
		t.Fatalf("a's rename before edits: %s %v, want version 0", res, err)
	}
	if res, err := rename(b); err != nil || editVersion(t, res) != 5 {
		t.Fatalf("b's rename before edits: %s %v, want version 5", res, err)
	}
	fullChange(a, uri, 7, "x := 2\n")
	h.sync(a)
	if res, err := rename(a); err != nil || editVersion(t, res) != 7 {
		t.Fatalf("a's rename after its edit: %s %v, want version 7", res, err)
	}
	// the server has a's text, which b does not: b must not get that edit
	var re *rpcError
	if res, err := rename(b); !errors.As(err, &re) || re.Code != codeContentModified {
		t.Fatalf("b's rename on a's unsaved text: %s %v, want ContentModified", res, err)
	}
	fullChange(b, uri, 6, "x := 2\n") // b now has the same text
	h.sync(b)
	if res, err := rename(a); err != nil || editVersion(t, res) != 7 {
		t.Fatalf("a's rename on the same text as b's: %s %v, want version 7", res, err)
	}
	if res, err := rename(b); err != nil || editVersion(t, res) != 6 {
		t.Fatalf("b's rename after its edit: %s %v, want version 6", res, err)
	}
	// workspace/applyEdit from the server reaches a window (b, the most
	// recently active) in that window's version
	s := h.server()
	s.mu.Lock()
	sv := s.open[uri].version
	s.mu.Unlock()
	answered := s.request("workspace/applyEdit", map[string]any{"edit": editAt(uri, sv)})
	m, err := b.waitSrvReq(h.ctx, func(m wireMsg) bool { return m.Method == "workspace/applyEdit" })
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Edit json.RawMessage }
	json.Unmarshal(m.Params, &p)
	if got := editVersion(t, p.Edit); got != 6 {
		t.Fatalf("b got applyEdit at version %d, want 6", got)
	}
	select {
	case <-answered:
	case <-h.ctx.Done():
		t.Fatal("applyEdit not answered")
	}
}
