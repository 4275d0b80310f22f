package lspmux

import (
	"encoding/json"
	"testing"
)

func TestOfferUTF16(t *testing.T) {
	in := `{"rootUri":"file:///r","capabilities":{"offsetEncoding":["utf-8"],"general":{"positionEncodings":["utf-8","utf-16"],"staleRequestSupport":{"cancel":true}},"window":{"workDoneProgress":true}}}`
	var p struct {
		RootURI      string
		Capabilities struct {
			OffsetEncoding []string
			General        struct {
				PositionEncodings   []string
				StaleRequestSupport struct{ Cancel bool }
			}
			Window struct{ WorkDoneProgress bool }
		}
	}
	if err := json.Unmarshal(offerUTF16([]byte(in)), &p); err != nil {
		t.Fatal(err)
	}
	c := p.Capabilities
	if p.RootURI != "file:///r" || len(c.OffsetEncoding) != 1 || c.OffsetEncoding[0] != "utf-16" ||
		len(c.General.PositionEncodings) != 1 || c.General.PositionEncodings[0] != "utf-16" ||
		!c.General.StaleRequestSupport.Cancel || !c.Window.WorkDoneProgress {
		t.Fatalf("offerUTF16 = %+v", p)
	}
	if got := string(offerUTF16([]byte("null"))); got != "null" {
		t.Fatalf("offerUTF16(null) = %s", got)
	}
}

func TestResultEncoding(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want posEncoding
	}{
		{`{"capabilities":{"hoverProvider":true}}`, encUTF16},
		{`{"capabilities":{},"offsetEncoding":"utf-8"}`, encUTF8}, // clangd's field
		{`{"capabilities":{"positionEncoding":"utf-32"}}`, encUTF32},
		{`{"capabilities":{"positionEncoding":"utf-8"},"offsetEncoding":"utf-16"}`, encUTF8},
	} {
		out, enc, _ := resultEncoding([]byte(tc.in))
		var r struct{ Capabilities map[string]any }
		json.Unmarshal(out, &r)
		if enc != tc.want || r.Capabilities["positionEncoding"] == nil {
			t.Errorf("resultEncoding(%s) = %s, %v; want %v and positionEncoding set", tc.in, out, enc, tc.want)
		}
	}
}
