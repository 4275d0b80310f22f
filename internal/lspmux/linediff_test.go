package lspmux

import (
	"math/rand"
	"slices"
	"strings"
	"testing"
)

func TestLineViewRegions(t *testing.T) {
	// window: a line inserted at the top, one changed in the middle, one
	// deleted near the end; three differing regions, shared lines between.
	client := "new\na\nb\nC\nd\ne\ng\n"
	server := "a\nb\nc\nd\ne\nf\ng\n"
	v := newLineView(client, server)
	want := map[int]int{1: 0, 2: 1, 4: 3, 5: 4, 6: 6, 7: 7}
	for cl := 0; cl < 9; cl++ {
		sl, ok := v.toServer(cl)
		w, in := want[cl]
		if cl == 8 { // past the end: moves with the last line
			w, in = 8, true
		}
		if ok != in || (ok && sl != w) {
			t.Errorf("window line %d -> %d %v, want %d %v", cl, sl, ok, w, in)
		}
	}
	for sl, cl := range map[int]int{0: 1, 3: 4, 6: 6} {
		if got, ok := v.toClient(sl); !ok || got != cl {
			t.Errorf("server line %d -> %d %v, want %d", sl, got, ok, cl)
		}
	}
	for _, sl := range []int{2, 5} {
		if _, ok := v.toClient(sl); ok {
			t.Errorf("server line %d (changed or deleted in the window) mapped", sl)
		}
	}
}

// lcsLen is the textbook dynamic program, the reference for myers.
func lcsLen(a, b []string) int {
	t := make([][]int, len(a)+1)
	for i := range t {
		t[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	return t[0][0]
}

// checkMatch verifies a matching: equal lines, both directions agree,
// strictly increasing (no crossing); it returns its size.
func checkMatch(t *testing.T, a, b []string, aToB, bToA []int32) int {
	t.Helper()
	n, last := 0, int32(-1)
	for i, j := range aToB {
		if j < 0 {
			continue
		}
		if a[i] != b[j] || bToA[j] != int32(i) || j <= last {
			t.Fatalf("bad match %d->%d in %q / %q", i, j, a, b)
		}
		last, n = j, n+1
	}
	for j, i := range bToA {
		if i >= 0 && aToB[i] != int32(j) {
			t.Fatalf("bToA[%d]=%d not mirrored", j, i)
		}
	}
	return n
}

func TestMatchLinesIsLongest(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	alpha := []string{"a", "b", "c", "{", "}", ""}
	for iter := 0; iter < 2000; iter++ {
		a := make([]string, r.Intn(14))
		for i := range a {
			a[i] = alpha[r.Intn(len(alpha))]
		}
		b := slices.Clone(a)
		for e := r.Intn(6); e > 0; e-- { // random inserts, deletes, changes
			i := r.Intn(len(b) + 1)
			switch r.Intn(3) {
			case 0:
				b = slices.Insert(b, i, alpha[r.Intn(len(alpha))])
			case 1:
				if i < len(b) {
					b = slices.Delete(b, i, i+1)
				}
			default:
				if i < len(b) {
					b[i] = alpha[r.Intn(len(alpha))]
				}
			}
		}
		aToB, bToA := matchLines(a, b)
		if got, want := checkMatch(t, a, b, aToB, bToA), lcsLen(a, b); got != want {
			t.Fatalf("%q / %q: matched %d lines, longest is %d", a, b, got, want)
		}
	}
}

// TestMatchLinesBudget: texts differing past maxDiffEdits lines keep
// their common prefix and suffix and treat the rest as one region.
func TestMatchLinesBudget(t *testing.T) {
	var a, b []string
	a = append(a, "head")
	b = append(b, "head")
	for i := 0; i < maxDiffEdits; i++ {
		a = append(a, "x"+strings.Repeat("a", i%7), "same")
		b = append(b, "y", "same")
	}
	a, b = append(a, "tail"), append(b, "tail")
	aToB, bToA := matchLines(a, b)
	if n := checkMatch(t, a, b, aToB, bToA); n != 3 {
		t.Fatalf("matched %d lines past the budget, want only the prefix (head) and suffix (same, tail)", n)
	}
	// just within budget: the shared lines between the changes are found
	a, b = a[:21], b[:21]
	aToB, bToA = matchLines(a, b)
	if got, want := checkMatch(t, a, b, aToB, bToA), lcsLen(a, b); got != want {
		t.Fatalf("matched %d, want %d", got, want)
	}
}
