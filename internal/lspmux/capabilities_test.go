package lspmux

import (
	"encoding/json"
	"strings"
	"testing"
)

// joinCaps connects and initializes a client declaring caps.
func (h *harness) joinCaps(name string, caps map[string]any) *tclient {
	h.t.Helper()
	c := h.connect(name)
	if _, err := c.initializeCaps(h.ctx, "file:///ws/r", caps); err != nil {
		h.t.Fatalf("%s initialize: %v", name, err)
	}
	return c
}

// someCaps declares progress and dynamic registration of document
// synchronization, nothing else.
var someCaps = map[string]any{
	"window":       map[string]any{"workDoneProgress": true},
	"textDocument": map[string]any{"synchronization": map[string]any{"dynamicRegistration": true}},
}

// TestCapabilitiesPerWindow: every capability-gated server request or
// notification reaches the windows that declared it and no other, and the
// server gets exactly one answer (the fake server flags a second one).
func TestCapabilitiesPerWindow(t *testing.T) {
	h := newHarness(t, nil)
	all := h.joinCaps("all", fullCaps)
	some := h.joinCaps("some", someCaps)
	none := h.joinCaps("none", map[string]any{})
	s := h.server()
	answered := func(ch chan json.RawMessage, want string) {
		t.Helper()
		select {
		case r := <-ch:
			if string(r) != want {
				t.Fatalf("answer %s, want %s", r, want)
			}
		case <-h.ctx.Done():
			t.Fatal("not answered")
		}
	}
	got := func(c *tclient, method, has string) {
		t.Helper()
		if _, err := c.waitSrvReq(h.ctx, func(m wireMsg) bool {
			return m.Method == method && strings.Contains(string(m.Params), has)
		}); err != nil {
			t.Fatal(err)
		}
	}

	// registrations: each window gets those it registers dynamically
	answered(s.request("client/registerCapability", map[string]any{"registrations": []any{
		map[string]any{"id": "w1", "method": "workspace/didChangeWatchedFiles"},
		map[string]any{"id": "s1", "method": "textDocument/didSave"},
	}}), "null")
	got(all, "client/registerCapability", `"w1"`)
	got(all, "client/registerCapability", `"s1"`)
	got(some, "client/registerCapability", `"s1"`)
	late := h.joinCaps("late", someCaps) // replayed, filtered the same way
	got(late, "client/registerCapability", `"s1"`)

	// progress: created and reported only to windows with workDoneProgress
	answered(s.request("window/workDoneProgress/create", map[string]any{"token": "p1"}), "null")
	got(all, "window/workDoneProgress/create", `"p1"`)
	got(some, "window/workDoneProgress/create", `"p1"`)
	s.notify("$/progress", map[string]any{"token": "p1", "value": map[string]any{"kind": "begin", "title": "t"}})
	for _, c := range []*tclient{all, some} {
		if _, err := c.waitNote(h.ctx, func(m wireMsg) bool { return m.Method == "$/progress" }); err != nil {
			t.Fatal(err)
		}
	}

	// refresh: to the windows declaring refreshSupport; answered by the mux
	answered(s.request("workspace/semanticTokens/refresh", nil), "null")
	answered(s.request("workspace/inlineValue/refresh", nil), "null") // nobody declared it
	got(all, "workspace/semanticTokens/refresh", "")

	// requests one window answers: the declaring window, even when another
	// is more recently active
	all.mu.Lock()
	all.answer = func(m wireMsg) (any, string, bool) {
		switch m.Method {
		case "workspace/configuration":
			return []string{"from-all"}, "", true
		case "workspace/applyEdit":
			return map[string]bool{"applied": true}, "", true
		case "window/showDocument":
			return map[string]bool{"success": true}, "", true
		}
		return map[string]string{"title": "ok"}, "", true
	}
	all.mu.Unlock()
	h.sync(none)
	h.sync(some)
	answered(s.request("workspace/configuration", map[string]any{"items": []any{map[string]any{}}}), `["from-all"]`)
	answered(s.request("workspace/applyEdit", map[string]any{"edit": map[string]any{}}), `{"applied":true}`)
	answered(s.request("window/showDocument", map[string]any{"uri": "file:///x"}), `{"success":true}`)
	answered(s.request("window/showMessageRequest", map[string]any{"type": 3, "message": "pick"}), `{"title":"ok"}`)

	// the windows that declared nothing got none of it
	for _, c := range []*tclient{some, late, none} {
		h.sync(c)
	}
	for method, who := range map[string][]*tclient{
		"client/registerCapability":        {none},
		"window/workDoneProgress/create":   {none},
		"workspace/semanticTokens/refresh": {some, late, none},
		"workspace/inlineValue/refresh":    {all, some, late, none},
		"workspace/configuration":          {some, late, none},
		"workspace/applyEdit":              {some, late, none},
		"window/showDocument":              {some, late, none},
		"window/showMessageRequest":        {some, late, none}, // "all" declared window.showMessage
	} {
		for _, c := range who {
			if n := len(c.requestsFor(method)); n != 0 {
				t.Errorf("%s got %d %s it did not declare", c.name, n, method)
			}
		}
	}
	for _, c := range []*tclient{some, late} {
		for _, m := range c.requestsFor("client/registerCapability") {
			if strings.Contains(string(m.Params), `"w1"`) {
				t.Errorf("%s got the watched-files registration without dynamicRegistration", c.name)
			}
		}
	}
	if n := len(none.notesFor("$/progress")); n != 0 {
		t.Errorf("none got %d $/progress without workDoneProgress", n)
	}

	// no window declared it: the mux answers as such a client would
	all.close()
	h.serveResult("all") // the mux has let it go
	h.sync(none)
	answered(s.request("workspace/configuration", map[string]any{"items": []any{map[string]any{}, map[string]any{}}}), `[null,null]`)
	answered(s.request("workspace/applyEdit", map[string]any{"edit": map[string]any{}}), `{"applied":false,"failureReason":"no connected editor supports workspace/applyEdit"}`)
	answered(s.request("window/showDocument", map[string]any{"uri": "file:///x"}), `{"success":false}`)
	// showMessageRequest: every client handles it, declared or not
	none.mu.Lock()
	none.answer = func(m wireMsg) (any, string, bool) { return map[string]string{"title": "from-none"}, "", true }
	none.mu.Unlock()
	late.close()
	some.close()
	h.serveResult("late")
	h.serveResult("some")
	h.sync(none)
	answered(s.request("window/showMessageRequest", map[string]any{"type": 3, "message": "pick"}), `{"title":"from-none"}`)
}
