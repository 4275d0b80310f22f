package lspmux

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf16"
)

// encText has multi-byte characters (3-byte CJK, a 4-byte emoji: two
// UTF-16 units) before the identifiers the test hovers and edits, so UTF-8,
// UTF-16 and UTF-32 columns all differ there.
const encText = "int add(int a, int b) { return a + b; }\n" +
	"int f(void) { const char *s = \"日本語😀\"; return add(1, 2) + missing; }\n"

// encWindow is an editor window as far as positions go: what it offers in
// initialize and the encoding it then counts columns in.
type encWindow struct {
	name  string
	caps  map[string]any
	fixed string // the encoding it always uses (eglot); "" = what the result says
	enc   string
	text  string
	ver   int
	c     *tclient
}

// nvimWindow offers what nvim-lspconfig's clangd config offers (UTF-8
// first, in clangd's offsetEncoding and LSP 3.17's positionEncodings) and
// uses what the server's answer says.
func nvimWindow() *encWindow {
	return &encWindow{name: "nvim", caps: map[string]any{
		"offsetEncoding": []string{"utf-8", "utf-16"},
		"general":        map[string]any{"positionEncodings": []string{"utf-8", "utf-16", "utf-32"}},
	}}
}

// eglotWindow offers nothing and counts UTF-16, as Emacs eglot does.
func eglotWindow() *encWindow {
	return &encWindow{name: "eglot", caps: map[string]any{}, fixed: "utf-16"}
}

// col returns the column of the first sub on line in the window's encoding.
func (w *encWindow) col(line int, sub string) int {
	l := strings.Split(w.text, "\n")[line]
	i := strings.Index(l, sub)
	if i < 0 {
		panic(sub + " not on line")
	}
	switch w.enc {
	case "utf-8":
		return i
	case "utf-32":
		return len([]rune(l[:i]))
	}
	return len(utf16.Encode([]rune(l[:i])))
}

func (w *encWindow) initialize(ctx context.Context, rootURI string) error {
	res, err := w.c.call(ctx, "initialize", map[string]any{
		"processId": nil, "rootUri": rootURI, "capabilities": w.caps,
		"workspaceFolders": []folder{{URI: rootURI, Name: "root"}},
	})
	if err != nil {
		return err
	}
	var r struct {
		OffsetEncoding string `json:"offsetEncoding"`
		Capabilities   struct {
			PositionEncoding string `json:"positionEncoding"`
		} `json:"capabilities"`
	}
	json.Unmarshal(res, &r)
	if r.OffsetEncoding != "" && r.OffsetEncoding != "utf-16" || r.Capabilities.PositionEncoding != "utf-16" {
		return fmt.Errorf("%s told offsetEncoding %q positionEncoding %q, want utf-16", w.name, r.OffsetEncoding, r.Capabilities.PositionEncoding)
	}
	w.enc = w.fixed
	if w.enc == "" {
		w.enc = r.Capabilities.PositionEncoding
	}
	return w.c.notify("initialized", map[string]any{})
}

// replace edits the window's buffer and tells the server, in the window's
// encoding.
func (w *encWindow) replace(uri string, line int, old, new string) error {
	a := w.col(line, old)
	b := a + (&encWindow{enc: w.enc, text: old + "$"}).col(0, "$")
	w.text = strings.Replace(w.text, old, new, 1)
	w.ver++
	return w.c.notify("textDocument/didChange", map[string]any{
		"textDocument": map[string]any{"uri": uri, "version": w.ver},
		"contentChanges": []any{map[string]any{
			"range": map[string]any{"start": map[string]int{"line": line, "character": a}, "end": map[string]int{"line": line, "character": b}},
			"text":  new,
		}},
	})
}

type lspDiag struct {
	Message string `json:"message"`
	Range   struct {
		Start position `json:"start"`
	} `json:"range"`
}

// waitDiag waits until the window's diagnostics for uri are exactly one,
// naming ident, at ident's column in the window's buffer and encoding.
func (w *encWindow) waitDiag(ctx context.Context, uri, ident string) error {
	var last []lspDiag
	_, err := w.c.waitNote(ctx, func(m wireMsg) bool {
		var p struct {
			URI         string    `json:"uri"`
			Diagnostics []lspDiag `json:"diagnostics"`
		}
		json.Unmarshal(m.Params, &p)
		if m.Method != "textDocument/publishDiagnostics" || p.URI != uri {
			return false
		}
		last = p.Diagnostics
		return len(p.Diagnostics) == 1 && strings.Contains(p.Diagnostics[0].Message, "'"+ident+"'")
	})
	if err != nil {
		return fmt.Errorf("%s: no single diagnostic for %s (last: %+v): %w", w.name, ident, last, err)
	}
	d := last[0]
	if want := w.col(1, ident); d.Range.Start.Line != 1 || d.Range.Start.Character != want {
		return fmt.Errorf("%s: diagnostic for %s at %d:%d, want 1:%d (%s)", w.name, ident, d.Range.Start.Line, d.Range.Start.Character, want, w.enc)
	}
	return nil
}

// hoverAdd hovers add( on line 1 and wants clangd's answer for function add,
// with its range at add's column.
func (w *encWindow) hoverAdd(ctx context.Context, uri string) error {
	at := w.col(1, "add(")
	res, err := w.c.hover(ctx, uri, 1, at+1)
	if err != nil {
		return err
	}
	var h struct {
		Range struct {
			Start position `json:"start"`
		} `json:"range"`
	}
	json.Unmarshal(res, &h)
	if !strings.Contains(string(res), "function add") || h.Range.Start != (position{Line: 1, Character: at}) {
		return fmt.Errorf("%s: hover on add at 1:%d (%s) = %s", w.name, at, w.enc, res)
	}
	return nil
}

// TestRealClangdMixedEncodings: a window offering UTF-8 first (Neovim with
// nvim-lspconfig) and one that speaks UTF-16 only (eglot) on one clangd, in
// both orders and with the global share scope: each is told utf-16, hover
// and diagnostic columns are right on a line with multi-byte characters,
// and after edits from both windows the server's text is the last editing
// window's buffer (its diagnostics name only that buffer's identifier, at
// the right column).
func TestRealClangdMixedEncodings(t *testing.T) {
	for _, tc := range []struct {
		name      string
		nvimFirst bool
		global    bool
	}{{"nvim-first", true, false}, {"eglot-first", false, false}, {"global", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"compile_flags.txt": "-xc\n-std=c11\n", "a.c": encText}
			r := newRealRig(t, "clangd", nil, files, tc.global)
			ctx := r.ctx
			nv, eg := nvimWindow(), eglotWindow()
			order := []*encWindow{nv, eg}
			if !tc.nvimFirst {
				order = []*encWindow{eg, nv}
			}
			rootURI := (&url.URL{Scheme: "file", Path: r.root}).String()
			uri := r.uri("a.c")
			for _, w := range order {
				w.c, w.text, w.ver = r.dial(w.name), encText, 1
				if err := w.initialize(ctx, rootURI); err != nil {
					t.Fatal(err)
				}
				if err := w.c.didOpen(uri, w.text, 1); err != nil {
					t.Fatal(err)
				}
				if err := w.waitDiag(ctx, uri, "missing"); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range order {
				if err := w.hoverAdd(ctx, uri); err != nil {
					t.Fatal(err)
				}
			}
			// nvim edits, then eglot (the server gets eglot's full text),
			// then nvim again (the server gets nvim's full text as the
			// host's copy has it, then the edit).
			steps := []struct {
				w        *encWindow
				old, new string
			}{{nv, "missing", "gone_a"}, {eg, "missing", "gone_b"}, {nv, "gone_a", "gone_a2"}, {eg, "gone_b", "gone_b2"}}
			for _, s := range steps {
				if err := s.w.replace(uri, 1, s.old, s.new); err != nil {
					t.Fatal(err)
				}
				if err := s.w.waitDiag(ctx, uri, s.new); err != nil {
					t.Fatal(err)
				}
				if err := s.w.hoverAdd(ctx, uri); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
