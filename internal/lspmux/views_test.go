package lspmux

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// lineHoverHook answers hover with the server's text of the asked line
// and a range over that line, as a real server's answer is placed.
func lineHoverHook(s *fakeServer, method string, id, params json.RawMessage) bool {
	if method != "textDocument/hover" {
		return false
	}
	var p struct {
		TextDocument struct{ URI string } `json:"textDocument"`
		Position     position             `json:"position"`
	}
	json.Unmarshal(params, &p)
	s.mu.Lock()
	lines := strings.Split(s.open[p.TextDocument.URI].text, "\n")
	s.mu.Unlock()
	l := p.Position.Line
	s.reply(id, map[string]any{"contents": lines[l], "range": textRange{Start: position{Line: l}, End: position{Line: l, Character: len(lines[l])}}})
	return true
}

// Two windows on one file, a with unsaved edits the server has: b's
// hovers are computed at b's line in the server's text and placed at b's
// line; a hover on a line a changed is refused; b's diagnostics are moved
// to its lines and those on changed lines dropped, while a gets them all.
func TestTwoWindowsOwnText(t *testing.T) {
	h := newHarness(t, func(cfg *Config, f *fakeFarm) { f.hook = lineHoverHook })
	a, b := h.join("a", "r"), h.join("b", "r")
	const uri = "file:///ws/r/x.c"
	a.didOpen(uri, "l0\nl1\nl2\nl3\n", 1)
	b.didOpen(uri, "l0\nl1\nl2\nl3\n", 1)
	fullChange(a, uri, 2, "l0\nl1\nX2\nextra\nl3\n") // unsaved in a
	h.sync(a)
	h.sync(b)
	var hv struct {
		Contents string
		Range    textRange
	}
	res, err := b.hover(h.ctx, uri, 3, 0)
	if err != nil || json.Unmarshal(res, &hv) != nil || hv.Contents != "l3" || hv.Range.Start.Line != 3 {
		t.Fatalf("b: hover on its line 3 = %s, %v; want l3 at line 3", res, err)
	}
	res, err = b.hover(h.ctx, uri, 1, 0)
	if err != nil || json.Unmarshal(res, &hv) != nil || hv.Contents != "l1" || hv.Range.Start.Line != 1 {
		t.Fatalf("b: hover on its line 1 = %s, %v; want l1 at line 1", res, err)
	}
	var re *rpcError
	if res, err := b.hover(h.ctx, uri, 2, 0); !errors.As(err, &re) || re.Code != codeContentModified {
		t.Fatalf("b: hover on a line a changed = %s, %v; want ContentModified", res, err)
	}
	res, err = a.hover(h.ctx, uri, 3, 0)
	if err != nil || json.Unmarshal(res, &hv) != nil || hv.Contents != "extra" || hv.Range.Start.Line != 3 {
		t.Fatalf("a: hover on its line 3 = %s, %v; want extra at line 3", res, err)
	}

	diagAt := func(lines ...int) []any {
		var ds []any
		for _, l := range lines {
			ds = append(ds, map[string]any{"range": textRange{Start: position{Line: l}, End: position{Line: l, Character: 1}}, "message": fmt.Sprint("at ", l)})
		}
		return ds
	}
	h.server().notify("textDocument/publishDiagnostics", map[string]any{"uri": uri, "version": 2, "diagnostics": diagAt(0, 2, 4)})
	lines := func(c *tclient) ([]int, bool) {
		m, err := c.waitNote(h.ctx, func(m wireMsg) bool {
			return m.Method == "textDocument/publishDiagnostics" && strings.Contains(string(m.Params), "at 0")
		})
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Version     *int64
			Diagnostics []struct{ Range textRange }
		}
		json.Unmarshal(m.Params, &p)
		var ls []int
		for _, d := range p.Diagnostics {
			ls = append(ls, d.Range.Start.Line)
		}
		return ls, p.Version != nil
	}
	if got, ver := lines(a); !slices.Equal(got, []int{0, 2, 4}) || !ver {
		t.Errorf("a: diagnostics at %v (version %v), want 0 2 4 with its version", got, ver)
	}
	if got, ver := lines(b); !slices.Equal(got, []int{0, 3}) || ver {
		t.Errorf("b: diagnostics at %v (version %v), want 0 and 3 (its lines; the changed line dropped), no version", got, ver)
	}
}

// A code action request from a window whose text differs carries its
// range and its context's diagnostics moved to the server's lines.
func TestCodeActionContextMapped(t *testing.T) {
	got := make(chan json.RawMessage, 1)
	h := newHarness(t, func(cfg *Config, f *fakeFarm) {
		f.hook = func(s *fakeServer, method string, id, params json.RawMessage) bool {
			if method != "textDocument/codeAction" {
				return false
			}
			got <- params
			s.reply(id, []any{})
			return true
		}
	})
	a, b := h.join("a", "r"), h.join("b", "r")
	const uri = "file:///ws/r/x.c"
	a.didOpen(uri, "l0\nl1\n", 1)
	b.didOpen(uri, "l0\nl1\n", 1)
	fullChange(a, uri, 2, "new\nl0\nl1\n") // the server has a's text
	h.sync(a)
	rng := textRange{Start: position{Line: 1}, End: position{Line: 1, Character: 2}}
	if _, err := b.call(h.ctx, "textDocument/codeAction", map[string]any{
		"textDocument": map[string]any{"uri": uri}, "range": rng,
		"context": map[string]any{"diagnostics": []any{map[string]any{"range": rng, "message": "m"}}},
	}); err != nil {
		t.Fatal(err)
	}
	var p struct {
		Range   textRange
		Context struct{ Diagnostics []struct{ Range textRange } }
	}
	json.Unmarshal(<-got, &p)
	if p.Range.Start.Line != 2 || len(p.Context.Diagnostics) != 1 || p.Context.Diagnostics[0].Range.Start.Line != 2 {
		t.Fatalf("server got range line %d, context %+v; want both at line 2", p.Range.Start.Line, p.Context)
	}
}

// Two windows on one file, a with unsaved edits in two places (top and
// bottom) that the server has: b's lines between them are still shared,
// so b gets answers there (a one-region diff refused them all); each
// differing region is refused or dropped on its own. Hierarchy items go
// to the server in its lines and come back in b's; an edit is kept only
// when every line it replaces is shared.
func TestTwoWindowsManyRegions(t *testing.T) {
	const uri = "file:///ws/r/x.c"
	items := make(chan json.RawMessage, 1)
	h := newHarness(t, func(cfg *Config, f *fakeFarm) {
		f.hook = func(s *fakeServer, method string, id, params json.RawMessage) bool {
			switch method {
			case "callHierarchy/incomingCalls":
				items <- params
				// the caller at server line 4 (b's 3), called at 4 and at 6 (X5: differs in b)
				from := map[string]any{"uri": uri, "name": "f", "kind": 12,
					"range":          textRange{Start: position{Line: 4}, End: position{Line: 5}},
					"selectionRange": textRange{Start: position{Line: 4}, End: position{Line: 4, Character: 1}}}
				s.reply(id, []any{map[string]any{"from": from, "fromRanges": []any{
					textRange{Start: position{Line: 4}, End: position{Line: 4, Character: 1}},
					textRange{Start: position{Line: 6}, End: position{Line: 6, Character: 1}}}}})
				return true
			case "textDocument/formatting":
				edit := func(s, e int) map[string]any {
					return map[string]any{"range": textRange{Start: position{Line: s}, End: position{Line: e}}, "newText": "z"}
				}
				// 3-4: shared; 5-7 has line 6 (X5: b's text differs there) inside
				s.reply(id, []any{edit(3, 4), edit(5, 7)})
				return true
			}
			return lineHoverHook(s, method, id, params)
		}
	})
	a, b := h.join("a", "r"), h.join("b", "r")
	const text = "l0\nl1\nl2\nl3\nl4\nl5\nl6\n"
	a.didOpen(uri, text, 1)
	b.didOpen(uri, text, 1)
	// a: a line inserted at the top, l5 changed; server text is a's
	fullChange(a, uri, 2, "new\nl0\nl1\nl2\nl3\nl4\nX5\nl6\n")
	h.sync(a)
	h.sync(b)
	var hv struct {
		Contents string
		Range    textRange
	}
	for _, l := range []int{0, 2, 3, 6} {
		res, err := b.hover(h.ctx, uri, l, 0)
		want := fmt.Sprint("l", l)
		if err != nil || json.Unmarshal(res, &hv) != nil || hv.Contents != want || hv.Range.Start.Line != l {
			t.Fatalf("b: hover on its line %d = %s, %v; want %s at line %d", l, res, err, want, l)
		}
	}
	var re *rpcError
	if res, err := b.hover(h.ctx, uri, 5, 0); !errors.As(err, &re) || re.Code != codeContentModified {
		t.Fatalf("b: hover on line 5 (a changed it) = %s, %v; want ContentModified", res, err)
	}

	item := map[string]any{"uri": uri, "name": "g", "kind": 12,
		"range":          textRange{Start: position{Line: 2}, End: position{Line: 3}},
		"selectionRange": textRange{Start: position{Line: 2}, End: position{Line: 2, Character: 1}}}
	res, err := b.call(h.ctx, "callHierarchy/incomingCalls", map[string]any{"item": item})
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Item struct{ Range, SelectionRange textRange }
	}
	json.Unmarshal(<-items, &sent)
	if sent.Item.Range.Start.Line != 3 || sent.Item.Range.End.Line != 4 || sent.Item.SelectionRange.Start.Line != 3 {
		t.Fatalf("server got the item at %+v, want its lines 3-4", sent.Item)
	}
	var calls []struct {
		From       struct{ Range textRange }
		FromRanges []textRange
	}
	if json.Unmarshal(res, &calls) != nil || len(calls) != 1 || calls[0].From.Range.Start.Line != 3 ||
		len(calls[0].FromRanges) != 1 || calls[0].FromRanges[0].Start.Line != 3 {
		t.Fatalf("b: incoming calls %s; want the caller at line 3 and only its call at line 3", res)
	}

	res, err = b.call(h.ctx, "textDocument/formatting", map[string]any{"textDocument": map[string]any{"uri": uri}, "options": map[string]any{"tabSize": 4, "insertSpaces": true}})
	var edits []struct{ Range textRange }
	if err != nil || json.Unmarshal(res, &edits) != nil || len(edits) != 1 || edits[0].Range.Start.Line != 2 || edits[0].Range.End.Line != 3 {
		t.Fatalf("b: formatting %s, %v; want only the edit of its shared lines 2-3", res, err)
	}
}
