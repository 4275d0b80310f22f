package lspmux

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"

	"github.com/procref/procref/internal/wire"
)

// tclient is a minimal LSP client for tests. It records every message it
// gets and flags responses to ids it never sent.
type tclient struct {
	t    testing.TB
	name string
	conn io.ReadWriteCloser
	wmu  sync.Mutex

	mu         sync.Mutex
	next       int
	calls      map[string]chan wireMsg
	notes      []wireMsg
	wake       chan struct{} // closed and replaced on every new notification
	srvReqs    []wireMsg
	answer     func(m wireMsg) (result any, errMsg string, reply bool)
	violations []string
	nullErrs   []wireMsg // error answers with a null id (parse errors)
	done       chan struct{}
	readErr    error
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

func newTClient(t testing.TB, name string, conn io.ReadWriteCloser) *tclient {
	c := &tclient{t: t, name: name, conn: conn, calls: map[string]chan wireMsg{}, wake: make(chan struct{}), done: make(chan struct{})}
	go c.read()
	return c
}

func (c *tclient) read() {
	defer close(c.done)
	r := wire.NewReader(c.conn, 0)
	for {
		body, err := r.Read()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			for id, ch := range c.calls {
				close(ch)
				delete(c.calls, id)
			}
			close(c.wake)
			c.wake = make(chan struct{})
			c.mu.Unlock()
			return
		}
		var m wireMsg
		if err := json.Unmarshal(body, &m); err != nil {
			c.mu.Lock()
			c.violations = append(c.violations, fmt.Sprintf("%s: invalid json %q", c.name, body))
			c.mu.Unlock()
			continue
		}
		switch {
		case m.Method == "" && m.ID != nil:
			c.mu.Lock()
			ch := c.calls[string(m.ID)]
			delete(c.calls, string(m.ID))
			if string(m.ID) == "null" {
				c.nullErrs = append(c.nullErrs, m)
				close(c.wake)
				c.wake = make(chan struct{})
			} else if ch == nil {
				c.violations = append(c.violations, fmt.Sprintf("%s: response to id %s it never sent (or twice)", c.name, m.ID))
			}
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case m.ID != nil:
			c.mu.Lock()
			c.srvReqs = append(c.srvReqs, m)
			ans := c.answer
			close(c.wake)
			c.wake = make(chan struct{})
			c.mu.Unlock()
			var result any
			errMsg, reply := "", true
			if ans != nil {
				result, errMsg, reply = ans(m)
			}
			if reply {
				if errMsg != "" {
					c.write(map[string]any{"jsonrpc": "2.0", "id": m.ID, "error": map[string]any{"code": -32603, "message": errMsg}})
				} else {
					c.write(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": result})
				}
			}
		default:
			c.mu.Lock()
			c.notes = append(c.notes, m)
			close(c.wake)
			c.wake = make(chan struct{})
			c.mu.Unlock()
		}
	}
}

func (c *tclient) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

func (c *tclient) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wire.Write(c.conn, b)
}

// start sends a request and returns its id and a channel for the answer.
func (c *tclient) start(method string, params any) (string, chan wireMsg) {
	c.mu.Lock()
	c.next++
	id := strconv.Quote(fmt.Sprintf("%s-%d", c.name, c.next)) // string ids, to exercise mapping
	if c.next%2 == 0 {
		id = strconv.Itoa(c.next) // and numbers
	}
	ch := make(chan wireMsg, 1)
	c.calls[id] = ch
	c.mu.Unlock()
	if err := c.write(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "method": method, "params": params}); err != nil {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		close(ch)
	}
	return id, ch
}

func (c *tclient) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	_, ch := c.start(method, params)
	return wait(ctx, ch)
}

func wait(ctx context.Context, ch chan wireMsg) (json.RawMessage, error) {
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, io.ErrUnexpectedEOF
		}
		if m.Error != nil {
			var e rpcError
			json.Unmarshal(m.Error, &e)
			return nil, &e
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *tclient) notify(method string, params any) error {
	return c.write(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

// waitNote waits for a notification matching pred, looking at all
// received so far, and returns it.
func (c *tclient) waitNote(ctx context.Context, pred func(m wireMsg) bool) (wireMsg, error) {
	seen := 0
	for {
		c.mu.Lock()
		for ; seen < len(c.notes); seen++ {
			if pred(c.notes[seen]) {
				m := c.notes[seen]
				c.mu.Unlock()
				return m, nil
			}
		}
		w, rerr := c.wake, c.readErr
		c.mu.Unlock()
		if rerr != nil {
			return wireMsg{}, rerr
		}
		select {
		case <-w:
		case <-ctx.Done():
			return wireMsg{}, fmt.Errorf("%s: waiting for a notification: %w", c.name, ctx.Err())
		}
	}
}

// waitSrvReq waits for a server request matching pred.
func (c *tclient) waitSrvReq(ctx context.Context, pred func(m wireMsg) bool) (wireMsg, error) {
	for {
		c.mu.Lock()
		for _, m := range c.srvReqs {
			if pred(m) {
				c.mu.Unlock()
				return m, nil
			}
		}
		w, rerr := c.wake, c.readErr
		c.mu.Unlock()
		if rerr != nil {
			return wireMsg{}, rerr
		}
		select {
		case <-w:
		case <-ctx.Done():
			return wireMsg{}, fmt.Errorf("%s: waiting for a server request: %w", c.name, ctx.Err())
		}
	}
}

// waitNullErrs waits for n error answers with a null id.
func (c *tclient) waitNullErrs(ctx context.Context, n int) ([]wireMsg, error) {
	for {
		c.mu.Lock()
		got, w, rerr := append([]wireMsg(nil), c.nullErrs...), c.wake, c.readErr
		c.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		if rerr != nil {
			return got, rerr
		}
		select {
		case <-w:
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}

func (c *tclient) notesFor(method string) []wireMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []wireMsg
	for _, m := range c.notes {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

func (c *tclient) requestsFor(method string) []wireMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []wireMsg
	for _, m := range c.srvReqs {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

func (c *tclient) close() {
	c.conn.Close()
	<-c.done
}

func (c *tclient) initialize(ctx context.Context, rootURI string) (json.RawMessage, error) {
	return c.initializeCaps(ctx, rootURI, fullCaps)
}

// initializeCaps is initialize declaring caps.
func (c *tclient) initializeCaps(ctx context.Context, rootURI string, caps map[string]any) (json.RawMessage, error) {
	params := map[string]any{
		"processId": nil, "rootUri": rootURI,
		"capabilities": caps,
	}
	if rootURI != "" {
		params["workspaceFolders"] = []folder{{URI: rootURI, Name: "root"}}
	}
	res, err := c.call(ctx, "initialize", params)
	if err != nil {
		return nil, err
	}
	return res, c.notify("initialized", map[string]any{})
}

func (c *tclient) didOpen(uri, text string, version int) error {
	return c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{"uri": uri, "languageId": "c", "version": version, "text": text}})
}

func (c *tclient) didClose(uri string) error {
	return c.notify("textDocument/didClose", map[string]any{"textDocument": map[string]any{"uri": uri}})
}

func (c *tclient) hover(ctx context.Context, uri string, line, char int) (json.RawMessage, error) {
	return c.call(ctx, "textDocument/hover", map[string]any{
		"textDocument": map[string]any{"uri": uri}, "position": map[string]int{"line": line, "character": char},
	})
}

func (c *tclient) violationsNow() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// diagURIs returns the URIs of the diagnostics the client got.
func (c *tclient) diagURIs() map[string]int {
	out := map[string]int{}
	for _, m := range c.notesFor("textDocument/publishDiagnostics") {
		var p struct{ URI string }
		json.Unmarshal(m.Params, &p)
		out[p.URI]++
	}
	return out
}

// fullCaps declares everything the mux gates per window, so tests that do
// not test the gating get every request.
var fullCaps = map[string]any{
	"window": map[string]any{"workDoneProgress": true, "showDocument": map[string]any{"support": true}, "showMessage": map[string]any{}},
	"workspace": map[string]any{
		"configuration": true, "applyEdit": true, "workspaceFolders": true,
		"semanticTokens":        map[string]any{"refreshSupport": true},
		"codeLens":              map[string]any{"refreshSupport": true},
		"inlayHint":             map[string]any{"refreshSupport": true},
		"diagnostics":           map[string]any{"refreshSupport": true},
		"didChangeWatchedFiles": map[string]any{"dynamicRegistration": true},
	},
	"textDocument": map[string]any{"synchronization": map[string]any{"dynamicRegistration": true}},
}
