// Package lspclient is a small LSP client — an editor stand-in — used by
// `procref demo`, the tests and the benchmarks. It is built on
// go.lsp.dev/jsonrpc2 and defines only the few LSP types procref needs.
//
// A Client answers the server requests an editor must answer
// (workspace/configuration with nulls, registrations and progress creation
// with null), records diagnostics per URI, and lets the caller wait for them.
package lspclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"go.lsp.dev/jsonrpc2"

	"github.com/procref/procref/proxy"
)

// Diagnostic is an LSP diagnostic (the fields procref looks at).
type Diagnostic struct {
	Range    Range  `json:"range"`
	Severity int    `json:"severity,omitempty"`
	Source   string `json:"source,omitempty"`
	Message  string `json:"message"`
}

// Position is an LSP position (UTF-16 columns).
type Position struct {
	Line      int `json:"line"`
	Character int `json:"character"`
}

// Range is an LSP range.
type Range struct {
	Start Position `json:"start"`
	End   Position `json:"end"`
}

// PublishDiagnostics is textDocument/publishDiagnostics's params.
type PublishDiagnostics struct {
	URI         string       `json:"uri"`
	Version     *int         `json:"version,omitempty"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// Client is one LSP client session over a byte stream.
type Client struct {
	conn jsonrpc2.Conn

	mu      sync.Mutex
	diags   map[string]PublishDiagnostics
	changed chan struct{}
}

// New starts a client on rwc (e.g. a proxy's stdio, or a TCP connection).
// The client owns rwc; Close closes it.
func New(ctx context.Context, rwc io.ReadWriteCloser) *Client {
	c := &Client{diags: map[string]PublishDiagnostics{}, changed: make(chan struct{})}
	c.conn = jsonrpc2.NewConn(jsonrpc2.NewStream(rwc))
	c.conn.Go(ctx, c.handle)
	return c
}

// NewOnPipes starts a client on a process's stdout (r) and stdin (w), as
// an editor runs its server; Close closes both.
func NewOnPipes(ctx context.Context, r io.ReadCloser, w io.WriteCloser) *Client {
	return New(ctx, pipes{r, w})
}

// pipes joins a process's stdout (read) and stdin (write).
type pipes struct {
	r io.ReadCloser
	w io.WriteCloser
}

func (p pipes) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipes) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipes) Close() error {
	p.w.Close()
	return p.r.Close()
}

func (c *Client) handle(ctx context.Context, req *jsonrpc2.Request) (any, error) {
	switch req.Method() {
	case "textDocument/publishDiagnostics":
		var p PublishDiagnostics
		if err := json.Unmarshal(req.Params(), &p); err == nil {
			c.mu.Lock()
			c.diags[p.URI] = p
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
		return nil, nil
	}
	if !req.IsCall() {
		return nil, nil // window/logMessage and the like: nothing to answer
	}
	switch req.Method() {
	case "workspace/configuration":
		var p struct {
			Items []json.RawMessage `json:"items"`
		}
		json.Unmarshal(req.Params(), &p)
		return make([]any, len(p.Items)), nil
	case "client/registerCapability", "client/unregisterCapability", "window/workDoneProgress/create",
		"workspace/diagnostic/refresh", "workspace/semanticTokens/refresh", "workspace/inlayHint/refresh",
		"workspace/codeLens/refresh", "workspace/inlineValue/refresh":
		return nil, nil
	case "workspace/workspaceFolders":
		return []any{}, nil
	}
	return nil, jsonrpc2.ErrMethodNotFound
}

// Call sends a request and decodes its result into result (may be nil).
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	_, err := c.conn.Call(ctx, method, params, result)
	return err
}

// Notify sends a notification.
func (c *Client) Notify(ctx context.Context, method string, params any) error {
	return c.conn.Notify(ctx, method, params)
}

// InitializeResult is the part of the initialize result procref looks at.
type InitializeResult struct {
	Capabilities map[string]json.RawMessage `json:"capabilities"`
	ServerInfo   *struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	} `json:"serverInfo,omitempty"`
}

// Initialize sends initialize (rooted at the directory root) and initialized.
func (c *Client) Initialize(ctx context.Context, root string) (*InitializeResult, error) {
	uri := FileURI(root)
	params := map[string]any{
		"processId":        nil,
		"rootUri":          uri,
		"workspaceFolders": []any{map[string]any{"uri": uri, "name": filepath.Base(root)}},
		"capabilities": map[string]any{
			"textDocument": map[string]any{
				"hover":              map[string]any{"contentFormat": []string{"plaintext", "markdown"}},
				"publishDiagnostics": map[string]any{"versionSupport": true},
				"synchronization":    map[string]any{"didSave": true},
			},
			"workspace": map[string]any{"workspaceFolders": true, "configuration": true},
			"window":    map[string]any{"workDoneProgress": true},
		},
		"clientInfo": map[string]any{"name": "procref-lspclient"},
	}
	var res InitializeResult
	if err := c.Call(ctx, "initialize", params, &res); err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if err := c.Notify(ctx, "initialized", map[string]any{}); err != nil {
		return nil, err
	}
	return &res, nil
}

// DidOpen opens a document.
func (c *Client) DidOpen(ctx context.Context, uri, languageID, text string) error {
	return c.Notify(ctx, "textDocument/didOpen", map[string]any{
		"textDocument": map[string]any{"uri": uri, "languageId": languageID, "version": 1, "text": text},
	})
}

// Hover asks for hover text at a position and returns its plain content.
func (c *Client) Hover(ctx context.Context, uri string, line, char int) (string, error) {
	var res *struct {
		Contents json.RawMessage `json:"contents"`
	}
	err := c.Call(ctx, "textDocument/hover", map[string]any{
		"textDocument": map[string]any{"uri": uri},
		"position":     Position{line, char},
	}, &res)
	if err != nil || res == nil {
		return "", err
	}
	return hoverText(res.Contents), nil
}

func hoverText(raw json.RawMessage) string {
	var mc struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(raw, &mc) == nil && mc.Value != "" {
		return mc.Value
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil {
		parts := make([]string, 0, len(arr))
		for _, a := range arr {
			parts = append(parts, hoverText(a))
		}
		return strings.Join(parts, "\n")
	}
	return string(raw)
}

// WaitDiagnostics blocks until diagnostics for uri satisfy ok (nil: any
// publication), or ctx is done.
func (c *Client) WaitDiagnostics(ctx context.Context, uri string, ok func([]Diagnostic) bool) ([]Diagnostic, error) {
	for {
		c.mu.Lock()
		p, seen := c.diags[uri]
		ch := c.changed
		c.mu.Unlock()
		if seen && (ok == nil || ok(p.Diagnostics)) {
			return p.Diagnostics, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for diagnostics on %s: %w", uri, ctx.Err())
		case <-c.conn.Done():
			return nil, fmt.Errorf("waiting for diagnostics on %s: connection closed: %v", uri, c.conn.Err())
		}
	}
}

// Shutdown sends shutdown then exit.
func (c *Client) Shutdown(ctx context.Context) error {
	if err := c.Call(ctx, "shutdown", nil, nil); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return c.Notify(ctx, "exit", nil)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// FileURI returns the file:// URI of an absolute path.
func FileURI(path string) string {
	return proxy.PathToURI(path)
}
