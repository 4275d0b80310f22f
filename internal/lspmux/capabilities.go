package lspmux

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/procref/procref/internal/wire"
)

// Capabilities per window. The backend sees one client (the first
// window's initialize), but each window gets from the mux only what its own
// initialize declared: progress, dynamic registrations, the server
// requests that need a user, and refresh requests. When no window declared
// what a server request needs, the mux answers it as LSP says a client
// without the capability would.

// declares reports whether c's initialize capabilities have a true (or,
// for an object-valued capability, present) value at path.
func (c *client) declares(path ...string) bool {
	sp, ok, _ := wire.Lookup(c.caps, path...)
	if !ok {
		return false
	}
	v := bytes.TrimSpace(sp.Of(c.caps))
	return len(v) > 0 && !bytes.Equal(v, []byte("false")) && !bytes.Equal(v, null)
}

// capPaths are the capabilities the server requests that one window must
// answer need; requests not listed go to any window. showMessageRequest
// prefers windows declaring window.showMessage but falls back to any
// (see serverRequest).
var capPaths = map[string][]string{
	"workspace/configuration":        {"workspace", "configuration"},
	"workspace/applyEdit":            {"workspace", "applyEdit"},
	"window/showDocument":            {"window", "showDocument", "support"},
	"window/showMessageRequest":      {"window", "showMessage"},
	"window/workDoneProgress/create": {"window", "workDoneProgress"},
}

// refreshCaps maps the name in workspace/NAME/refresh to the client's
// capability object under workspace when it is not NAME itself.
var refreshCaps = map[string]string{"diagnostic": "diagnostics"}

// wants reports whether c declared what the server request or
// notification method needs (true for methods nothing gates).
func (c *client) wants(method string) bool {
	if p, ok := capPaths[method]; ok {
		return c.declares(p...)
	}
	if name, ok := strings.CutSuffix(strings.TrimPrefix(method, "workspace/"), "/refresh"); ok && strings.HasPrefix(method, "workspace/") {
		if alt, ok := refreshCaps[name]; ok {
			name = alt
		}
		return c.declares("workspace", name, "refreshSupport")
	}
	return true
}

// dynamicPath returns where a client declares dynamicRegistration for a
// registration's method (LSP "client capabilities" per feature).
func dynamicPath(method string) []string {
	scope, feature, _ := strings.Cut(method, "/")
	switch method {
	case "textDocument/didOpen", "textDocument/didChange", "textDocument/didClose",
		"textDocument/willSave", "textDocument/willSaveWaitUntil", "textDocument/didSave":
		feature = "synchronization"
	case "workspace/didCreateFiles", "workspace/willCreateFiles", "workspace/didRenameFiles",
		"workspace/willRenameFiles", "workspace/didDeleteFiles", "workspace/willDeleteFiles":
		feature = "fileOperations"
	case "notebookDocument/sync":
		feature = "synchronization"
	}
	return []string{scope, feature, "dynamicRegistration"}
}

// canRegister reports whether c accepts dynamic registration of method.
// workspace/didChangeWorkspaceFolders has no such flag: a client that
// supports workspace folders takes it.
func (c *client) canRegister(method string) bool {
	if method == "workspace/didChangeWorkspaceFolders" {
		return c.declares("workspace", "workspaceFolders")
	}
	return c.declares(dynamicPath(method)...)
}

// registrationsFor returns the (un)registration params for c, keeping
// only the entries (under key) whose method c can register dynamically;
// nil if none is left.
func (c *client) registrationsFor(key string, list []json.RawMessage) []byte {
	var keep []json.RawMessage
	for _, raw := range list {
		var r struct {
			Method string `json:"method"`
		}
		json.Unmarshal(raw, &r)
		if c.canRegister(r.Method) {
			keep = append(keep, raw)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return mustJSON(map[string]any{key: keep})
}

// answerUndeclared is the answer LSP gives a server request that no
// window can take because none declared the capability it needs.
func answerUndeclared(method string, params []byte) []byte {
	switch method {
	case "workspace/configuration":
		// one null per item: "no configuration" for each
		var p struct {
			Items []json.RawMessage `json:"items"`
		}
		json.Unmarshal(params, &p)
		return mustJSON(make([]any, len(p.Items)))
	case "workspace/applyEdit":
		return mustJSON(map[string]any{"applied": false, "failureReason": "no connected editor supports workspace/applyEdit"})
	case "window/showDocument":
		return mustJSON(map[string]bool{"success": false})
	}
	return nil // showMessageRequest: no action chosen
}
