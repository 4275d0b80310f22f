package lspmux

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/lspframe"
)

// fromClient routes one message from c. A non-nil error ends the session.
func (m *mux) fromClient(c *client, body []byte) error {
	f, err := lspframe.Scan(body)
	if err != nil {
		c.log.Warn("lsp client sent invalid json; answered with a parse error", "err", err)
		c.send(msgError(nil, codeParseError, err.Error()))
		return nil
	}
	if f.Method.Ok() && f.MethodName() == "" {
		var id []byte
		if f.ID.Ok() && validID(f.ID.Of(body)) {
			id = f.ID.Of(body)
		}
		c.send(msgError(id, codeInvalidRequest, "empty method name"))
		return nil
	}
	if k := f.Kind(); (k == lspframe.Request && notificationOnly[f.MethodName()]) ||
		(k == lspframe.Notification && requestOnly[f.MethodName()]) {
		// A lifecycle or document message of the wrong kind would reach
		// the backend untracked (an exit request would stop it for all).
		c.log.Warn("lsp client sent a message of the wrong kind; refused", "method", f.MethodName(), "kind", k)
		if k == lspframe.Request {
			c.send(msgError(f.ID.Of(body), codeInvalidRequest, f.MethodName()+" is a notification"))
		}
		return nil
	}
	if k := f.Kind(); (k == lspframe.Request && f.MethodName() != "initialize") ||
		(k == lspframe.Notification && f.MethodName() != "exit") {
		// A client that sends on right after its initialize (before the
		// result: LSP forbids it, but servers on stdio just read on, and
		// some clients rely on that) gets its messages handled in order
		// once it is answered, not refused.
		m.awaitInit(c)
	}
	switch f.Kind() {
	case lspframe.Response:
		m.clientResponse(c, &f, body)
		return nil
	case lspframe.Request:
		id := f.ID.Of(body)
		if !validID(id) {
			c.send(msgError(nil, codeInvalidRequest, "request id must be a number or a string"))
			return nil
		}
		switch f.MethodName() {
		case "initialize":
			m.clientInitialize(c, &f, body)
			return nil
		case "shutdown":
			// The backend stays up for the others; the client's exit
			// will end only its session.
			c.send(msgResult(id, nil))
			return nil
		}
		return m.clientRequest(c, &f, body)
	case lspframe.Notification:
		switch f.MethodName() {
		case "exit":
			return errExit
		case "initialized":
			m.clientInitialized(c)
			return nil
		}
		return m.clientNotification(c, &f, body)
	}
	var id []byte
	if f.ID.Ok() && validID(f.ID.Of(body)) {
		id = f.ID.Of(body)
	}
	c.send(msgError(id, codeInvalidRequest, "not a json-rpc request, notification or response"))
	return nil
}

// notificationOnly and requestOnly are the methods the mux tracks or that
// end the backend's session; they are refused in the other kind.
var (
	notificationOnly = map[string]bool{
		"initialized": true, "exit": true, "$/cancelRequest": true, "$/progress": true,
		"textDocument/didOpen": true, "textDocument/didChange": true, "textDocument/didClose": true,
		"workspace/didChangeWorkspaceFolders": true, "window/workDoneProgress/cancel": true,
	}
	requestOnly = map[string]bool{"initialize": true, "shutdown": true}
)

// clientInitialize answers initialize from the cache, or queues the client
// until the first initialize completes (starting the backend if this is
// the first).
func (m *mux) clientInitialize(c *client, f *lspframe.Fields, body []byte) {
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
	if sp, ok, _ := lspframe.Lookup(params, "capabilities"); ok {
		c.caps = append([]byte(nil), sp.Of(params)...)
	}
	switch m.phase {
	case phaseStopped:
		c.send(msgError(id, codeRequestFailed, "language server stopped"))
		return
	case phaseRunning:
		m.admit(c, id)
		return
	case phaseIdle:
		if params == nil {
			params = []byte("{}")
		}
		m.initParams = offerUTF16(params) // a fresh copy
		m.setPhase(phaseStarting)
		m.wg.Add(1)
		go m.supervise()
	}
	m.initWaiters = append(m.initWaiters, initWaiter{c, id})
	m.event("init-wait")
}

// awaitInit blocks while c's initialize is in flight (sent, not yet
// answered). It returns at once otherwise, and when the answer is out
// either way (admitted, or failed: then the caller's message is refused as
// before initialize), or the client or mux stops. This reader goroutine is
// the client's own, so waiting here holds up only this client.
func (m *mux) awaitInit(c *client) {
	for {
		m.mu.Lock()
		waiting, ch := c.sentInit && !c.inited && !c.gone && m.phase != phaseStopped, m.phaseCh
		m.mu.Unlock()
		if !waiting {
			return
		}
		m.flushServer(c) // never wait while holding the backend
		m.event("await-init")
		select {
		case <-ch:
		case <-c.stop:
			return
		}
	}
}

// admit answers c's initialize from the cache and joins it to the session.
// Called with mu held.
func (m *mux) admit(c *client, id []byte) {
	c.send(msgResult(id, m.initResult))
	c.inited = true
	m.addFolders(c)
}

// clientInitialized swallows the client's initialized and replays the
// current registrations to it.
func (m *mux) clientInitialized(c *client) {
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

// requestClient sends the client a request whose answer is dropped.
// Called with mu held.
func (m *mux) requestClient(c *client, method string, params []byte) {
	c.send(msgRequest(m.nextID.Add(1), method, params))
}

// clientRequest forwards a request with a host id (and host progress
// tokens) to the backend.
func (m *mux) clientRequest(c *client, f *lspframe.Fields, body []byte) error {
	if !m.ready(c) {
		m.log.Warn("request before the initialize result refused (LSP forbids it)", "client", c.id, "method", f.MethodName())
		c.send(msgError(f.ID.Of(body), codeServerNotInitialized, "initialize first"))
		return nil
	}
	var toks []lspframe.Span
	if f.Params.Ok() {
		params := f.Params.Of(body)
		sp, err := lspframe.Members(params, "workDoneToken", "partialResultToken")
		if err == nil {
			for _, s := range sp {
				if s.Ok() {
					toks = append(toks, lspframe.Span{Start: f.Params.Start + s.Start, End: f.Params.Start + s.End})
				}
			}
		}
	}
	return m.forward(c, body, func(hid int64) (item, func()) {
		origID := append([]byte(nil), f.ID.Of(body)...)
		edits := []lspframe.Edit{{At: f.ID, With: idToken(hid)}}
		p := &pending{c: c, origID: origID, method: f.MethodName(), seq: m.activeSeq, size: int64(len(body))}
		c.awaiting.Add(p.size)
		for _, s := range toks {
			orig := append([]byte(nil), s.Of(body)...)
			htok := string(lspframe.Quote("procref/" + strconv.FormatInt(m.nextID.Add(1), 10)))
			m.ctokens[htok] = &ctoken{c: c, orig: orig}
			c.tokens[string(orig)] = htok
			p.tokens = append(p.tokens, htok)
			edits = append(edits, lspframe.Edit{At: s, With: []byte(htok)})
		}
		m.pending[hid] = p
		c.reqs[string(origID)] = hid
		// nothing keeps body (ids and tokens were copied): written with
		// the edits spliced in, then recycled
		return item{body: body, edits: edits, recycle: true}, nil
	})
}

// ready reports whether c may talk to the backend, waiting while the
// backend restarts.
func (m *mux) ready(c *client) bool {
	m.mu.Lock()
	inited := c.inited
	m.mu.Unlock()
	return inited && m.waitRunning(c)
}

// clientStall is how long a client whose queue is over a quarter of its
// bound may go without taking a message before it counts as not reading.
const clientStall = 2 * time.Second

// forward takes c's in-flight quota for body, then (with mu held and the
// backend running) lets build produce the item to send and queues it.
// build may return an item without a body to send nothing.
func (m *mux) forward(c *client, body []byte, build func(hid int64) (item, func())) error {
	n := int64(len(body))
	for {
		// The client is not keeping up with what is sent to it (mostly
		// the answers to what it asked, counted by request size while the
		// backend works on them): stop reading its requests until it
		// catches up, rather than let its queue reach ClientQueue and
		// disconnect a client that reads, only slowly. A client that does
		// not read at all (its queue over a quarter of the bound, nothing
		// taken for clientStall) is disconnected.
		over := func(queued int64) bool { return queued+c.awaiting.Load() > m.cfg.ClientQueue/2 }
		if c.out.over(over) {
			m.flushServer(c)
			switch err := c.out.waitRoom(over, m.cfg.ClientQueue/4, c.stop, clientStall); err {
			case errStalled:
				c.log.Warn("lsp client is not reading its messages; disconnecting it", "queued_over", m.cfg.ClientQueue/4)
				c.kill(errSlowClient)
				return errSlowClient
			case errCanceled:
				return c.killErr
			}
		}
		if !c.quota.tryAcquire(n) {
			// what this reader gathered for the backend (flushServer) may
			// be what holds the quota
			m.flushServer(c)
			if !c.quota.acquire(n, c.stop) {
				return c.killErr
			}
		}
		m.mu.Lock()
		if m.phase != phaseRunning {
			m.mu.Unlock()
			c.quota.release(n)
			if !m.waitRunning(c) {
				return nil
			}
			continue
		}
		m.activeSeq++
		c.active = m.activeSeq
		out, after := build(m.nextID.Add(1))
		if out.body != nil {
			out.release = func() { c.quota.release(n) }
			// this reader may write it itself (flushServer); queue order
			// is kept, and a backend that does not read blocks this
			// client's reader only, as its quota would
			m.toServerDirect(c, out)
		} else {
			c.quota.release(n)
		}
		m.mu.Unlock()
		if after != nil {
			after()
		}
		return nil
	}
}

func (m *mux) clientNotification(c *client, f *lspframe.Fields, body []byte) error {
	if !m.ready(c) {
		// Dropped: LSP forbids notifications before the initialize result.
		// Say so, or a client that sends didOpen early never learns why it
		// gets no diagnostics.
		m.log.Warn("notification before the initialize result dropped (LSP forbids it)", "client", c.id, "method", f.MethodName())
		return nil
	}
	params := f.Params.Of(body)
	switch f.MethodName() {
	case "$/cancelRequest":
		sp, ok, _ := lspframe.Lookup(params, "id")
		if !ok {
			return nil
		}
		at := lspframe.Span{Start: f.Params.Start + sp.Start, End: f.Params.Start + sp.End}
		return m.forward(c, body, func(int64) (item, func()) {
			hid, ok := c.reqs[string(at.Of(body))]
			if !ok {
				return item{}, nil // already answered
			}
			return item{body: body, edits: []lspframe.Edit{{At: at, With: idToken(hid)}}}, nil
		})
	case "window/workDoneProgress/cancel":
		sp, ok, _ := lspframe.Lookup(params, "token")
		if !ok {
			return nil
		}
		at := lspframe.Span{Start: f.Params.Start + sp.Start, End: f.Params.Start + sp.End}
		return m.forward(c, body, func(int64) (item, func()) {
			if htok, ok := c.tokens[string(at.Of(body))]; ok {
				return item{body: body, edits: []lspframe.Edit{{At: at, With: []byte(htok)}}}, nil
			}
			return item{body: body}, nil // a token the backend created
		})
	case "textDocument/didOpen":
		p, vs, err := parseDidOpen(params)
		if err != nil {
			c.log.Warn("lsp client sent a bad didOpen; dropped", "err", err)
			return nil
		}
		verAt := lspframe.Span{}
		if vs.Ok() {
			verAt = lspframe.Span{Start: f.Params.Start + vs.Start, End: f.Params.Start + vs.End}
		}
		return m.forward(c, body, func(int64) (item, func()) {
			return item{body: m.openDoc(c, &p, body, verAt)}, nil
		})
	case "textDocument/didChange":
		var p didChangeParams
		if err := json.Unmarshal(params, &p); err != nil || p.TextDocument.URI == "" {
			c.log.Warn("lsp client sent a bad didChange; dropped", "err", err)
			return nil
		}
		vs, _, _ := lspframe.Lookup(params, "textDocument", "version")
		verAt := lspframe.Span{}
		if vs.Ok() {
			verAt = lspframe.Span{Start: f.Params.Start + vs.Start, End: f.Params.Start + vs.End}
		}
		return m.forward(c, body, func(int64) (item, func()) {
			return item{body: m.changeDoc(c, &p, body, verAt)}, nil
		})
	case "textDocument/didClose":
		var p struct {
			TextDocument struct {
				URI string `json:"uri"`
			} `json:"textDocument"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil
		}
		return m.forward(c, body, func(int64) (item, func()) {
			if _, ok := c.docs[p.TextDocument.URI]; ok {
				m.closeDoc(c, p.TextDocument.URI, true)
			}
			return item{}, nil
		})
	case "workspace/didChangeWorkspaceFolders":
		return m.changeFolders(c, body, params)
	}
	// nothing keeps body: recycled once written
	return m.forward(c, body, func(int64) (item, func()) { return item{body: body, recycle: true}, nil })
}

// changeFolders applies c's didChangeWorkspaceFolders to its folders; the
// backend hears of folders no other client has (addFolders, dropFolders).
func (m *mux) changeFolders(c *client, body, params []byte) error {
	var p struct {
		Event struct {
			Added   []folder `json:"added"`
			Removed []folder `json:"removed"`
		} `json:"event"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil
	}
	return m.forward(c, body, func(int64) (item, func()) {
		m.dropFolders(c, true)
		keep := c.folders[:0]
		for _, f := range c.folders {
			removed := false
			for _, r := range p.Event.Removed {
				removed = removed || sameFolder(r.URI, f.URI)
			}
			if !removed {
				keep = append(keep, f)
			}
		}
		c.folders = append(keep, p.Event.Added...)
		m.addFolders(c)
		return item{}, nil
	})
}

// parseDidOpen reads didOpen params without a full decode (the text may
// be large): it returns the document and the span of its version within
// params.
func parseDidOpen(params []byte) (didOpenParams, lspframe.Span, error) {
	var p didOpenParams
	tdSp, ok, err := lspframe.Lookup(params, "textDocument")
	if err != nil || !ok {
		return p, lspframe.Span{}, fmt.Errorf("no textDocument: %v", err)
	}
	td := tdSp.Of(params)
	sp, err := lspframe.Members(td, "uri", "languageId", "version", "text")
	if err != nil {
		return p, lspframe.Span{}, err
	}
	item := &p.TextDocument
	if item.URI, err = lspframe.Unquote(sp[0].Of(td)); err != nil || item.URI == "" {
		return p, lspframe.Span{}, fmt.Errorf("bad uri: %v", err)
	}
	if sp[1].Ok() {
		item.LanguageID, _ = lspframe.Unquote(sp[1].Of(td))
	}
	if item.Text, err = lspframe.Unquote(sp[3].Of(td)); err != nil {
		return p, lspframe.Span{}, fmt.Errorf("bad text: %v", err)
	}
	var vs lspframe.Span
	if v, err := strconv.ParseInt(string(sp[2].Of(td)), 10, 64); err == nil {
		item.Version = v
		vs = lspframe.Span{Start: tdSp.Start + sp[2].Start, End: tdSp.Start + sp[2].End}
	}
	return p, vs, nil
}

// clientResponse maps a client's answer to a backend request back to the
// backend's id; answers to requests the mux made up are dropped.
func (m *mux) clientResponse(c *client, f *lspframe.Fields, body []byte) {
	hid, ok := parseHostID(f.ID.Of(body))
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sr, ok := c.outReqs[hid]
	if !ok {
		return
	}
	delete(c.outReqs, hid)
	delete(m.srvReqs, string(sr.sid))
	// Sent without the client's quota: it answers what the backend asked.
	m.toServer(lspframe.Splice(body, f.ID, sr.sid), nil)
}

// initFolders returns the workspace folders a client's initialize names:
// workspaceFolders, else rootUri, else rootPath.
func initFolders(params []byte) []folder {
	var p struct {
		WorkspaceFolders []folder `json:"workspaceFolders"`
		RootURI          string   `json:"rootUri"`
		RootPath         string   `json:"rootPath"`
	}
	sp, err := lspframe.Members(params, "workspaceFolders", "rootUri", "rootPath")
	if err != nil {
		return nil
	}
	if sp[0].Ok() {
		json.Unmarshal(sp[0].Of(params), &p.WorkspaceFolders)
	}
	if len(p.WorkspaceFolders) > 0 {
		return p.WorkspaceFolders
	}
	if sp[1].Ok() {
		json.Unmarshal(sp[1].Of(params), &p.RootURI)
	}
	if sp[2].Ok() {
		json.Unmarshal(sp[2].Of(params), &p.RootPath)
	}
	uri := p.RootURI
	if uri == "" && p.RootPath != "" {
		uri = "file://" + p.RootPath
	}
	if uri == "" {
		return nil
	}
	name := strings.TrimSuffix(uri, "/")
	name = name[strings.LastIndexByte(name, '/')+1:]
	return []folder{{URI: uri, Name: name}}
}

func sameFolder(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// addFolders adds c's folders to the union and tells the backend about new
// ones (global share scope). Called with mu held.
func (m *mux) addFolders(c *client) {
	var added []folder
	for _, f := range c.folders {
		key := strings.TrimSuffix(f.URI, "/")
		ref := m.folders[key]
		if ref == nil {
			ref = &folderRef{name: f.Name}
			m.folders[key] = ref
		}
		ref.n++
		if !m.backendFold[key] && m.phase == phaseRunning {
			added = append(added, f)
		}
	}
	m.tellFolders(added, nil)
}

// dropFolders removes c's folders from the union and tells the backend to
// forget folders no client has any more. Called with mu held.
func (m *mux) dropFolders(c *client, live bool) {
	if !c.inited {
		return // its folders were never added (it left before admission)
	}
	var removed []folder
	for _, f := range c.folders {
		key := strings.TrimSuffix(f.URI, "/")
		ref := m.folders[key]
		if ref == nil {
			continue
		}
		if ref.n--; ref.n <= 0 {
			delete(m.folders, key)
			if m.backendFold[key] && live {
				removed = append(removed, f)
			}
		}
	}
	m.tellFolders(nil, removed)
}

// tellFolders sends workspace/didChangeWorkspaceFolders when the share
// scope is global and the backend supports it. Called with mu held.
func (m *mux) tellFolders(added, removed []folder) {
	if !m.cfg.ShareGlobal || (len(added) == 0 && len(removed) == 0) {
		return
	}
	if !m.folderCaps {
		m.log.Warn("language server does not support workspace folder changes; a client's folders were not added: share per root instead",
			"added", len(added))
		return
	}
	for _, f := range added {
		m.backendFold[strings.TrimSuffix(f.URI, "/")] = true
	}
	for _, f := range removed {
		delete(m.backendFold, strings.TrimSuffix(f.URI, "/"))
	}
	if added == nil {
		added = []folder{}
	}
	if removed == nil {
		removed = []folder{}
	}
	m.toServer(msgNotification("workspace/didChangeWorkspaceFolders", mustJSON(map[string]any{
		"event": map[string]any{"added": added, "removed": removed},
	})), nil)
}

// folderList is the union of the clients' folders (workspace/workspaceFolders).
func (m *mux) folderList() []folder {
	out := make([]folder, 0, len(m.folders))
	for uri, ref := range m.folders {
		out = append(out, folder{URI: uri, Name: ref.name})
	}
	return out
}
