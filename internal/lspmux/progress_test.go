package lspmux

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
)

// pylsp 1.x sends $/progress for tokens it never created with
// window/workDoneProgress/create. Such progress reaches the windows that
// declared window.workDoneProgress (begin through end, one token), and no
// other window.
func TestRealPylspProgressUncreatedToken(t *testing.T) {
	files := map[string]string{
		"a.py": "import os\n\n\ndef one():\n    return os.path.join('a', undefined_a)\n",
		"b.py": "import os\n\n\ndef two():\n    return os.path.join('b', undefined_b)\n",
	}
	r := newRealRig(t, "pylsp", nil, files, false)
	ctx := r.ctx
	noProgress := maps.Clone(fullCaps)
	noProgress["window"] = map[string]any{"showMessage": map[string]any{}}

	a, b := r.dial("a"), r.dial("b")
	if _, err := a.initialize(ctx, r.uri("")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.initializeCaps(ctx, r.uri(""), noProgress); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		c    *tclient
		name string
	}{{a, "a.py"}, {b, "b.py"}} {
		uri := r.uri(w.name)
		if err := w.c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{
			"uri": uri, "languageId": "python", "version": 1, "text": files[w.name]}}); err != nil {
			t.Fatal(err)
		}
		// pylsp sends a lint's progress before its diagnostics, and the
		// mux keeps the order per window.
		if _, err := w.c.waitNote(ctx, func(m wireMsg) bool {
			return m.Method == "textDocument/publishDiagnostics" && strings.Contains(string(m.Params), w.name)
		}); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[string][]string{}
	for _, m := range a.notesFor("$/progress") {
		var p struct {
			Token json.RawMessage `json:"token"`
			Value struct {
				Kind string `json:"kind"`
			} `json:"value"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			t.Fatal(err)
		}
		kinds[string(p.Token)] = append(kinds[string(p.Token)], p.Value.Kind)
	}
	if len(kinds) == 0 {
		t.Fatal("the window that declared window.workDoneProgress got no $/progress from pylsp")
	}
	ended := 0
	for tok, ks := range kinds {
		if ks[0] != "begin" {
			t.Errorf("token %s: first progress is %q, want begin (all: %v)", tok, ks[0], ks)
		}
		if ks[len(ks)-1] == "end" {
			ended++
		}
	}
	if ended == 0 {
		t.Errorf("no progress token ended before the diagnostics: %v", kinds)
	}
	if got := b.notesFor("$/progress"); len(got) != 0 {
		t.Errorf("window without window.workDoneProgress got %d $/progress: %s", len(got), got[0].Params)
	}
}
