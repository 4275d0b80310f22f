package proxy

import (
	"strings"
	"testing"
)

// TestInflight: requests the editor sent and the server has not answered
// get an error, in the order sent; notifications, the server's own
// requests and answered requests do not, however the server's bytes are
// split.
func TestInflight(t *testing.T) {
	f := NewInflight()
	g := newLSPGate(true)
	g.seen = f
	g.Filter(nil, []byte(frame(`{"jsonrpc":"2.0","id":1,"method":"textDocument/hover","params":{}}`)+
		frame(`{"jsonrpc":"2.0","method":"textDocument/didSave","params":{}}`)+
		frame(`{"jsonrpc":"2.0","id":"b","method":"textDocument/definition","params":{}}`)+
		frame(`{"jsonrpc":"2.0","id":3,"method":"textDocument/references","params":{}}`)))
	down := frame(`{"jsonrpc":"2.0","method":"window/logMessage","params":{"type":3,"message":"x"}}`) +
		frame(`{"jsonrpc":"2.0","id":1,"method":"workspace/configuration","params":{}}`) + // the server's request: answers nothing
		frame(`{"jsonrpc":"2.0","result":{"contents":"`+strings.Repeat("x", 9000)+`"},"id":3}`)
	for i := 0; i < len(down); i += 7 {
		f.Write([]byte(down[i:min(i+7, len(down))]))
	}
	var got []string
	for _, e := range f.Errors(codeRequestFailed, "crashed") {
		got = append(got, string(e))
	}
	want := []string{
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32803,"message":"crashed"}}`,
		`{"jsonrpc":"2.0","id":"b","error":{"code":-32803,"message":"crashed"}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if e := f.Errors(codeRequestFailed, "again"); len(e) != 0 {
		t.Fatalf("second Errors = %q, want none", e)
	}
	f.Write([]byte("not lsp at all\r\n\r\n"))
	f.sent([]byte(`{"jsonrpc":"2.0","id":9,"method":"x"}`))
	if e := f.Errors(codeRequestFailed, "lost"); len(e) != 0 {
		t.Fatalf("after the framing was lost Errors = %q, want none", e)
	}
}
