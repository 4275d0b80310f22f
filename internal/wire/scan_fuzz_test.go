package wire

import (
	"encoding/json"
	"testing"
)

// FuzzScan: the scanner is at least as strict as encoding/json (what it
// accepts is valid JSON), the trusted scan finds the same members in what
// the validating scan accepts, every span it reports is one JSON value,
// and the member walkers built on the same walk (Lookup, Members,
// DeleteMember) agree with it.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"textDocument/hover","params":{"textDocument":{"uri":"file:///a"},"position":{"line":1}}}`,
		`{"jsonrpc":"2.0","id":"x","result":{"a":[1,2,{"b":null}],"a\u0062":true}}`,
		`{"id":1,"id":2}`, `{"a":{"b":{"b":1,"b":2}}}`, `{"m\u00e9thod":"x","method":"\u00e9"}`,
		`[1]`, ` {"x": "\ud800"} `, `{"a":1,}`, `{"params":{"_meta":{"progressToken":"t"}},"error":{"code":-1.5e3}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fv, err := Scan(b)
		ft, terr := ScanTrusted(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("Scan accepted %q, which encoding/json refuses", b)
		}
		if terr != nil || ft != fv {
			t.Fatalf("ScanTrusted(%q) = %+v, %v; Scan found %+v", b, ft, terr, fv)
		}
		spans := map[string]Span{"id": fv.ID, "method": fv.Method, "params": fv.Params, "result": fv.Result, "error": fv.Error}
		names := []string{"id", "method", "params", "result", "error"}
		got, err := Members(b, names...)
		if err != nil {
			t.Fatalf("Members(%q): %v", b, err)
		}
		for i, name := range names {
			sp := spans[name]
			if !sp.Ok() {
				continue
			}
			if !json.Valid(sp.Of(b)) {
				t.Fatalf("%s of %q is %q, not one JSON value", name, b, sp.Of(b))
			}
			if l, ok, err := Lookup(b, name); err != nil || !ok || l != sp {
				t.Fatalf("Lookup(%q, %s) = %v, %v, %v; Scan found %v", b, name, l, ok, err, sp)
			}
			if got[i] != sp {
				t.Fatalf("Members(%q)[%s] = %v; Scan found %v", b, name, got[i], sp)
			}
			d, ok, err := DeleteMember(b, name)
			if err != nil || !ok || !json.Valid(d) {
				t.Fatalf("DeleteMember(%q, %s) = %q, %v, %v", b, name, d, ok, err)
			}
			if _, found, _ := Lookup(d, name); found {
				t.Fatalf("DeleteMember(%q, %s) = %q, which still has it", b, name, d)
			}
		}
	})
}
