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

// msg is one JSON-RPC message. Params, result and error stay raw: the mux
// decodes only the few params it routes on.
type msg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

func parseMsg(body []byte) (*msg, error) {
	var m msg
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if string(m.ID) == "null" {
		m.ID = nil
	}
	return &m, nil
}

func (m *msg) isRequest() bool      { return m.Method != "" && m.ID != nil }
func (m *msg) isNotification() bool { return m.Method != "" && m.ID == nil }
func (m *msg) isResponse() bool     { return m.Method == "" && m.ID != nil }

func (m *msg) encode() []byte {
	m.JSONRPC = "2.0"
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // every field is valid JSON: it came from a parse or from us
	}
	return b
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
