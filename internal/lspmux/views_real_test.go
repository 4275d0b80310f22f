package lspmux

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// docChangeCaps is fullCaps with WorkspaceEdit documentChanges, as
// eglot and Neovim declare it: servers then send versioned edits.
func docChangeCaps() map[string]any {
	caps := maps.Clone(fullCaps)
	ws := maps.Clone(fullCaps["workspace"].(map[string]any))
	ws["workspaceEdit"] = map[string]any{"documentChanges": true}
	caps["workspace"] = ws
	return caps
}

// realRenameVersions runs two windows on one file of a real server in mux
// mode: every rename result a window gets carries its own version, and a
// window whose text differs from the server's gets the edits at its own
// lines.
// wholeFile: the server's rename edit replaces the whole text (pylsp's
// jedi rename), which cannot be mapped into b's text: b gets
// ContentModified instead.
func realRenameVersions(t *testing.T, bin string, args []string, name, before, after string, line, char int, wholeFile bool) {
	r := newRealRig(t, bin, args, map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", name: before}, false)
	a, b := r.dial("a"), r.dial("b")
	root := r.uri("")
	for _, c := range []*tclient{a, b} {
		if _, err := c.initializeCaps(r.ctx, root, docChangeCaps()); err != nil {
			t.Fatal(err)
		}
	}
	uri := r.uri(name)
	lang := map[string]string{"gopls": "go", "pylsp": "python"}[bin]
	open := func(c *tclient, v int) {
		c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": uri, "languageId": lang, "version": v, "text": before}})
	}
	open(a, 0)
	open(b, 3)
	rename := func(c *tclient, line int, newName string) (json.RawMessage, error) {
		return c.call(r.ctx, "textDocument/rename", map[string]any{
			"textDocument": map[string]any{"uri": uri}, "position": position{Line: line, Character: char}, "newName": newName,
		})
	}
	if res, err := rename(a, line, "n1"); err != nil || editVersion(t, res) != 0 {
		t.Fatalf("a: rename before edits = %s, %v; want version 0", res, err)
	}
	if res, err := rename(b, line, "n2"); err != nil || editVersion(t, res) != 3 {
		t.Fatalf("b: rename before edits = %s, %v; want version 3", res, err)
	}
	fullChange(a, uri, 7, after) // after has one more line at the top
	if res, err := rename(a, line+1, "n3"); err != nil || editVersion(t, res) != 7 {
		t.Fatalf("a: rename after its edit = %s, %v; want version 7", res, err)
	}
	// The server has a's text; b's request and its result go through the
	// line diff: b's position moved down one line, the edits moved back to
	// b's lines, in b's version.
	res, err := rename(b, line, "n4")
	var re *rpcError
	if wholeFile {
		if !errors.As(err, &re) || re.Code != codeContentModified {
			t.Fatalf("b: whole-file rename while the server has a's unsaved text = %s, %v; want ContentModified", res, err)
		}
	} else if err != nil || editVersion(t, res) != 3 {
		t.Fatalf("b: rename while the server has a's unsaved text = %s, %v; want version 3", res, err)
	}
	if !wholeFile {
		if got, want := editLines(t, res), linesWith(before, "greeting"); !slices.Equal(got, want) {
			t.Fatalf("b: rename edits at lines %v, want %v (b's text) in %s", got, want, res)
		}
	}
	fullChange(b, uri, 4, after)
	if res, err := rename(b, line+1, "n5"); err != nil || editVersion(t, res) != 4 {
		t.Fatalf("b: rename after the same edit = %s, %v; want version 4", res, err)
	}
	if res, err := rename(a, line+1, "n6"); err != nil || editVersion(t, res) != 7 {
		t.Fatalf("a: rename on b's identical text = %s, %v; want version 7", res, err)
	}
}

// editLines returns the start lines of a one-document WorkspaceEdit's edits, sorted.
func editLines(t *testing.T, raw json.RawMessage) []int {
	var we struct {
		DocumentChanges []struct {
			Edits []struct{ Range textRange } `json:"edits"`
		} `json:"documentChanges"`
	}
	if err := json.Unmarshal(raw, &we); err != nil || len(we.DocumentChanges) != 1 {
		t.Fatalf("not a one-document WorkspaceEdit: %s (%v)", raw, err)
	}
	var lines []int
	for _, e := range we.DocumentChanges[0].Edits {
		lines = append(lines, e.Range.Start.Line)
	}
	slices.Sort(lines)
	return lines
}

// linesWith returns the lines of text that contain word.
func linesWith(text, word string) []int {
	var lines []int
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			lines = append(lines, i)
		}
	}
	return lines
}

func TestRealGoplsRenameVersions(t *testing.T) {
	before := "package m\n\nfunc greeting() string { return \"hi\" }\n\nvar _ = greeting()\n"
	realRenameVersions(t, "gopls", nil, "c.go", before, "// edited\n"+before, 2, 6, false)
}

func TestRealPylspRenameVersions(t *testing.T) {
	before := "def greeting():\n    return 'hi'\n\n\nprint(greeting())\n"
	realRenameVersions(t, "pylsp", nil, "c.py", before, "# edited\n"+before, 0, 5, true)
}

// realFolderKeepsEdits: with --share=global, a window with unsaved edits
// adds a workspace folder; the server (told only "+folder") keeps the
// edited text: a hover on a symbol only the unsaved text defines works.
func realFolderKeepsEdits(t *testing.T, bin, name, before, after string, line, char int, want string) {
	r := newRealRig(t, bin, nil, map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", name: before}, true)
	a := r.dial("a")
	if _, err := a.initializeCaps(r.ctx, r.uri(""), docChangeCaps()); err != nil {
		t.Fatal(err)
	}
	uri := r.uri(name)
	lang := map[string]string{"gopls": "go", "pylsp": "python"}[bin]
	a.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": uri, "languageId": lang, "version": 1, "text": before}})
	fullChange(a, uri, 2, after)
	other := t.TempDir()
	a.notify("workspace/didChangeWorkspaceFolders", map[string]any{"event": map[string]any{
		"added": []folder{{URI: "file://" + other, Name: "other"}}, "removed": []folder{},
	}})
	res, err := a.hover(r.ctx, uri, line, char)
	if err != nil || !strings.Contains(string(res), want) {
		t.Fatalf("hover on a symbol of the unsaved text after a folder change = %s, %v; want it to mention %q", res, err, want)
	}
	if n := r.tap().count("workspace/didChangeWorkspaceFolders", ""); n != 1 {
		t.Errorf("server got %d folder changes, want 1", n)
	}
}

func TestRealPylspFolderChangeKeepsEdits(t *testing.T) {
	before := "def one():\n    return 1\n"
	after := before + "\n\ndef unsaved_fn():\n    \"\"\"Unsaved doc.\"\"\"\n    return 2\n\n\nunsaved_fn()\n"
	realFolderKeepsEdits(t, "pylsp", "c.py", before, after, 9, 2, "Unsaved doc")
}

func TestRealGoplsFolderChangeKeepsEdits(t *testing.T) {
	before := "package m\n"
	after := before + "\n// UnsavedFn is unsaved.\nfunc UnsavedFn() int { return 2 }\n\nvar _ = UnsavedFn()\n"
	realFolderKeepsEdits(t, "gopls", "c.go", before, after, 5, 10, "UnsavedFn is unsaved")
}
