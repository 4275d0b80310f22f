package lspmux

import (
	"encoding/json"
)

// Position encodings. Windows of different editors offer different units
// for Position.character (LSP 3.17 general.positionEncodings, clangd's
// offsetEncoding extension), but the backend speaks one. The mux therefore
// offers the backend only UTF-16, which every client must support: each
// window is then told "utf-16" and every position it sends or receives is
// in the unit it expects, with no per-window translation.

// offerUTF16 returns initialize params that offer the backend only UTF-16
// positions, in both the LSP 3.17 field and clangd's extension. Params
// that are not a JSON object are returned unchanged (the backend judges
// them).
func offerUTF16(params []byte) []byte {
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil || p == nil {
		return params
	}
	caps := object(p["capabilities"])
	general := object(caps["general"])
	general["positionEncodings"] = json.RawMessage(`["utf-16"]`)
	caps["general"] = mustJSON(general)
	caps["offsetEncoding"] = json.RawMessage(`["utf-16"]`)
	p["capabilities"] = mustJSON(caps)
	return mustJSON(p)
}

// object decodes a JSON object, or returns an empty one.
func object(raw json.RawMessage) map[string]json.RawMessage {
	var o map[string]json.RawMessage
	if json.Unmarshal(raw, &o) != nil || o == nil {
		o = map[string]json.RawMessage{}
	}
	return o
}

// resultEncoding returns the position encoding the backend's initialize
// result says it uses, whichever field carries it: LSP 3.17
// capabilities.positionEncoding, else clangd's top-level offsetEncoding,
// else UTF-16 (the LSP default). It also returns result with
// capabilities.positionEncoding set to that encoding, so every window is
// told explicitly.
func resultEncoding(result []byte) ([]byte, posEncoding, string) {
	var r map[string]json.RawMessage
	if json.Unmarshal(result, &r) != nil || r == nil {
		return result, encUTF16, "utf-16"
	}
	caps := object(r["capabilities"])
	var name string
	if json.Unmarshal(caps["positionEncoding"], &name) != nil || name == "" {
		if json.Unmarshal(r["offsetEncoding"], &name) != nil || name == "" {
			name = "utf-16"
		}
	}
	if _, ok := caps["positionEncoding"]; !ok {
		caps["positionEncoding"] = mustJSON(name)
		r["capabilities"] = mustJSON(caps)
		result = mustJSON(r)
	}
	return result, parseEncoding(name), name
}
