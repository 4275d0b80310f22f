package lspmux

// A line diff between a window's text of a document and the backend's
// (textview.go): Myers' O(ND) algorithm on whole lines, after the common
// prefix and suffix are taken off. It yields, for each line of one text,
// the line of the other it is equal to and matched with, or -1 where the
// texts differ. Every differing region is found, not just the span from
// the first to the last. The work is bounded: past maxDiffEdits
// differing lines (a window and the backend with wholly different texts)
// the middle is treated as one differing region, which is still right
// (fewer answers, none at a wrong place).

// maxDiffEdits bounds the Myers search depth D: time O((N+M)·D), memory
// O(D²) int32s (4 MB at 1000).
const maxDiffEdits = 1000

// matchLines returns, for each line of a, its matched line of b or -1,
// and the same for b.
func matchLines(a, b []string) (aToB, bToA []int32) {
	aToB, bToA = make([]int32, len(a)), make([]int32, len(b))
	for i := range aToB {
		aToB[i] = -1
	}
	for i := range bToA {
		bToA[i] = -1
	}
	match := func(i, j int) { aToB[i], bToA[j] = int32(j), int32(i) }
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		match(pre, pre)
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		match(len(a)-1-suf, len(b)-1-suf)
		suf++
	}
	myers(a[pre:len(a)-suf], b[pre:len(b)-suf], func(i, j int) { match(pre+i, pre+j) })
	return aToB, bToA
}

// myers calls match for each pair of lines in a longest common
// subsequence of a and b, or for none if that needs more than
// maxDiffEdits insertions and deletions.
func myers(a, b []string, match func(i, j int)) {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		return
	}
	maxD := min(n+m, maxDiffEdits)
	off := maxD + 1
	v := make([]int, 2*maxD+3) // v[off+k]: furthest x on diagonal k
	var trace [][]int          // trace[d]: v[off-d .. off+d] before step d
	for d := 0; d <= maxD; d++ {
		trace = append(trace, append([]int(nil), v[off-d:off+d+1]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1] // down: a line of b inserted
			} else {
				x = v[off+k-1] + 1 // right: a line of a deleted
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				backtrack(trace, n, m, match)
				return
			}
		}
	}
}

// backtrack walks the furthest-reaching paths in trace back from (n, m),
// reporting the diagonal moves (equal lines).
func backtrack(trace [][]int, x, y int, match func(i, j int)) {
	for d := len(trace) - 1; d > 0; d-- {
		prev := trace[d] // index k+d is diagonal k after step d-1
		k := x - y
		pk := k - 1
		if k == -d || (k != d && prev[k-1+d] < prev[k+1+d]) {
			pk = k + 1
		}
		px := prev[pk+d]
		py := px - pk
		for x > px && y > py {
			x, y = x-1, y-1
			match(x, y)
		}
		x, y = px, py
	}
	for x > 0 && y > 0 {
		x, y = x-1, y-1
		match(x, y)
	}
}
