package lspmux

import (
	"encoding/json"
	"strconv"

	"github.com/procref/procref/internal/wire"
)

// JSON-RPC and LSP error codes the mux answers with.
const (
	codeParseError           = -32700
	codeInvalidRequest       = -32600
	codeServerNotInitialized = -32002
	codeRequestFailed        = -32803
)

var null = []byte("null")

func idToken(id int64) []byte { return strconv.AppendInt(nil, id, 10) }

func msgResult(id, result []byte) []byte {
	if id == nil {
		id = null
	}
	if result == nil {
		result = null
	}
	b := make([]byte, 0, 40+len(id)+len(result))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, '}')
}

func msgError(id []byte, code int, message string) []byte {
	if id == nil {
		id = null
	}
	b := make([]byte, 0, 80+len(id)+len(message))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = wire.AppendQuote(b, message)
	return append(b, "}}"...)
}

func msgNotification(method string, params []byte) []byte {
	b := make([]byte, 0, 50+len(method)+len(params))
	b = append(b, `{"jsonrpc":"2.0","method":`...)
	b = wire.AppendQuote(b, method)
	if params != nil {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, '}')
}

func msgRequest(id int64, method string, params []byte) []byte {
	b := make([]byte, 0, 60+len(method)+len(params))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"method":`...)
	b = wire.AppendQuote(b, method)
	if params != nil {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, '}')
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with plain structs of strings and numbers
	}
	return b
}

// validID reports whether tok is a JSON-RPC request id: a number or a
// string.
func validID(tok []byte) bool {
	if len(tok) == 0 {
		return false
	}
	c := tok[0]
	return c == '"' || c == '-' || (c >= '0' && c <= '9')
}

// parseHostID parses an id the mux issued (a plain integer).
func parseHostID(tok []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(tok), 10, 64)
	return n, err == nil
}
