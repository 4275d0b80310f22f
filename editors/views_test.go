//go:build linux

package editors

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/platform"
)

// renameExpr is elisp that, in the buffer visiting file, optionally
// inserts edit at the top (unsaved, sent to the server), then renames the
// symbol `greeting` to name with eglot and returns the buffer text, or
// "ERR ..." if eglot signalled an error.
func renameExpr(file, edit, name string) string {
	return fmt.Sprintf(`(with-current-buffer (find-buffer-visiting %q)
  (condition-case err
      (progn
        (goto-char (point-min))
        (insert %q)
        (eglot--signal-textDocument/didChange)
        (goto-char (point-min))
        (search-forward "def greeting")
        (backward-char 2)
        (eglot-rename %q)
        (buffer-substring-no-properties (point-min) (point-max)))
    (error (format "ERR %%s" (error-message-string err)))))`, file, edit, name)
}

// TestEmacsEglotRenameOwnVersion: two Emacs eglot windows share one
// pylsp in mux mode. emacs-a edits the file (unsaved) and renames: eglot
// accepts the WorkspaceEdit (it carries a's own version, not pylsp's) and
// the rename lands. emacs-b, whose text differs from what pylsp now has,
// gets ContentModified for its rename (pylsp's edit replaces the whole
// file, which cannot be mapped into b's text), never a's text.
func TestEmacsEglotRenameOwnVersion(t *testing.T) {
	sc := pylspCase
	bin := requireTool(t, "emacs", "emacs-nox")
	client := requireTool(t, "emacsclient", "emacs-bin-common")
	server := requireServer(t, sc)
	e := newTestEnv(t, filepath.Dir(server))
	requireEglot(t, e, bin)
	ws := copyFixture(t, sc.fixture)

	a := e.startEmacs(t, bin, client, "emacs-a", ws, sc)
	proxyA := a.ready(t, sc)
	b := e.startEmacs(t, bin, client, "emacs-b", ws, sc)
	proxyB := b.ready(t, sc)
	host := e.onlyHost()
	if host.Mode != "mux" {
		t.Fatalf("backend mode = %q, want mux", host.Mode)
	}
	pids := instances(descendants(host.Host.PID), sc.server)
	if len(pids) != 1 {
		t.Fatalf("want one %s below the host, got %v", sc.server, pids)
	}
	gone := identities(t, []int{pids[0], proxyA, proxyB})

	out, err := a.eval(t, renameExpr(a.file, "# edited in a\n", "salute"))
	if err != nil || strings.HasPrefix(out, `"ERR`) || !strings.Contains(out, "def salute(name)") ||
		!strings.Contains(out, `salute(\"procref\")`) || !strings.Contains(out, "# edited in a") {
		t.Fatalf("emacs-a: rename after an edit = %s (%v); want both uses renamed", out, err)
	}
	out, err = b.eval(t, renameExpr(b.file, "", "other"))
	if err != nil || !strings.Contains(out, "-32801") { // ContentModified: pylsp's rename replaces the whole file
		t.Fatalf("emacs-b: rename on text pylsp does not have = %s (%v); want a refusal and b's text untouched", out, err)
	}
	t.Logf("emacs-b: %s", out)

	a.quit(t)
	b.quit(t)
	e.waitNoHosts(gone, 15*time.Second)
}

// nvimRenameExpr is a luaeval for `nvim --remote-expr`: in the buffer of
// file, insert a line at the top (unsaved), rename `greeting` to name as
// vim.lsp.buf.rename would (request, then apply_workspace_edit, which
// checks versions), and return the buffer's lines or "ERR ...".
func nvimRenameExpr(file, name string) string {
	lua := fmt.Sprintf(`(function()
  local b = vim.fn.bufnr(%q)
  vim.api.nvim_buf_set_lines(b, 0, 0, false, {"# edited in nvim"})
  local row
  for i, l in ipairs(vim.api.nvim_buf_get_lines(b, 0, -1, false)) do
    if l:find("def greeting", 1, true) then row = i - 1 end
  end
  local params = {textDocument = {uri = vim.uri_from_bufnr(b)}, position = {line = row, character = 5}, newName = %q}
  local res, err = vim.lsp.buf_request_sync(b, "textDocument/rename", params, 10000)
  if not res then return "ERR " .. tostring(err) end
  for _, r in pairs(res) do
    if r.error then return "ERR " .. vim.inspect(r.error) end
    if r.result then vim.lsp.util.apply_workspace_edit(r.result, "utf-16") end
  end
  return table.concat(vim.api.nvim_buf_get_lines(b, 0, -1, false), "\n")
end)()`, file, name)
	return "luaeval('" + strings.ReplaceAll(lua, "'", "''") + "')"
}

// TestNeovimAndEmacsRenameOwnVersion: a Neovim and an Emacs share one
// pylsp in mux mode on one file. Neovim edits it (unsaved) and renames:
// the edits carry Neovim's buffer version, so Neovim applies them (it
// drops edits older than its buffer: "Buffer … newer than edits"). Emacs,
// whose text now differs from pylsp's, gets ContentModified rather than
// edits for Neovim's text.
func TestNeovimAndEmacsRenameOwnVersion(t *testing.T) {
	sc := pylspCase
	r := startNeovimAndEmacs(t, sc)
	n, m := r.n, r.m

	out := n.remote(t, "--remote-expr", nvimRenameExpr(n.file, "salute"))
	if strings.HasPrefix(out, "ERR") || !strings.Contains(out, "def salute(name)") ||
		!strings.Contains(out, `salute("procref")`) || !strings.HasPrefix(out, "# edited in nvim") {
		t.Fatalf("nvim: rename after an edit left:\n%s\nwant both uses renamed", out)
	}
	got, err := m.eval(t, renameExpr(m.file, "", "other"))
	if err != nil || !strings.Contains(got, "-32801") { // ContentModified: pylsp's rename replaces the whole file
		t.Fatalf("emacs: rename on text pylsp does not have = %s (%v); want a refusal and its text untouched", got, err)
	}
	r.quit(t)
}

// TestNeovimAndEmacsOwnText: a Neovim and an Emacs share one pylsp on one
// file; Emacs inserts two lines at the top without saving, so pylsp has
// Emacs's text. Neovim, which does not have those lines, still gets its
// hover on `greeting` at its own line, and the deliberate error's
// diagnostic at its own line (8), not Emacs's (10).
func TestNeovimAndEmacsOwnText(t *testing.T) {
	neovimAndEmacsOwnText(t, `(goto-char (point-min)) (insert "# one\n# two\n")`)
}

// TestNeovimAndEmacsOwnTextManyRegions: as TestNeovimAndEmacsOwnText, but
// Emacs's unsaved edits are in three places: two lines inserted at the
// top, the blank line after the function changed, a line appended at the
// end. Neovim's hover line and the error's line lie between them, shared
// lines of both texts, so Neovim still gets both at its own lines (a diff
// of one region from the first to the last change would refuse both).
func TestNeovimAndEmacsOwnTextManyRegions(t *testing.T) {
	neovimAndEmacsOwnText(t, `(goto-char (point-min)) (insert "# one\n# two\n")
  (goto-char (point-min)) (forward-line 8) (insert "x = 1")
  (goto-char (point-max)) (insert "# end\n")`)
}

// neovimAndEmacsOwnText runs edit (elisp) in Emacs's buffer of pylsp's
// fixture without saving, then checks that Neovim's diagnostics and hover
// are at its own lines.
func neovimAndEmacsOwnText(t *testing.T, edit string) {
	sc := pylspCase
	r := startNeovimAndEmacs(t, sc)
	n, m, clientN := r.n, r.m, r.clientN
	d := editorDeadline(t)

	n.events.refresh()
	from := len(n.events.events)
	out, err := m.eval(t, fmt.Sprintf(`(with-current-buffer (find-buffer-visiting %q)
  %s (eglot--signal-textDocument/didChange) "ok")`, m.file, edit))
	if err != nil || out != `"ok"` {
		t.Fatalf("emacs: edit = %s, %v", out, err)
	}
	// pylsp publishes for Emacs's text; Neovim gets them in its lines
	n.events.waitFor(t, from, d, "nvim: diagnostics after emacs's edit", func(ev event) bool {
		return ev.Event == "diagnostics" && ev.Client == clientN && strings.Contains(ev.Text, sc.wantDiag)
	}, n.done)
	lnums := n.remote(t, "--remote-expr", fmt.Sprintf(`luaeval('table.concat(vim.tbl_map(function(d) return d.lnum end, vim.diagnostic.get(vim.fn.bufnr(%q))), ",")')`, n.file))
	if lnums != "8" {
		t.Errorf("nvim: diagnostics at lines %q after emacs's unsaved edit, want 8 (its own line of undefined_name)", lnums)
	}
	from = len(n.events.events)
	if got := n.remote(t, "--remote-expr", "luaeval('ProcrefTestHover()')"); got != "1" {
		t.Fatalf("nvim: ProcrefTestHover() = %q, want 1", got)
	}
	h := n.events.waitFor(t, from, d, "nvim: hover after emacs's edit", func(ev event) bool { return ev.Event == "hover" }, n.done)
	if ev := n.events.events[h]; ev.Err != "" || !strings.Contains(ev.Text, sc.wantHover) {
		t.Errorf("nvim: hover at its own line after emacs's unsaved edit = %s, want it to mention %q", ev, sc.wantHover)
	}
	r.quit(t)
}

// nvimAndEmacs is a Neovim and an Emacs sharing one sc server on sc's
// fixture, both ready.
type nvimAndEmacs struct {
	e       *testEnv
	n       *neovim
	m       *emacs
	clientN int // Neovim's LSP client id
	gone    []platform.Identity
}

// startNeovimAndEmacs starts both editors on one copy of sc's fixture and
// checks they share one server below one host.
func startNeovimAndEmacs(t *testing.T, sc serverCase) *nvimAndEmacs {
	t.Helper()
	nvim := requireTool(t, "nvim", "neovim")
	bin := requireTool(t, "emacs", "emacs-nox")
	client := requireTool(t, "emacsclient", "emacs-bin-common")
	server := requireServer(t, sc)
	e := newTestEnv(t, filepath.Dir(server))
	requireEglot(t, e, bin)
	ws := copyFixture(t, sc.fixture)
	r := &nvimAndEmacs{e: e}
	r.n = e.startNeovim(t, nvim, "nvim", ws, sc)
	r.clientN, _ = r.n.ready(t, sc, 0)
	r.m = e.startEmacs(t, bin, client, "emacs", ws, sc)
	proxyM := r.m.ready(t, sc)
	host := e.onlyHost()
	backend := oneBackend(t, sc, host.Host, r.n)
	if pids := instances(descendants(r.m.cmd.Process.Pid), sc.server); len(pids) != 0 {
		t.Fatalf("emacs runs its own %s: %v", sc.server, pids)
	}
	r.gone = append(identities(t, append(r.n.proxies(), proxyM)), backend)
	return r
}

// quit ends both editors and waits until no server, proxy or host is left.
func (r *nvimAndEmacs) quit(t *testing.T) {
	t.Helper()
	r.n.quit(t)
	r.m.quit(t)
	r.e.waitNoHosts(r.gone, 15*time.Second)
}
