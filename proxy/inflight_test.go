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
	f := newInflight()
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

// feed gives stream to w in chunks of size, the way the poll relay does:
// whatever splicable allows goes around w (skip), the rest through it. It
// returns how many bytes went around.
func feed(stream string, size int, w func([]byte), splicable func() int, skip func(int)) int {
	around := 0
	for i := 0; i < len(stream); {
		if k := min(splicable(), len(stream)-i); k > 0 {
			skip(k)
			i, around = i+k, around+k
			continue
		}
		j := min(i+size, len(stream))
		w([]byte(stream[i:j]))
		i = j
	}
	return around
}

// TestInflightLarge: large requests are tracked (their middles spliced
// past the gate) and large answers matched by the ends of their bodies,
// with the id first (clangd, clients) or last (gopls), keeping nothing
// but those ends; a body that begins with nothing pending is not kept.
func TestInflightLarge(t *testing.T) {
	big := `{"text":"` + strings.Repeat("x", 300<<10) + `"}`
	f := newInflight()
	g := newLSPGate(true)
	g.seen = f
	up := frame(`{"jsonrpc":"2.0","id":7,"method":"workspace/executeCommand","params":`+big+`}`) +
		frame(`{"params":`+big+`,"method":"x/y","jsonrpc":"2.0","id":"n8"}`) + // Neovim's order
		frame(`{"jsonrpc":"2.0","id":9,"method":"textDocument/hover","params":{}}`)
	var passed []byte
	if k := feed(up, 4<<10, func(b []byte) { passed = g.Filter(passed, b) }, g.Splicable, g.Skip); k < 500<<10 {
		t.Errorf("only %d of the requests' bytes went around the gate", k)
	}
	if len(passed) >= len(up)-500<<10 {
		t.Errorf("the gate passed %d of %d bytes itself", len(passed), len(up))
	}
	down := frame(`{"jsonrpc":"2.0","method":"$/progress","params":`+big+`}`) +
		frame(`{"jsonrpc":"2.0","result":`+big+`,"id":7}`) + // gopls: id last
		frame(`{"id":9,"jsonrpc":"2.0","result":`+big+`}`) // clangd: id first
	for i := 0; i < len(down); i += 4 << 10 {
		f.Write([]byte(down[i:min(i+4<<10, len(down))]))
	}
	if n := cap(f.down.body) + cap(f.down.last); n > 8<<10 {
		t.Errorf("Inflight kept %d bytes of the server's large bodies, want only their ends", n)
	}
	got := f.Errors(codeRequestFailed, "crashed")
	if len(got) != 1 || string(got[0]) != `{"jsonrpc":"2.0","id":"n8","error":{"code":-32803,"message":"crashed"}}` {
		t.Fatalf("errors %q, want only n8's", got)
	}
	// Nothing pending now: a large body is not kept at all.
	f.Write([]byte(frame(`{"jsonrpc":"2.0","result":` + big + `,"id":9}`)))
	if len(f.down.body) != 0 || len(f.down.last) != 0 {
		t.Errorf("a body begun with nothing pending was kept (%d, %d bytes)", len(f.down.body), len(f.down.last))
	}
	f.Write([]byte(frame(`{"jsonrpc":"2.0","id":1,"result":null}`)))
	if e := f.Errors(codeRequestFailed, "x"); len(e) != 0 {
		t.Fatalf("errors %q after a whole body went around", e)
	}
}

// TestInflightOwed: where the server's stream ended decides whether the
// proxy's error answers can follow it: between messages at once, inside
// a body after the bytes it still owes, inside a header not at all.
func TestInflightOwed(t *testing.T) {
	body := `{"jsonrpc":"2.0","id":1,"result":"` + strings.Repeat("x", 9000) + `"}`
	for _, tc := range []struct {
		name   string
		stream string
		owed   int
		ok     bool
	}{
		{"between messages", frame(`{"jsonrpc":"2.0","id":1,"result":null}`), 0, true},
		{"inside a small body", frame(`{"jsonrpc":"2.0","id":1,"result":null}`)[:30], len(frame(`{"jsonrpc":"2.0","id":1,"result":null}`)) - 30, true},
		{"inside a large body", frame(body)[:5000], len(frame(body)) - 5000, true},
		{"inside a header", "Content-Len", 0, false},
		{"not lsp", "not lsp at all\r\n\r\n", 0, false},
	} {
		f := newInflight()
		f.Write([]byte(tc.stream))
		if owed, ok := f.Owed(); owed != tc.owed || ok != tc.ok {
			t.Errorf("%s: Owed() = %d, %v; want %d, %v", tc.name, owed, ok, tc.owed, tc.ok)
		}
	}
}
