package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func frame(body string) string {
	return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
}

func readAll(t *testing.T, in string, max int64) ([]string, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), max)
	var out []string
	for {
		b, err := r.Read()
		if err != nil {
			return out, err
		}
		out = append(out, string(b))
	}
}

func TestReaderSequence(t *testing.T) {
	in := frame(`{"a":1}`) +
		"content-length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}" +
		"Content-Type: x\r\nCONTENT-LENGTH:   3  \r\n\r\n[1]" +
		"Content-Length: 0\r\n\r\n" +
		"Content-Length: 4\r\nContent-Length: 4\r\n\r\nnull" + // duplicate but agreeing
		"Content-Length: 2\n\n{}" // bare LF tolerated
	got, err := readAll(t, in, 0)
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	want := []string{`{"a":1}`, `{}`, `[1]`, ``, `null`, `{}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestReaderErrors(t *testing.T) {
	cases := []struct {
		name, in string
		want     error
	}{
		{"empty", "", io.EOF},
		{"eof in header", "Content-Length: 5\r\n", io.ErrUnexpectedEOF},
		{"eof in header line", "Content-Len", io.ErrUnexpectedEOF},
		{"eof in body", "Content-Length: 5\r\n\r\nab", io.ErrUnexpectedEOF},
		{"missing length", "Content-Type: x\r\n\r\n{}", ErrBadHeader},
		{"no headers", "\r\n{}", ErrBadHeader},
		{"negative", "Content-Length: -1\r\n\r\n", ErrBadHeader},
		{"not a number", "Content-Length: 1x\r\n\r\n", ErrBadHeader},
		{"conflicting", "Content-Length: 1\r\nContent-Length: 2\r\n\r\n{}", ErrBadHeader},
		{"no colon", "Content-Length 2\r\n\r\n{}", ErrBadHeader},
		{"huge header", "X: " + strings.Repeat("a", 20<<10) + "\r\nContent-Length: 0\r\n\r\n", ErrBadHeader},
		{"many header lines", strings.Repeat("X: y\r\n", 5000) + "Content-Length: 0\r\n\r\n", ErrBadHeader},
		{"too large", "Content-Length: 11\r\n\r\n01234567890", ErrTooLarge},
		{"overflow", "Content-Length: 99999999999999999999999\r\n\r\n", ErrBadHeader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readAll(t, c.in, 10)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestReaderBadHeaderSticky(t *testing.T) {
	r := NewReader(strings.NewReader("Content-Length: x\r\n\r\n"+frame("{}")), 0)
	for range 2 {
		if _, err := r.Read(); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("err = %v, want ErrBadHeader", err)
		}
	}
}

func TestReaderTooLargeSkips(t *testing.T) {
	in := frame(strings.Repeat("x", 100)) + frame(`{"ok":true}`)
	r := NewReader(strings.NewReader(in), 50)
	if r.Max() != 50 {
		t.Fatalf("Max = %d", r.Max())
	}
	_, err := r.Read()
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "100") {
		t.Fatalf("err = %v, want ErrTooLarge with size", err)
	}
	b, err := r.Read()
	if err != nil || string(b) != `{"ok":true}` {
		t.Fatalf("after skip: %q, %v", b, err)
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("err = %v, want EOF", err)
	}
}

func TestReaderTooLargeTruncated(t *testing.T) {
	r := NewReader(strings.NewReader("Content-Length: 100\r\n\r\nabc"), 10)
	if _, err := r.Read(); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	if _, err := r.Read(); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want ErrUnexpectedEOF", err)
	}
}

func TestDefaultMax(t *testing.T) {
	if NewReader(strings.NewReader(""), 0).Max() != DefaultMaxMessage {
		t.Fatal("default max not applied")
	}
	if NewReader(strings.NewReader(""), -5).Max() != DefaultMaxMessage {
		t.Fatal("default max not applied for negative")
	}
}

// A body announced huge but trickled must not be allocated in full up front.
func TestReaderLargeBodyGrowsAndOwnsSlice(t *testing.T) {
	body := bytes.Repeat([]byte("abcdefgh"), 300<<10) // 2.4 MiB
	var in bytes.Buffer
	Write(&in, body)
	Write(&in, []byte("{}"))
	r := NewReader(io.MultiReader(bytes.NewReader(in.Bytes()[:100]), bytes.NewReader(in.Bytes()[100:])), 0)
	b1, err := r.Read()
	if err != nil || !bytes.Equal(b1, body) {
		t.Fatalf("large body mismatch: len %d err %v", len(b1), err)
	}
	b2, err := r.Read()
	if err != nil || string(b2) != "{}" {
		t.Fatalf("second: %q %v", b2, err)
	}
	b2[0] = 'X'
	if !bytes.Equal(b1, body) {
		t.Fatal("slices alias")
	}
}

type countWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func TestWriteOneCall(t *testing.T) {
	var w countWriter
	for _, n := range []int{0, 10, 1 << 20} {
		before := w.writes
		if err := Write(&w, bytes.Repeat([]byte("a"), n)); err != nil {
			t.Fatal(err)
		}
		if w.writes-before != 1 {
			t.Fatalf("body %d: %d Write calls, want 1", n, w.writes-before)
		}
	}
	got, err := readAll(t, w.buf.String(), 0)
	if err != io.EOF || len(got) != 3 || len(got[2]) != 1<<20 {
		t.Fatalf("round trip failed: %d msgs, %v", len(got), err)
	}
}

// Concurrent writers over real TCP (writev path for big bodies) interleave
// whole messages.
func TestWriteConcurrentTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		bodies [][]byte
		err    error
	}
	done := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- res{err: err}
			return
		}
		defer c.Close()
		r := NewReader(c, 0)
		var out res
		for {
			b, err := r.Read()
			if err != nil {
				if err != io.EOF {
					out.err = err
				}
				done <- out
				return
			}
			out.bodies = append(out.bodies, b)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	const writers, each = 4, 5
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				size := 100
				if i%2 == 0 {
					size = 600 << 10
				}
				body := bytes.Repeat([]byte{byte('a' + w)}, size)
				mu.Lock()
				err := Write(c, body)
				mu.Unlock()
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	c.Close()
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	if len(out.bodies) != writers*each {
		t.Fatalf("%d messages, want %d", len(out.bodies), writers*each)
	}
	for _, b := range out.bodies {
		if bytes.Count(b, b[:1]) != len(b) {
			t.Fatal("interleaved message")
		}
	}
}

func TestScan(t *testing.T) {
	cases := []struct {
		in                  string
		kind                Kind
		id, method, params  string
		result, errorMember string
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"textDocument/hover","params":{"a":[1,2,{"b":"}"}]}}`, Request, `1`, "textDocument/hover", `{"a":[1,2,{"b":"}"}]}`, "", ""},
		{` { "method" : "x\/y" , "params" : [ ] } `, Notification, ``, "x/y", `[ ]`, "", ""},
		{`{"params":{"id":5},"id":"abc\"d","method":"m"}`, Request, `"abc\"d"`, "m", `{"id":5}`, "", ""},
		{`{"id":-1.5e+3,"result":null}`, Response, `-1.5e+3`, "", "", `null`, ""},
		{`{"id":7,"error":{"code":-32601,"message":"ü"}}`, Response, `7`, "", "", "", `{"code":-32601,"message":"ü"}`},
		{`{"\u0069d":3,"result":true}`, Response, `3`, "", "", `true`, ""},
		{`{}`, Invalid, ``, "", "", "", ""},
	}
	for _, c := range cases {
		f, err := Scan([]byte(c.in))
		if err != nil {
			t.Errorf("Scan(%s): %v", c.in, err)
			continue
		}
		b := []byte(c.in)
		if f.Kind() != c.kind || string(f.ID.Of(b)) != c.id || f.MethodName() != c.method ||
			string(f.Params.Of(b)) != c.params || string(f.Result.Of(b)) != c.result || string(f.Error.Of(b)) != c.errorMember {
			t.Errorf("Scan(%s) = kind %v id %q method %q params %q result %q error %q", c.in, f.Kind(),
				f.ID.Of(b), f.MethodName(), f.Params.Of(b), f.Result.Of(b), f.Error.Of(b))
		}
	}
}

func TestScanRejects(t *testing.T) {
	for _, in := range []string{
		``, `[]`, `1`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":1e}`, `{"a":-}`,
		`{"a":tru}`, `{"a":"x}`, `{"a":"\x"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}",
		`{"id":1,"id":2,"result":false}`, `{"method":"exit","method":"x"}`, `{"a":{"b":1,"\u0062":2}}`,
		`{"a":{"k0":0,"k1":0,"k2":0,"k3":0,"k4":0,"k5":0,"k6":0,"k7":0,"k8":0,"k9":0,"k10":0,"k11":0,"k12":0,"k13":0,"k5":1}}`,
		"{\"a\":\"0123456789abcdef\\n\x1f\"}", "{\"a\":\"0123456789abcdef\xc3\"}", "{\"a\":\"0123456789ab\xe2\x82\\n\"}",
		`{"a":"0123456789abcdef\"}`, "{\"a\":\"0123456789\\\"abcdef\x7f\x00\"}",
		`{"a":[1,]}`, `{"a":[1 2]}`, `{"a":1}x`, `{"a":1}{}`, `{"method":5}`, `{"a" 1}`,
		strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1),
		strings.Repeat(`[`, MaxDepth+2),
	} {
		if _, err := Scan([]byte(in)); !errors.Is(err, ErrBadJSON) {
			t.Errorf("Scan(%.60q) err = %v, want ErrBadJSON", in, err)
		}
	}
}

func TestLookupAndSplice(t *testing.T) {
	msg := []byte(`{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"contentChanges":[{"text":"{\"uri\":1}"}],"textDocument":{"version":3,"uri":"file:///a%20b.go"}}}`)
	f, err := Scan(msg)
	if err != nil {
		t.Fatal(err)
	}
	params := f.Params.Of(msg)
	uri, ok, err := Lookup(params, "textDocument", "uri")
	if err != nil || !ok {
		t.Fatalf("uri: %v %v", ok, err)
	}
	if s, _ := Unquote(uri.Of(params)); s != "file:///a%20b.go" {
		t.Fatalf("uri = %q", s)
	}
	ver, ok, _ := Lookup(params, "textDocument", "version")
	if !ok || string(ver.Of(params)) != "3" {
		t.Fatalf("version = %q", ver.Of(params))
	}
	if _, ok, _ := Lookup(params, "textDocument", "nope"); ok {
		t.Fatal("found absent member")
	}
	if _, ok, _ := Lookup(params, "contentChanges", "text"); ok {
		t.Fatal("descended into array")
	}
	// splice a new version using absolute offsets
	abs := Span{f.Params.Start + ver.Start, f.Params.Start + ver.End}
	out, err := NewReader(bytes.NewReader(AppendFrame(nil, msg, Edit{abs, []byte("42")}, Edit{Span{0, 1}, []byte("{ ")})), 0).Read()
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Params struct {
			TextDocument struct{ Version int } `json:"textDocument"`
		} `json:"params"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Params.TextDocument.Version != 42 {
		t.Fatalf("splice result %s: %v", out, err)
	}
	id := []byte(`{"id":"x","result":{}}`)
	f2, _ := Scan(id)
	if got := string(Splice(id, f2.ID, []byte("17"))); got != `{"id":17,"result":{}}` {
		t.Fatalf("Splice = %s", got)
	}
	whole, ok, err := Lookup([]byte(`  [1] `))
	if !ok || err != nil || whole != (Span{2, 5}) {
		t.Fatalf("Lookup() = %v %v %v", whole, ok, err)
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s\n\r\t\x01\x1f", "ü€😀", "file:///x y"} {
		tok := Quote(s)
		var back string
		if err := json.Unmarshal(tok, &back); err != nil || back != s {
			t.Errorf("Quote(%q) = %s (%v)", s, tok, err)
		}
		if u, err := Unquote(tok); err != nil || u != s {
			t.Errorf("Unquote(Quote(%q)) = %q, %v", s, u, err)
		}
	}
	if got := string(Quote("a\xffb")); got != `"a\ufffdb"` {
		t.Errorf("invalid utf-8 quoted as %s", got)
	}
	if _, err := Unquote([]byte(`12`)); !errors.Is(err, ErrBadJSON) {
		t.Errorf("Unquote(12) err = %v", err)
	}
}

// FuzzReader feeds arbitrary streams to the reader (must never panic, never
// return a body over the bound, and always end) and each body to Scan, which
// must agree with encoding/json on validity.
func FuzzReader(f *testing.F) {
	seeds := []string{
		frame(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`),
		frame(`{"id":"a","result":[1,2.5e3,"\u00fc",null,true]}`) + frame(`{"method":"x"}`),
		"Content-Length: 5\r\n\r\n{}",
		"Content-Length: 100000000\r\n\r\n{}",
		"content-length: 2\r\ncontent-length: 3\r\n\r\n{}",
		"Content-Type: a\r\n\r\n",
		frame(`{"a":"` + "\xff" + `"}`),
		frame(`{"method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///a","version":1,"text":"x"}}}`),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 16
		r := NewReader(bytes.NewReader(in), max)
		for range len(in) + 2 {
			b, err := r.Read()
			if errors.Is(err, ErrTooLarge) {
				continue
			}
			if err != nil {
				return
			}
			if len(b) > max {
				t.Fatalf("body %d over bound", len(b))
			}
			fields, serr := Scan(b)
			if tf, terr := ScanTrusted(b); serr == nil && (terr != nil || tf.ID != fields.ID || tf.Method != fields.Method || tf.Params != fields.Params || tf.Result != fields.Result || tf.Error != fields.Error) {
				t.Fatalf("ScanTrusted disagrees with Scan on %q: %v", b, terr)
			}
			var obj map[string]json.RawMessage
			jerr := json.Unmarshal(b, &obj)
			valid := jerr == nil && utf8.Valid(b) && bytes.TrimSpace(b)[0] == '{'
			if (serr == nil) != valid && !errors.Is(serr, ErrBadJSON) {
				t.Fatalf("Scan err %v vs json err %v for %q", serr, jerr, b)
			}
			if serr == nil && !valid && json.Valid(b) && utf8.Valid(b) {
				t.Fatalf("Scan accepted %q which json rejects: %v", b, jerr)
			}
			if serr == nil && jerr == nil {
				if id, ok := obj["id"]; ok && string(id) != string(fields.ID.Of(b)) {
					t.Fatalf("id %q vs %q", fields.ID.Of(b), id)
				}
			}
		}
		if _, err := r.Read(); err == nil {
			t.Fatal("reader did not end")
		}
	})
}

func benchRead(b *testing.B, size int) {
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a'
	}
	body[0], body[len(body)-1] = '"', '"'
	var one bytes.Buffer
	Write(&one, body)
	frameBytes := one.Bytes()
	// a stream of several messages so small sizes are not dominated by setup
	n := max(1, (8<<20)/len(frameBytes))
	stream := bytes.Repeat(frameBytes, n)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		r := NewReader(bytes.NewReader(stream), 0)
		for range n {
			if done >= b.N {
				break
			}
			body, err := r.Read()
			if err != nil {
				b.Fatal(err)
			}
			Recycle(body) // as the mux does once a body is written
			done++
		}
	}
}

func BenchmarkReader(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 16 << 20} {
		b.Run(sizeName(size), func(b *testing.B) { benchRead(b, size) })
	}
}

func BenchmarkScan(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 16 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			text := strings.Repeat("int main() { return 0; } // ü\\n", size/32+1)[:size]
			msg := []byte(`{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///a.c","languageId":"c","version":1,"text":"` + text + `"}}}`)
			if _, err := Scan(msg); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				Scan(msg)
			}
		})
		b.Run(sizeName(size)+"/trusted", func(b *testing.B) {
			text := strings.Repeat("int main() { return 0; } // ü\\n", size/32+1)[:size]
			msg := []byte(`{"jsonrpc":"2.0","id":1,"result":{"contents":"` + text + `"}}`)
			if _, err := ScanTrusted(msg); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				ScanTrusted(msg)
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

func TestMembersAndDelete(t *testing.T) {
	raw := []byte(`{ "uri":"u", "version": 3 ,"diagnostics":[{"version":1}]}`)
	sp, err := Members(raw, "version", "nope", "uri")
	if err != nil || string(sp[0].Of(raw)) != "3" || sp[1].Ok() || string(sp[2].Of(raw)) != `"u"` {
		t.Fatalf("Members = %v %v", sp, err)
	}
	for _, c := range []struct{ in, key, want string }{
		{`{ "uri":"u", "version": 3 ,"d":[{"version":1}]}`, "version", `{ "uri":"u","d":[{"version":1}]}`},
		{`{"version":3,"uri":"u"}`, "version", `{"uri":"u"}`},
		{`{"uri":"u","version":3}`, "version", `{"uri":"u"}`},
		{`{"version":3}`, "version", `{}`},
	} {
		out, ok, err := DeleteMember([]byte(c.in), c.key)
		if err != nil || !ok || string(out) != c.want || !json.Valid(out) {
			t.Errorf("DeleteMember(%s) = %s %v %v, want %s", c.in, out, ok, err, c.want)
		}
	}
	if out, ok, _ := DeleteMember([]byte(`{"a":1}`), "b"); ok || string(out) != `{"a":1}` {
		t.Errorf("DeleteMember absent = %s %v", out, ok)
	}
}

func TestUnquoteEscapes(t *testing.T) {
	for _, tok := range []string{`"a\"b\\c\/d\b\f\n\r\t"`, `"\u00fc\u20AC\ud83d\ude00x"`, `"\ud83d"`, `"\ude00\u0041"`, `"\ud83d\u0041"`, `"é\n"`} {
		var want string
		if err := json.Unmarshal([]byte(tok), &want); err != nil {
			t.Fatal(err)
		}
		got, err := Unquote([]byte(tok))
		if err != nil || got != want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", tok, got, err, want)
		}
	}
	for _, tok := range []string{`"\x"`, `"\u12"`, `"a\"`, "\"\xff\""} {
		if _, err := Unquote([]byte(tok)); err == nil {
			t.Errorf("Unquote(%s) accepted", tok)
		}
	}
}

func TestScanManyKeysAccepted(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"id":1,"result":{`)
	for i := range 40 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":{"a":1,"b":2}`, i)
	}
	b.WriteString(`}}`)
	if _, err := Scan([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

func TestWriteEdited(t *testing.T) {
	for _, size := range []int{10, 60 << 10, 1 << 20} {
		body := make([]byte, size)
		for i := range body {
			body[i] = 'a' + byte(i%26)
		}
		edits := []Edit{
			{At: Span{size - 3, size - 1}, With: []byte("TAIL")},
			{At: Span{1, 4}, With: []byte("12345")},
			{At: Span{size / 2, size/2 + 1}, With: bytes.Repeat([]byte("M"), 20<<10)},
		}
		want := AppendFrame(nil, spliceEach(body, edits))
		if got := AppendFrame(nil, body, edits...); !bytes.Equal(got, want) {
			t.Errorf("size %d: AppendFrame with edits differs from one Splice per edit", size)
		}
		var got bytes.Buffer
		if err := WriteEdited(&got, body, edits...); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("size %d: WriteEdited differs from one Splice per edit", size)
		}
		got.Reset()
		if err := WriteEdited(&got, body); err != nil || !bytes.Equal(got.Bytes(), AppendFrame(nil, body)) {
			t.Errorf("size %d: WriteEdited without edits differs (%v)", size, err)
		}
	}
}

// spliceEach applies edits one Splice at a time from the last, the plain
// oracle for the edit appliers.
func spliceEach(body []byte, edits []Edit) []byte {
	edits = slices.Clone(edits)
	slices.SortFunc(edits, func(x, y Edit) int { return y.At.Start - x.At.Start })
	for _, e := range edits {
		body = Splice(body, e.At, e.With)
	}
	return body
}

// TestReaderRecycle reads large bodies into recycled buffers: every body
// must hold its own message whatever was pooled before.
func TestReaderRecycle(t *testing.T) {
	var stream []byte
	sizes := []int{300 << 10, 5 << 20, 300 << 10, 70 << 10, 5 << 20, 2<<20 + 1}
	for i, n := range sizes {
		stream = AppendFrame(stream, bytes.Repeat([]byte{'A' + byte(i)}, n))
	}
	r := NewReader(bytes.NewReader(stream), 0)
	for i, n := range sizes {
		b, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != n || bytes.Count(b, []byte{'A' + byte(i)}) != n {
			t.Fatalf("message %d: %d bytes, want %d of %c", i, len(b), n, 'A'+byte(i))
		}
		Recycle(b)
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// TestReaderReady: Ready is true exactly when a whole message is buffered.
func TestReaderReady(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	r := NewReader(pr, 0)
	if r.Ready() {
		t.Fatal("Ready with nothing received")
	}
	// One writer, in order: a second goroutine writing the rest of the
	// third message could get its bytes in first.
	go func() {
		pw.Write(AppendFrame(AppendFrame(nil, []byte(`{"a":1}`)), []byte(`{"b":2}`)))
		pw.Write([]byte("Content-Length: 7\r\n\r\n{\"c\""))
		pw.Write([]byte(":3}"))
	}()
	if b, err := r.Read(); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("Read = %s, %v", b, err)
	}
	if !r.Ready() {
		t.Fatal("not Ready with a second whole message buffered")
	}
	if b, err := r.Read(); err != nil || string(b) != `{"b":2}` {
		t.Fatalf("Read = %s, %v", b, err)
	}
	if r.Ready() {
		t.Fatal("Ready with only part of a message buffered")
	}
	if b, err := r.Read(); err != nil || string(b) != `{"c":3}` {
		t.Fatalf("Read = %s, %v", b, err)
	}
	pw.Close()
}

// TestScanLongStrings: strings past the 8-byte fast path, with escapes
// (an escaped quote among them) and non-ASCII text, agree with
// encoding/json.
func TestScanLongStrings(t *testing.T) {
	text := strings.Repeat(`int main() { return \"x\"; } // ü€😀\n\\`, 500)
	msg := []byte(`{"id":1,"method":"m","params":{"t":"` + text + `","n":2}}`)
	f, err := Scan(msg)
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(msg, &want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Params.Of(msg), want.Params) {
		t.Fatal("params span differs from encoding/json's")
	}
}

func TestParseHeader(t *testing.T) {
	for block, want := range map[string]int64{
		"Content-Length: 12\r\n\r\n":                                                      12,
		"content-length:  7\r\nContent-Type: x\r\n\r\n":                                   7,
		"Content-Length: 3\r\nContent-Length: 3\r\n\r\n":                                  3,
		"Content-Type: x\r\n\r\n":                                                         -1, // none
		"Content-Length: 3\r\nContent-Length: 4\r\n\r\n":                                  -1, // conflicting
		"no colon here\r\nContent-Length: 3\r\n\r\n":                                      -1,
		"Content-Length: -1\r\n\r\n":                                                      -1,
		"Content-Length: 1\r\n" + strings.Repeat("X-A: b\r\n", MaxHeaderBytes/8) + "\r\n": -1, // too long
	} {
		got, err := ParseHeader([]byte(block))
		if want < 0 {
			if !errors.Is(err, ErrBadHeader) {
				t.Errorf("%.40q: %d, %v; want ErrBadHeader", block, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%.40q: %d, %v; want %d", block, got, err, want)
		}
	}
}
