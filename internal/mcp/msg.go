package mcp

import (
	"encoding/json"
	"strconv"

	"github.com/procref/procref/internal/wire"
)

// JSON-RPC error codes the mux answers with.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeInternal       = -32603
)

// msg is one JSON-RPC message (parseMsg, encode). Params, result and
// error stay raw: the mux decodes only the few params it routes on.
type msg struct {
	ID     json.RawMessage
	Method string
	Params json.RawMessage
	Result json.RawMessage
	Error  json.RawMessage
}

// parseMsg finds the members of a client's message with the wire scanner
// (validating; no decode): the raw fields alias body, which the mux never
// reuses. A message that names a member twice is refused (parsers
// disagree on which value wins).
func parseMsg(body []byte) (*msg, error) { return msgOf(body, wire.Scan) }

// parseServerMsg is parseMsg for the server's messages, which are trusted
// to be valid JSON (wire.ScanTrusted, as lspmux reads its backend): what
// the server sent reaches the clients as it was, as without the mux.
func parseServerMsg(body []byte) (*msg, error) { return msgOf(body, wire.ScanTrusted) }

func msgOf(body []byte, scan func([]byte) (wire.Fields, error)) (*msg, error) {
	f, err := scan(body)
	if err != nil {
		return nil, err
	}
	m := &msg{ID: f.ID.Of(body), Method: f.MethodName(), Params: f.Params.Of(body),
		Result: f.Result.Of(body), Error: f.Error.Of(body)}
	if string(m.ID) == "null" {
		m.ID = nil
	}
	return m, nil
}

func (m *msg) isRequest() bool      { return m.Method != "" && m.ID != nil }
func (m *msg) isNotification() bool { return m.Method != "" && m.ID == nil }
func (m *msg) isResponse() bool     { return m.Method == "" && m.ID != nil }

// encode writes m as one JSON object, the raw fields as they are: each is
// valid JSON, from a parse (validated) or built by the mux.
func (m *msg) encode() []byte {
	b := make([]byte, 0, 48+len(m.ID)+len(m.Method)+len(m.Params)+len(m.Result)+len(m.Error))
	b = append(b, `{"jsonrpc":"2.0"`...)
	if len(m.ID) > 0 {
		b = append(append(b, `,"id":`...), m.ID...)
	}
	if m.Method != "" {
		b = wire.AppendQuote(append(b, `,"method":`...), m.Method)
	}
	for _, f := range [...]struct {
		name string
		raw  json.RawMessage
	}{{`,"params":`, m.Params}, {`,"result":`, m.Result}, {`,"error":`, m.Error}} {
		if len(f.raw) > 0 {
			b = append(append(b, f.name...), f.raw...)
		}
	}
	return append(b, '}')
}

func result(id, res json.RawMessage) []byte {
	if res == nil {
		res = json.RawMessage("{}")
	}
	return (&msg{ID: id, Result: res}).encode()
}

func errorMsg(id json.RawMessage, code int, message string) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	e, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   json.RawMessage `json:"error"`
	}{"2.0", id, e})
	return b
}

// notification returns a notification; nil params are left out (some
// SDKs refuse "params":null).
func notification(method string, params any) []byte {
	m := &msg{Method: method}
	if params != nil {
		m.Params, _ = json.Marshal(params)
	}
	return m.encode()
}

func hostID(n int64) json.RawMessage { return strconv.AppendInt(nil, n, 10) }

// setParam returns params with the member at path (an object path, created
// as needed) set to v; ok is false if params is not an object.
func setParam(params json.RawMessage, v json.RawMessage, path ...string) (json.RawMessage, bool) {
	obj := map[string]json.RawMessage{}
	if len(params) > 0 && json.Unmarshal(params, &obj) != nil {
		return params, false
	}
	if len(path) > 1 {
		inner, ok := setParam(obj[path[0]], v, path[1:]...)
		if !ok {
			return params, false
		}
		v = inner
	}
	obj[path[0]] = v
	b, _ := json.Marshal(obj)
	return b, true
}

// getParam returns the member at path in params, nil if absent. It scans
// (wire.Lookup) rather than decodes: it runs on every request and
// answer, and params were validated when the message was parsed. The
// result shares params' bytes.
func getParam(params json.RawMessage, path ...string) json.RawMessage {
	if len(path) == 0 || len(params) == 0 {
		return nil
	}
	sp, ok, err := wire.Lookup(params, path...)
	if err != nil || !ok {
		return nil
	}
	return params[sp.Start:sp.End]
}

// getString returns the string at path in params ("" if absent).
func getString(params json.RawMessage, path ...string) string {
	var s string
	json.Unmarshal(getParam(params, path...), &s)
	return s
}
