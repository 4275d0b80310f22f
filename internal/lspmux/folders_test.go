package lspmux

import (
	"fmt"
	"testing"
)

// The server hears only net changes of the union of the windows' folders,
// in both share scopes: a window adding a folder is one addition (never a
// remove and re-add of the folders it keeps); a folder another window
// still has is not removed; a folder leaves when its last window drops it.
func TestFolderNetChange(t *testing.T) {
	for _, global := range []bool{true, false} {
		t.Run(fmt.Sprintf("global=%v", global), func(t *testing.T) {
			h := newHarness(t, func(cfg *Config, f *fakeFarm) { cfg.ShareGlobal = global })
			a, b := h.join("a", "r1"), h.join("b", "r1")
			change := func(c *tclient, added, removed []folder) {
				t.Helper()
				if added == nil {
					added = []folder{}
				}
				if removed == nil {
					removed = []folder{}
				}
				mustNoErr(t, c.notify("workspace/didChangeWorkspaceFolders", map[string]any{"event": map[string]any{"added": added, "removed": removed}}))
				h.sync(c)
			}
			r1, r3 := folder{URI: "file:///ws/r1", Name: "r1"}, folder{URI: "file:///ws/r3", Name: "r3"}
			change(a, []folder{r3}, nil)
			change(a, nil, []folder{r1}) // b still has r1
			change(b, []folder{r3}, nil) // a has r3 already
			change(a, nil, []folder{r3}) // b still has r3
			change(b, nil, []folder{r3}) // now nobody has r3
			d := h.join("d", "r7")       // a window alone with its folder
			r8 := folder{URI: "file:///ws/r8", Name: "r8"}
			change(d, []folder{r8}, nil) // r7 stays: only +r8
			s := h.server()
			s.mu.Lock()
			got := fmt.Sprint(s.folderEvents)
			s.mu.Unlock()
			if want := fmt.Sprint([]struct{ Added, Removed []folder }{
				{Added: []folder{r3}}, {Removed: []folder{{URI: r3.URI, Name: "r3"}}},
				{Added: []folder{{URI: "file:///ws/r7", Name: "root"}}}, {Added: []folder{r8}},
			}); got != want {
				t.Fatalf("server got folder events %s, want %s", got, want)
			}
		})
	}
}
