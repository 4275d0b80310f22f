package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/procref/procref/internal/wire"
	"github.com/procref/procref/proxy"
)

// lspClient is the simulated editor of `procref demo`: a sequential LSP
// client on internal/wire and encoding/json. The tests' client (lspclient, on
// go.lsp.dev/jsonrpc2) is not used here so that its packages, and their
// initialisation, stay out of the procref binary that every editor window
// starts (1–2 ms per start on the 2-core CI machine).
type lspClient struct {
	r      *wire.Reader
	w      io.WriteCloser
	closer io.Closer
	nextID int
	diags  map[string][]diagnostic // last publication per URI
}

type diagnostic struct {
	Range struct {
		Start struct{ Line, Character int } `json:"start"`
	} `json:"range"`
	Message string `json:"message"`
}

// message is any incoming message.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func newLSPClient(stdout io.ReadCloser, stdin io.WriteCloser) *lspClient {
	return &lspClient{r: wire.NewReader(stdout, 0), w: stdin, closer: stdout, diags: map[string][]diagnostic{}}
}

func (c *lspClient) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return wire.Write(c.w, b)
}

// notify sends a notification.
func (c *lspClient) notify(method string, params any) error {
	return c.send(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

// call sends a request and reads until its response, handling what comes
// in between. It blocks; the caller bounds it by killing the proxy.
func (c *lspClient) call(method string, params any, result any) error {
	c.nextID++
	id := c.nextID
	if err := c.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	for {
		m, err := c.next()
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		if m.Method != "" || string(m.ID) != fmt.Sprint(id) {
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("%s: error %d: %s", method, m.Error.Code, m.Error.Message)
		}
		if result != nil && len(m.Result) > 0 {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	}
}

// next reads one message; it records diagnostics and answers server
// requests with a null result, as an editor with no special support would.
func (c *lspClient) next() (*message, error) {
	body, err := c.r.Read()
	if err != nil {
		return nil, err
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("malformed message from the server: %w", err)
	}
	switch {
	case m.Method == "textDocument/publishDiagnostics":
		var p struct {
			URI         string       `json:"uri"`
			Diagnostics []diagnostic `json:"diagnostics"`
		}
		if json.Unmarshal(m.Params, &p) == nil {
			c.diags[p.URI] = p.Diagnostics
		}
	case m.Method != "" && len(m.ID) > 0:
		err = c.send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": nil})
	}
	return &m, err
}

// initialize sends initialize and initialized; it returns the server name.
func (c *lspClient) initialize(root string) (string, error) {
	var res struct {
		ServerInfo *struct {
			Name string `json:"name"`
		} `json:"serverInfo"`
	}
	uri := proxy.PathToURI(root)
	err := c.call("initialize", map[string]any{
		"processId":        nil,
		"rootUri":          uri,
		"workspaceFolders": []map[string]string{{"uri": uri, "name": filepath.Base(root)}},
		"capabilities":     map[string]any{},
	}, &res)
	if err != nil {
		return "", err
	}
	name := "?"
	if res.ServerInfo != nil {
		name = res.ServerInfo.Name
	}
	return name, c.notify("initialized", map[string]any{})
}

func (c *lspClient) didOpen(uri, lang, text string) error {
	return c.notify("textDocument/didOpen", map[string]any{
		"textDocument": map[string]any{"uri": uri, "languageId": lang, "version": 1, "text": text},
	})
}

// waitDiagnostics reads until diagnostics for uri are non-empty.
func (c *lspClient) waitDiagnostics(uri string) ([]diagnostic, error) {
	for len(c.diags[uri]) == 0 {
		if _, err := c.next(); err != nil {
			return nil, fmt.Errorf("waiting for diagnostics on %s: %w", uri, err)
		}
	}
	return c.diags[uri], nil
}

// hover returns the hover text at a position.
func (c *lspClient) hover(uri string, line, char int) (string, error) {
	var res struct {
		Contents json.RawMessage `json:"contents"`
	}
	err := c.call("textDocument/hover", map[string]any{
		"textDocument": map[string]any{"uri": uri},
		"position":     map[string]int{"line": line, "character": char},
	}, &res)
	if err != nil {
		return "", err
	}
	var mc struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(res.Contents, &mc) == nil && mc.Value != "" {
		return mc.Value, nil
	}
	var s string
	if json.Unmarshal(res.Contents, &s) == nil {
		return s, nil
	}
	return string(res.Contents), nil
}

// shutdown sends shutdown and exit, then closes the proxy's stdin.
func (c *lspClient) shutdown() error {
	if err := c.call("shutdown", nil, nil); err != nil {
		return err
	}
	if err := c.notify("exit", nil); err != nil {
		return err
	}
	return c.w.Close()
}
