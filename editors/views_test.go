//go:build linux

package editors

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
// gets a refusal for its rename, never edits computed on a's text.
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
	if err != nil || strings.Contains(out, "other") {
		t.Fatalf("emacs-b: rename on text pylsp does not have = %s (%v); want a refusal and b's text untouched", out, err)
	}
	t.Logf("emacs-b: %s", out)

	a.quit(t)
	b.quit(t)
	e.waitNoHosts(gone, 15*time.Second)
}
