package lspmux

import (
	"fmt"
	"strings"
	"testing"

	"github.com/procref/procref/internal/wire"
)

// viewBench is a Mux with one document open in windows a (whose text the
// backend has) and b (without a's unsaved edits in three places), lines
// long, for measuring what b's view costs per message.
func viewBench(lines int) (m *Mux, a, b *client, uri string) {
	uri = "file:///ws/big.go"
	var sb strings.Builder
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&sb, "\tx%d := f(%d) // a line of code\n", i, i)
	}
	bt := sb.String()
	ls := strings.Split(bt, "\n")
	ls = append([]string{"// new"}, ls...)    // top
	ls[lines/2] = "changed"                   // middle
	ls = append(ls[:len(ls)-1], "// end", "") // end
	at := strings.Join(ls, "\n")
	m = &Mux{docs: map[string]*doc{}}
	a, b = &client{docs: map[string]*cdoc{}}, &client{docs: map[string]*cdoc{}}
	d := &doc{uri: uri, openers: map[*client]*cdoc{a: {text: at}, b: {text: bt}}, lastEditor: a}
	m.docs[uri] = d
	a.docs[uri], b.docs[uri] = d.openers[a], d.openers[b]
	return m, a, b, uri
}

func diagParams(uri string, n, lines int) []byte {
	var ds []string
	for i := 0; i < n; i++ {
		l := i * lines / n
		ds = append(ds, fmt.Sprintf(`{"range":{"start":{"line":%d,"character":1},"end":{"line":%d,"character":9}},"severity":1,"source":"compiler","message":"declared and not used: x%d"}`, l, l, i))
	}
	return []byte(fmt.Sprintf(`{"uri":%q,"version":7,"diagnostics":[%s]}`, uri, strings.Join(ds, ",")))
}

// BenchmarkViewHover: a hover result to window b, whose text differs
// (decode, map, encode), and to a, whose text is the backend's (passed
// on as is).
func BenchmarkViewHover(b *testing.B) {
	m, ca, cb, uri := viewBench(2000)
	raw := []byte(`{"contents":{"kind":"markdown","value":"` + "```go\\nfunc f(int) int\\n```\\n\\nf returns its argument doubled." + `"},"range":{"start":{"line":1000,"character":6},"end":{"line":1000,"character":7}}}`)
	m.viewOf(cb, uri) // the diff, computed once per pair of texts
	for _, c := range []struct {
		name string
		c    *client
	}{{"differs", cb}, {"same", ca}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				if _, _, err := m.viewJSON(c.c, uri, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkViewDiagnostics: a publishDiagnostics with 50 diagnostics for
// window b, whose text differs.
func BenchmarkViewDiagnostics(b *testing.B) {
	m, _, cb, uri := viewBench(2000)
	d := m.docs[uri]
	params := diagParams(uri, 50, 2000)
	m.viewOf(cb, uri)
	b.ReportAllocs()
	b.SetBytes(int64(len(params)))
	for i := 0; i < b.N; i++ {
		if m.viewDiagnostics(cb, d, params) == nil {
			b.Fatal("no view")
		}
	}
}

// BenchmarkViewRequest: a hover request from window b mapped to the
// backend's lines.
func BenchmarkViewRequest(b *testing.B) {
	m, _, cb, uri := viewBench(2000)
	body := msgRequest(1, "textDocument/hover", []byte(`{"textDocument":{"uri":"`+uri+`"},"position":{"line":1200,"character":4}}`))
	f, err := wire.ScanTrusted(body)
	if err != nil {
		b.Fatal(err)
	}
	m.viewOf(cb, uri)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, err := m.viewRequest(cb, &f, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLineDiff: the line diff of b's text against the backend's
// (once per pair of texts: after an edit in either window).
func BenchmarkLineDiff(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		m, _, cb, uri := viewBench(n)
		d := m.docs[uri]
		ct, st := d.openers[cb].text, d.openers[d.lastEditor].text
		b.Run(fmt.Sprint(n, "lines"), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				newLineView(ct, st)
			}
		})
	}
}
