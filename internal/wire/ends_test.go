package wire

import (
	"strings"
	"testing"
)

// TestScanEnds: the id and kind of large messages as servers and clients
// write them (id first, id last, id among scalars at the end), read from
// their first and last 512 bytes only.
func TestScanEnds(t *testing.T) {
	big := `"` + strings.Repeat("x", 10000) + `"`
	obj := `{"items":[` + strings.Repeat(`{"label":"a\"b","id":9},`, 500) + `{"label":"z"}]}`
	cases := []struct {
		name, body string
		id         string
		req, resp  bool
	}{
		{"gopls response: id last", `{"jsonrpc":"2.0","result":` + obj + `,"id":3}`, "3", false, true},
		{"clangd response: id first", `{"id":1,"jsonrpc":"2.0","result":` + obj + `}`, "1", false, true},
		{"client request: id, method first", `{"jsonrpc":"2.0","id":"a-1","method":"textDocument/didChange","params":` + obj + `}`, `"a-1"`, true, false},
		{"neovim order: params first", `{"params":` + obj + `, "method" : "x/y", "jsonrpc":"2.0" , "id" : 12 }`, "12", true, false},
		{"gopls request: id last", `{"jsonrpc":"2.0","method":"workspace/configuration","params":` + obj + `,"id":4}`, "4", true, false},
		{"notification", `{"jsonrpc":"2.0","method":"$/x","params":` + big + `}`, "", true, false},
		{"error response", `{"jsonrpc":"2.0","error":{"code":1,"message":` + big + `},"id":"e\\\"x"}`, `"e\\\"x"`, false, true},
		{"id in a nested object only", `{"jsonrpc":"2.0","result":{"x":` + obj + `,"id":5}}`, "", false, true},
		{"id null", `{"jsonrpc":"2.0","result":` + big + `,"id":null}`, "", false, true},
	}
	for _, c := range cases {
		b := []byte(c.body)
		e := ScanEnds(b[:512], b[len(b)-512:])
		if string(e.ID) != c.id || e.Request != c.req || e.Response != c.resp {
			t.Errorf("%s: got id %q request %v response %v, want %q %v %v", c.name, e.ID, e.Request, e.Response, c.id, c.req, c.resp)
		}
	}
}

// TestScanEndsNeverWrong: whatever the cut, ScanEnds gives the message's
// own top-level id or none, and never the wrong kind.
func TestScanEndsNeverWrong(t *testing.T) {
	bodies := []string{
		`{"jsonrpc":"2.0","result":{"a":"b\\","id":7,"c":"\"id\":8}"},"id":123}`,
		`{"id":-45,"result":[1,2,{"id":6}],"jsonrpc":"2.0"}`,
		`{"jsonrpc":"2.0","method":"m","params":{"s":"\\\\\",\"id\":9"},"id":"q\\\\"}`,
		`{"result":"x \"id\":1}","id":2}`,
		`{"params":["\"id\":3", {"id":4}],"id":5,"method":"m"}`,
	}
	for _, body := range bodies {
		f, err := Scan([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		b := []byte(body)
		id := string(f.ID.Of(b))
		for h := 0; h <= len(b); h++ {
			for l := 0; l <= len(b); l++ {
				e := ScanEnds(b[:h], b[len(b)-l:])
				if e.ID != nil && string(e.ID) != id {
					t.Fatalf("%s head %d last %d: id %q, want %q or none", body, h, l, e.ID, id)
				}
				if e.Request && !f.Method.Ok() && !f.Params.Ok() || e.Response && !f.Result.Ok() && !f.Error.Ok() {
					t.Fatalf("%s head %d last %d: request %v response %v", body, h, l, e.Request, e.Response)
				}
			}
		}
		if e := ScanEnds(b, b); string(e.ID) != id {
			t.Errorf("%s whole: id %q, want %q", body, e.ID, id)
		}
	}
}
