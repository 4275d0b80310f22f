package lspmux

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/procref/procref/internal/wire"
)

// FuzzRouter sends arbitrary messages from one client while another works
// normally: the mux must not panic, the fake server's invariants (unique
// ids, balanced opens, increasing versions, every request it sends
// answered once) must hold, and the other client must still get answers.
//
// Input: first byte even → the rest is bodies separated by NUL, each framed
// properly; odd → the rest is written as a raw byte stream.
func FuzzRouter(f *testing.F) {
	seeds := []string{
		"\x00" + strings.Join([]string{
			`{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///ws/r/a.c","languageId":"c","version":1,"text":"x"}}}`,
			`{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///ws/r/a.c","version":2},"contentChanges":[{"range":{"start":{"line":0,"character":0},"end":{"line":0,"character":1}},"text":"😀"}]}}`,
			`{"jsonrpc":"2.0","id":1,"method":"textDocument/hover","params":{"textDocument":{"uri":"file:///ws/r/a.c"},"position":{"line":0,"character":0}}}`,
			`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}`,
			`{"jsonrpc":"2.0","method":"textDocument/didClose","params":{"textDocument":{"uri":"file:///ws/r/a.c"}}}`,
		}, "\x00"),
		"\x00" + `{"jsonrpc":"2.0","id":"x","method":"test/progress","params":{"workDoneToken":"t","partialResultToken":7}}` + "\x00" + `{"jsonrpc":"2.0","method":"window/workDoneProgress/cancel","params":{"token":"t"}}`,
		"\x00" + `{"jsonrpc":"2.0","id":2,"method":"test/ask","params":{"method":"workspace/configuration","params":{}}}` + "\x00" + `{"jsonrpc":"2.0","id":3,"result":null}`,
		"\x00" + `{"jsonrpc":"2.0","id":4,"method":"exit"}` + "\x00" + `{"jsonrpc":"2.0","method":"shutdown"}` + "\x00" + `{"jsonrpc":"2.0","id":5,"method":"initialize","params":{}}`,
		"\x00" + `{"jsonrpc":"2.0","method":"workspace/didChangeWorkspaceFolders","params":{"event":{"added":[{"uri":"file:///x","name":"x"}],"removed":[]}}}`,
		"\x00" + `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///ws/r/shared.c","version":9,"text":"other"}}}` + "\x00" + `{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///ws/r/shared.c","version":10},"contentChanges":[{"text":"mine"}]}}`,
		"\x00{\"id\":[1],\"method\":\"x\"}\x00{\"id\":{},\"result\":1}\x00[]\x00{\"method\":\"exit\",\"id\":null}",
		"\x01Content-Length: 5\r\n\r\n{}{}}Content-Length: 2\r\n\r\n{}",
		"\x01Content-Length: 99999999\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		h := newHarness(t, func(cfg *Config, _ *fakeFarm) {
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			cfg.MaxMessage = 1 << 16
		})
		good := h.join("good", "r")
		mustNoErr(t, good.didOpen("file:///ws/r/shared.c", "int s;", 1))
		h.sync(good)
		fz := h.join("fz", "r")
		var stream []byte
		if in[0]%2 == 0 {
			for _, body := range bytes.Split(in[1:], []byte{0}) {
				stream = wire.AppendFrame(stream, body)
			}
		} else {
			stream = in[1:]
		}
		fz.wmu.Lock()
		fz.conn.Write(stream) // net.Pipe: returns once the mux has read it all (or dropped fz)
		fz.wmu.Unlock()
		fz.close()
		h.serveResult("fz") // everything fz sent has been routed and fz is cleaned up
		fz.mu.Lock()
		fz.violations = nil // fz wrote raw requests the test client did not track
		fz.mu.Unlock()
		if got, err := good.call(h.ctx, "test/echo", json.RawMessage(`"still"`)); err != nil || string(got) != `"still"` {
			t.Fatalf("good client after fuzzed input: %s, %v", got, err)
		}
		if r, err := good.hover(h.ctx, "file:///ws/r/shared.c", 0, 0); err != nil || !bytes.Contains(r, []byte("v")) {
			t.Fatalf("good hover: %s, %v", r, err)
		}
		open, _ := h.server().snapshot()
		if _, ok := open["file:///ws/r/shared.c"]; !ok || len(open) != 1 {
			t.Fatalf("after the fuzzed client left the server has %v open, want only shared.c", open)
		}
		if u := h.server().unanswered(); len(u) != 0 {
			t.Fatalf("server requests unanswered: %v", u)
		}
		// harness cleanup checks the server's and clients' invariants
	})
}
