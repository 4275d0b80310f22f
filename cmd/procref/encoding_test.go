package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/procref/procref/internal/lspclient"
)

// TestClangdMixedEncodingsThroughProxies: an nvim-lspconfig-like window
// (offers UTF-8 first) and an eglot-like one (offers nothing, speaks
// UTF-16) on one clangd through real proxies, --share=global, each in
// its own root, in both orders: both are told utf-16, and hover and
// diagnostic columns on a line with multi-byte characters are right.
func TestClangdMixedEncodingsThroughProxies(t *testing.T) {
	clangd := requireServer(t, "clangd")
	const line1 = `int f(void) { const char *s = "日本語😀"; return add(1, 2) + missing; }`
	text := "int add(int a, int b) { return a + b; }\n" + line1 + "\n"
	col := func(sub string) int { return len(utf16.Encode([]rune(line1[:strings.Index(line1, sub)]))) }
	nvim := map[string]any{"offsetEncoding": []string{"utf-8", "utf-16"},
		"general": map[string]any{"positionEncodings": []string{"utf-8", "utf-16"}}}
	eglot := map[string]any{}
	for _, order := range [][]map[string]any{{nvim, eglot}, {eglot, nvim}} {
		e := newEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i, caps := range order {
			root := t.TempDir()
			os.WriteFile(filepath.Join(root, "compile_flags.txt"), []byte("-xc\n-std=c11\n"), 0o644)
			file := filepath.Join(root, "a.c")
			os.WriteFile(file, []byte(text), 0o644)
			p := e.start(root, nil, "--share=global", "--", clangd)
			c := p.client(ctx)
			var res struct {
				OffsetEncoding string `json:"offsetEncoding"`
				Capabilities   struct {
					PositionEncoding string `json:"positionEncoding"`
				} `json:"capabilities"`
			}
			uri := lspclient.FileURI(root)
			if err := c.Call(ctx, "initialize", map[string]any{"processId": nil, "rootUri": uri, "capabilities": caps,
				"workspaceFolders": []any{map[string]any{"uri": uri, "name": "r"}}}, &res); err != nil {
				t.Fatalf("window %d: %v; stderr %s", i, err, p.stderr.String())
			}
			c.Notify(ctx, "initialized", map[string]any{})
			if res.Capabilities.PositionEncoding != "utf-16" || (res.OffsetEncoding != "" && res.OffsetEncoding != "utf-16") {
				t.Fatalf("window %d told %+v, want utf-16", i, res)
			}
			fileURI := lspclient.FileURI(file)
			c.DidOpen(ctx, fileURI, "c", text)
			diags, err := c.WaitDiagnostics(ctx, fileURI, func(d []lspclient.Diagnostic) bool { return len(d) > 0 })
			if err != nil || len(diags) != 1 || diags[0].Range.Start.Character != col("missing") {
				t.Fatalf("window %d diagnostics %+v, %v; want one at 1:%d", i, diags, err, col("missing"))
			}
			h, err := c.Hover(ctx, fileURI, 1, col("add(")+1)
			if err != nil || !strings.Contains(h, "add") || !strings.Contains(h, "int a") {
				t.Fatalf("window %d hover on add = %q, %v", i, h, err)
			}
		}
	}
}
