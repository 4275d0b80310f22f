package idroute

import (
	"slices"
	"strings"
	"testing"
)

type client struct{ name string }

// TestCalls: a request is found by its client's id and its tokens both
// ways until it is taken; a client's reused id routes to the newer
// request and taking the older leaves it; the mux's own request (no
// client) has no client entries.
func TestCalls(t *testing.T) {
	a, b := &client{"a"}, &client{"b"}
	var tb Calls[*client, string]
	tb.Check = true
	tb.Add(1, Call[*client, string]{Client: a, ID: []byte("7"), Tokens: []Token{{Host: `"h1"`, Client: []byte(`"t"`)}}, Data: "hover"})
	tb.Add(2, Call[*client, string]{Client: b, ID: []byte("7"), Data: "definition"})
	tb.Add(3, Call[*client, string]{Data: "own"})
	if hid, ok := tb.HostID(a, []byte("7")); !ok || hid != 1 {
		t.Errorf("HostID(a, 7) = %d, %v", hid, ok)
	}
	if h, ok := tb.HostToken(a, []byte(`"t"`)); !ok || h != `"h1"` {
		t.Errorf("HostToken = %s, %v", h, ok)
	}
	if c, orig, ok := tb.Token(`"h1"`); !ok || c != a || string(orig) != `"t"` {
		t.Errorf("Token = %v %s %v", c, orig, ok)
	}
	tb.Add(4, Call[*client, string]{Client: a, ID: []byte("7"), Data: "again"})
	if hid, _ := tb.HostID(a, []byte("7")); hid != 4 {
		t.Errorf("reused id routes to %d, want the newer 4", hid)
	}
	if c, ok := tb.Take(1); !ok || c.Data != "hover" {
		t.Errorf("Take(1) = %v, %v", c, ok)
	}
	if hid, _ := tb.HostID(a, []byte("7")); hid != 4 {
		t.Errorf("after taking the older, id 7 routes to %d, want 4", hid)
	}
	if _, _, ok := tb.Token(`"h1"`); ok {
		t.Error("a taken request's token still routes")
	}
	if got := tb.OfClient(a); !slices.Equal(got, []int64{4}) {
		t.Errorf("OfClient(a) = %v", got)
	}
	if _, ok := tb.Take(1); ok {
		t.Error("taken twice")
	}
	if tb.Len() != 3 {
		t.Errorf("Len = %d, want 3", tb.Len())
	}
}

// TestAsks: an answer is taken only from the client that was asked; a
// server id reused while in flight replaces the older ask.
func TestAsks(t *testing.T) {
	a, b := &client{"a"}, &client{"b"}
	var tb Asks[*client, struct{}]
	tb.Check = true
	tb.Add(10, Ask[*client, struct{}]{Client: a, ServerID: []byte(`"s1"`)})
	if _, ok := tb.Take(b, 10); ok {
		t.Error("b took a's request")
	}
	if c, hid, ok := tb.ByServerID([]byte(`"s1"`)); !ok || c != a || hid != 10 {
		t.Errorf("ByServerID = %v %d %v", c, hid, ok)
	}
	if replaced := tb.Add(11, Ask[*client, struct{}]{Client: b, ServerID: []byte(`"s1"`)}); !replaced {
		t.Error("a reused server id did not replace the older request")
	}
	if _, ok := tb.Take(a, 10); ok {
		t.Error("the replaced request was still there")
	}
	if ask, ok := tb.Take(b, 11); !ok || string(ask.ServerID) != `"s1"` {
		t.Errorf("Take(b, 11) = %v, %v", ask, ok)
	}
	if len(tb.All()) != 0 {
		t.Errorf("left: %v", tb.All())
	}
}

// TestCheckCatches: the consistency check fails loudly on a table that
// was changed behind its methods' back.
func TestCheckCatches(t *testing.T) {
	a := &client{"a"}
	var tb Calls[*client, string]
	tb.Check = true
	tb.Add(1, Call[*client, string]{Client: a, ID: []byte("1"), Tokens: []Token{{Host: "h", Client: []byte("t")}}})
	delete(tb.calls, 1) // behind the methods' back
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "tables disagree") {
			t.Errorf("recover = %v, want the check's panic", r)
		}
	}()
	tb.Add(2, Call[*client, string]{Client: a, ID: []byte("2")})
}
