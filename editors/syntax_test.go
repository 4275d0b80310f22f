//go:build linux

package editors

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The snippets for editors that do not run here are not proven by a
// session, but they are at least read by something that understands
// their language, so a typo cannot ship. These tests say nothing about
// the editors' behaviour.

// wantCommands are the server commands every snippet configures.
var wantCommands = map[string][]string{
	"pylsp":         {"procref", "--", "pylsp"},
	"clangd":        {"procref", "--", "clangd"},
	"gopls":         {"procref", "--", "gopls", "serve", "-listen=unix;{socket}"},
	"rust-analyzer": {"procref", "--", "rust-analyzer"},
}

// TestUntestedLuaSnippetsCompile: Neovim's LuaJIT compiles the Lua snippets
// for Neovim versions and plugins not installed here.
func TestUntestedLuaSnippetsCompile(t *testing.T) {
	nvim := requireTool(t, "nvim", "neovim")
	e := newTestEnv(t)
	for _, f := range []string{"neovim-lspconfig.lua", "neovim-0.8.lua", "neovim-0.11.lua"} {
		path, _ := filepath.Abs(f)
		c := e.cmd(e.dir, nvim, "--headless", "-u", "NONE", "-i", "NONE",
			"-c", `lua local ok, err = loadfile(os.getenv('SNIPPET')); if not ok then io.stderr:write(err .. '\n'); vim.cmd('cquit 1') end`,
			"-c", "qa!")
		c.Env = append(c.Env, "SNIPPET="+path)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("%s does not compile: %v\n%s", f, err, out)
		}
	}
}

// TestVimLspSnippet: Neovim's Vim script engine sources vim-lsp.vim and
// fires its lsp_setup autocmds against a stand-in for vim-lsp's
// lsp#register_server (testdata/vim-lsp-standin) that records each
// server's name and command.
func TestVimLspSnippet(t *testing.T) {
	nvim := requireTool(t, "nvim", "neovim")
	e := newTestEnv(t)
	path, _ := filepath.Abs("vim-lsp.vim")
	out := filepath.Join(e.dir, "calls.json")
	standin, _ := filepath.Abs(filepath.Join("testdata", "vim-lsp-standin"))
	c := e.cmd(e.dir, nvim, "--headless", "-u", "NONE", "-i", "NONE",
		"--cmd", "let g:calls = {}",
		"--cmd", "let &runtimepath = $STANDIN . ',' . &runtimepath",
		"-c", "exe 'source' fnameescape($SNIPPET)",
		"-c", "doautocmd User lsp_setup",
		"-c", "call writefile([json_encode(g:calls)], $CALLS)",
		"-c", "qa!")
	c.Env = append(c.Env, "CALLS="+out, "STANDIN="+standin, "SNIPPET="+path)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("sourcing vim-lsp.vim: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no result from Neovim (an error in vim-lsp.vim stops the -c commands): %v", err)
	}
	var calls map[string][]string
	if err := json.Unmarshal(b, &calls); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !reflect.DeepEqual(calls, wantCommands) {
		t.Errorf("vim-lsp.vim registers %v, want %v", calls, wantCommands)
	}
}

// stripLineComments drops lines that are // comments (the JSON-with-comments
// dialect Zed and Sublime Text read).
func stripLineComments(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "//") {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// TestJSONSnippets: zed-settings.json and sublime-LSP.sublime-settings are
// valid (commented) JSON and configure the same commands.
func TestJSONSnippets(t *testing.T) {
	var zed struct {
		LSP map[string]struct {
			Binary struct {
				Path      string   `json:"path"`
				Arguments []string `json:"arguments"`
			} `json:"binary"`
		} `json:"lsp"`
	}
	b, err := os.ReadFile("zed-settings.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stripLineComments(b), &zed); err != nil {
		t.Fatalf("zed-settings.json: %v", err)
	}
	got := map[string][]string{}
	for name, s := range zed.LSP {
		got[name] = append([]string{s.Binary.Path}, s.Binary.Arguments...)
	}
	if !reflect.DeepEqual(got, wantCommands) {
		t.Errorf("zed-settings.json configures %v, want %v", got, wantCommands)
	}

	var sublime struct {
		Clients map[string]struct {
			Enabled  bool     `json:"enabled"`
			Command  []string `json:"command"`
			Selector string   `json:"selector"`
		} `json:"clients"`
	}
	b, err = os.ReadFile("sublime-LSP.sublime-settings")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stripLineComments(b), &sublime); err != nil {
		t.Fatalf("sublime-LSP.sublime-settings: %v", err)
	}
	got = map[string][]string{}
	for name, c := range sublime.Clients {
		if !c.Enabled || c.Selector == "" {
			t.Errorf("sublime client %s: enabled %v, selector %q", name, c.Enabled, c.Selector)
		}
		got[name] = c.Command
	}
	if !reflect.DeepEqual(got, wantCommands) {
		t.Errorf("sublime-LSP.sublime-settings configures %v, want %v", got, wantCommands)
	}
}

// TestLspModeSnippetLoads: Emacs reads emacs-lsp-mode.el (it only sets
// variables, so lsp-mode itself is not needed) and the variables hold the
// commands.
func TestLspModeSnippetLoads(t *testing.T) {
	emacs := requireTool(t, "emacs", "emacs-nox")
	e := newTestEnv(t)
	path, _ := filepath.Abs("emacs-lsp-mode.el")
	out, err := e.cmd(e.dir, emacs, "--batch", "-l", path, "--eval", `(progn (require 'json) (princ (json-encode (list
		(cons "pylsp" lsp-pylsp-server-command)
		(cons "clangd" (cons lsp-clients-clangd-executable lsp-clients-clangd-args))
		(cons "gopls" (cons lsp-go-gopls-server-path lsp-go-gopls-server-args))
		(cons "rust-analyzer" lsp-rust-analyzer-server-command)))))`).Output()
	if err != nil {
		t.Fatalf("loading emacs-lsp-mode.el: %v", err)
	}
	var got map[string][]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if !reflect.DeepEqual(got, wantCommands) {
		t.Errorf("emacs-lsp-mode.el sets %v, want %v", got, wantCommands)
	}
}

// TestHelixSnippet: Python's tomllib reads helix-languages.toml and finds
// the commands.
func TestHelixSnippet(t *testing.T) {
	python := requireTool(t, "python3", "python3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The real environment: a pyenv shim needs the real HOME.
	out, err := exec.CommandContext(ctx, python, "-c", `import json, sys, tomllib
with open("helix-languages.toml", "rb") as f:
    conf = tomllib.load(f)
print(json.dumps({k: [v["command"]] + v.get("args", []) for k, v in conf["language-server"].items()}))`).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		if strings.Contains(string(stderr), "No module named 'tomllib'") {
			missing(t, "python3 has no tomllib (needs Python 3.11+)")
		}
		t.Fatalf("reading helix-languages.toml: %v\n%s", err, stderr)
	}
	var got map[string][]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if !reflect.DeepEqual(got, wantCommands) {
		t.Errorf("helix-languages.toml configures %v, want %v", got, wantCommands)
	}
}
