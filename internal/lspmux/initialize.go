package lspmux

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// clientInitialize answers initialize from the cache, or queues the client
// until the first initialize completes (starting the backend if this is
// the first).
func (m *Mux) clientInitialize(c *client, f *wire.Fields, body []byte) {
	id := append([]byte(nil), f.ID.Of(body)...)
	params := f.Params.Of(body)
	folders := initFolders(params)
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.sentInit {
		c.send(msgError(id, codeInvalidRequest, "initialize sent twice"))
		return
	}
	c.sentInit = true
	c.folders = folders
	if sp, ok, _ := wire.Lookup(params, "capabilities"); ok {
		c.caps = append([]byte(nil), sp.Of(params)...)
	}
	switch m.core.Phase() {
	case mux.Stopped:
		c.send(msgError(id, codeRequestFailed, "language server stopped"))
		return
	case mux.Running:
		m.admit(c, id)
		return
	case mux.Idle:
		if params == nil {
			params = []byte("{}")
		}
		m.initParams = offerUTF16(params) // a fresh copy
		m.core.Start()
	}
	m.initWaiters = append(m.initWaiters, initWaiter{c, id})
	m.event("init-wait")
}

// awaitInit blocks while c's initialize is in flight (sent, not yet
// answered). It returns at once otherwise, and when the answer is out
// either way (admitted, or failed: then the caller's message is refused as
// before initialize), or the client or mux stops. This reader goroutine is
// the client's own, so waiting here holds up only this client.
func (m *Mux) awaitInit(c *client) {
	for {
		m.mu.Lock()
		waiting, ch := c.sentInit && !c.inited && !c.left && m.core.Phase() != mux.Stopped, m.core.Changed()
		m.mu.Unlock()
		if !waiting {
			return
		}
		c.FlushServer() // never wait while holding the backend
		m.event("await-init")
		select {
		case <-ch:
		case <-c.Ending():
			return
		}
	}
}

// admit answers c's initialize from the cache and joins it to the session.
// Called with mu held.
func (m *Mux) admit(c *client, id []byte) {
	c.send(msgResult(id, m.initResult))
	c.inited = true
	m.addFolders(c)
}

// clientInitialized swallows the client's initialized and replays the
// current registrations to it.
func (m *Mux) clientInitialized(c *client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !c.inited || c.ready {
		return
	}
	c.ready = true
	regs := make([]json.RawMessage, len(m.regs))
	for i, r := range m.regs {
		regs[i] = r.raw
	}
	if p := c.registrationsFor("registrations", regs); p != nil {
		m.requestClient(c, "client/registerCapability", p)
	}
}

type initWaiter struct {
	c  *client
	id []byte
}

// initialize sends the first client's initialize to a fresh backend and,
// on success, initialized, the workspace folders and (after a restart)
// every open document; then admits the waiting clients (the core's
// Started). It fails with errNoInitAnswer if the backend ended first, and
// with the backend's message if it refused.
func (m *Mux) initialize(s *mux.Instance) error {
	m.mu.Lock()
	params := m.initParams
	m.backendFold = map[string]bool{}
	for _, f := range initFolders(params) {
		m.backendFold[strings.TrimSuffix(f.URI, "/")] = true
	}
	m.mu.Unlock()
	resp, err := m.hostCall(s, "initialize", params, 0)
	if err != nil {
		return errNoInitAnswer
	}
	f, err := wire.Scan(resp)
	if err != nil || !f.Result.Ok() {
		msg := "initialize failed"
		if f.Error.Ok() {
			var e struct {
				Message string `json:"message"`
			}
			json.Unmarshal(f.Error.Of(resp), &e)
			msg = "language server refused initialize: " + e.Message
		}
		return errors.New(msg)
	}
	result := f.Result.Of(resp)
	var caps struct {
		Capabilities struct {
			Workspace struct {
				WorkspaceFolders struct {
					Supported           bool            `json:"supported"`
					ChangeNotifications json.RawMessage `json:"changeNotifications"`
				} `json:"workspaceFolders"`
			} `json:"workspace"`
		} `json:"capabilities"`
	}
	if sp, ok, _ := wire.Lookup(result, "capabilities"); ok {
		json.Unmarshal(result[sp.Start:sp.End], &caps.Capabilities)
	}
	wf := caps.Capabilities.Workspace.WorkspaceFolders
	cn := bytes.TrimSpace(wf.ChangeNotifications)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.core.Current() != s {
		return nil // Close came meanwhile: it owns the end
	}
	first := m.initResult == nil
	restart := !first
	if first {
		var name string
		m.initResult, m.enc, name = resultEncoding(append([]byte(nil), result...))
		if m.enc != encUTF16 {
			m.log.Warn("language server uses a position encoding other than the utf-16 procref asked for; windows that did not offer it get wrong columns",
				"encoding", name)
		}
		m.folderCaps = wf.Supported && len(cn) > 0 && !bytes.Equal(cn, []byte("false")) && !bytes.Equal(cn, null)
	}
	m.toServer(msgNotification("initialized", []byte("{}")), nil)
	// folders of clients beyond the initializing one (global scope)
	var added []folder
	for uri, ref := range m.folders {
		if !m.backendFold[uri] {
			added = append(added, folder{URI: uri, Name: ref.name})
		}
	}
	var removed []folder
	for uri := range m.backendFold {
		if m.folders[uri] == nil && len(m.folders) > 0 {
			removed = append(removed, folder{URI: uri, Name: uri[strings.LastIndexByte(uri, '/')+1:]})
		}
	}
	m.tellFolders(added, removed)
	if restart {
		m.replayDocs()
	}
	m.core.Up(s)
	for _, w := range m.initWaiters {
		if !w.c.left {
			m.admit(w.c, w.id)
		}
	}
	m.initWaiters = nil
	if restart {
		note := msgNotification("window/showMessage", mustJSON(map[string]any{
			"type":    2, // warning
			"message": fmt.Sprintf("The language server crashed and was restarted by procref (restart %d); open documents were restored.", m.core.Recent()),
		}))
		for c := range m.clients {
			if c.inited {
				c.send(note)
			}
		}
	}
	return nil
}

// failInit answers every initialize waiter with an error (the core is
// Idle again: the next initialize tries a new backend).
// The waiters are disconnected: an editor does not retry initialize on
// the same connection, and its proxy then says why and exits 1.
func (m *Mux) failInit(msg string) {
	m.log.Error("language server did not start", "err", msg)
	m.mu.Lock()
	defer m.mu.Unlock()
	err := fmt.Errorf("%w: %s", ErrInitFailed, msg)
	for _, w := range m.initWaiters {
		w.c.End(err, msgError(w.id, codeRequestFailed, m.withHint(msg)))
	}
	m.initWaiters = nil
	m.initParams = nil
}
