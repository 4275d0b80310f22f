package lspmux

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/procref/procref/internal/idroute"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// requestClient sends the client a request whose answer is dropped.
// Called with mu held.
func (m *Mux) requestClient(c *client, method string, params []byte) {
	c.send(msgRequest(m.nextID.Add(1), method, params))
}

type registration struct {
	id  string
	raw json.RawMessage
}

// broadcastMethods are backend requests the mux answers itself and passes
// on to every ready client.
func hostAnswered(method string) bool {
	switch method {
	case "window/workDoneProgress/create", "client/registerCapability", "client/unregisterCapability":
		return true
	}
	return strings.HasSuffix(method, "/refresh")
}

func (m *Mux) serverRequest(s *mux.Instance, f *wire.Fields, body []byte) {
	sid := append([]byte(nil), f.ID.Of(body)...)
	method := f.MethodName()
	params := f.Params.Of(body)
	m.mu.Lock()
	defer m.mu.Unlock()
	answer := func(b []byte) { s.Push(b) }
	if method == "workspace/workspaceFolders" {
		list := m.folderList()
		slices.SortFunc(list, func(a, b folder) int { return strings.Compare(a.URI, b.URI) })
		if len(list) == 0 {
			answer(msgResult(sid, nil))
		} else {
			answer(msgResult(sid, mustJSON(list)))
		}
		return
	}
	if hostAnswered(method) {
		answer(msgResult(sid, nil))
		var told map[*client]bool
		switch method {
		case "client/registerCapability":
			m.register(params)
		case "client/unregisterCapability":
			m.unregister(params)
		case "window/workDoneProgress/create":
			told = map[*client]bool{}
			if sp, ok, _ := wire.Lookup(params, "token"); ok {
				m.stokens[string(sp.Of(params))] = told
			}
		}
		m.passOn(method, params, told)
		return
	}
	c := m.pickClient(method)
	if c == nil && method == "window/showMessageRequest" {
		// Every client handles it (LSP 1.0); window.showMessage (3.16)
		// only refines it, and clients such as eglot 1.9 do not declare it.
		c = m.pickClient("")
	}
	if c == nil {
		if _, gated := capPaths[method]; gated {
			// no window declared what it needs: answer as such a client would
			answer(msgResult(sid, answerUndeclared(method, params)))
			return
		}
		answer(msgError(sid, codeRequestFailed, "no editor is connected to answer "+method))
		return
	}
	if method == "workspace/applyEdit" {
		// the edit in c's view: its versions and lines (textview.go)
		out, changed, err := m.viewJSON(c, "", params)
		if err != nil {
			answer(msgResult(sid, mustJSON(map[string]any{"applied": false, "failureReason": err.Error()})))
			return
		}
		if changed {
			body = wire.Splice(body, f.Params, out)
			if f2, err := wire.ScanTrusted(body); err == nil {
				f = &f2
			}
		}
	}
	hid := m.nextID.Add(1)
	m.addServerRequest(c, sid, hid)
	c.send(wire.Splice(body, f.ID, idToken(hid)))
}

// passOn sends a request the mux has answered itself to every ready
// client that can take it: registrations filtered to what each client
// registers dynamically, the rest only to clients that declared the
// capability (capabilities.go). told, if set, records who got it.
// Called with mu held.
func (m *Mux) passOn(method string, params []byte, told map[*client]bool) {
	var list []json.RawMessage
	key := map[string]string{"client/registerCapability": "registrations", "client/unregisterCapability": "unregisterations"}[method]
	if key != "" {
		var p map[string][]json.RawMessage
		json.Unmarshal(params, &p)
		list = p[key]
	}
	for c := range m.clients {
		if !c.ready {
			continue
		}
		p := params
		if key != "" {
			p = c.registrationsFor(key, list)
		} else if !c.wants(method) {
			p = nil
		}
		if p == nil {
			continue
		}
		if told != nil {
			told[c] = true
		}
		m.requestClient(c, method, p)
	}
}

// pickClient chooses the client for a backend request that one client
// must answer, among those that declared what method needs: the one with
// the newest workspace/executeCommand in flight (edits and prompts usually
// come from a command), else the most recently active ready client, else
// any client that has sent initialize.
func (m *Mux) pickClient(method string) *client {
	var best *client
	var bestSeq int64 = -1
	m.calls.Each(func(_ int64, p idroute.Call[*client, call]) {
		if c := p.Client; c != nil && p.Data.method == "workspace/executeCommand" && p.Data.seq > bestSeq && !c.left && c.wants(method) {
			best, bestSeq = c, p.Data.seq
		}
	})
	if best != nil {
		return best
	}
	for c := range m.clients {
		if c.ready && c.wants(method) && (best == nil || c.active > best.active) {
			best = c
		}
	}
	if best != nil {
		return best
	}
	for c := range m.clients {
		if c.sentInit && c.wants(method) && (best == nil || c.id > best.id) {
			best = c
		}
	}
	return best
}

func (m *Mux) register(params []byte) {
	var p struct {
		Registrations []json.RawMessage `json:"registrations"`
	}
	json.Unmarshal(params, &p)
	for _, raw := range p.Registrations {
		var r struct {
			ID string `json:"id"`
		}
		json.Unmarshal(raw, &r)
		m.regs = slices.DeleteFunc(m.regs, func(x registration) bool { return x.id == r.ID })
		m.regs = append(m.regs, registration{id: r.ID, raw: raw})
	}
}

func (m *Mux) unregister(params []byte) {
	var p struct {
		Unregisterations []struct {
			ID string `json:"id"`
		} `json:"unregisterations"` // sic: the LSP spelling
	}
	json.Unmarshal(params, &p)
	for _, u := range p.Unregisterations {
		m.regs = slices.DeleteFunc(m.regs, func(x registration) bool { return x.id == u.ID })
	}
}
