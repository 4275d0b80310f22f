package wire

// Ends is what the two ends of a JSON-RPC message body tell when its middle
// is never seen (a large body the proxy splices past itself).
type Ends struct {
	// ID is the raw "id" token (a number or a string, quotes included),
	// nil if neither end holds it whole.
	ID []byte
	// Request: a top-level "method" or "params" member (a request or a
	// notification). Response: a top-level "result" or "error" member.
	// Neither, or both, means the kind is unknown.
	Request, Response bool
}

// ScanEnds reads the top-level members found whole in head (the body's
// first bytes) and in last (its last bytes), and the name of the member
// whose value runs on past head (for a large message, the one that holds
// the bulk: "result" or "params"). head and last may overlap or be empty.
// The body must be valid JSON (the trusted backend's, or an editor's that
// the backend parses in full anyway): at worst a malformed one gives a
// wrong or missing id, never a panic.
//
// Why the end: servers write "id" where their encoder puts it; gopls (its
// jsonrpc2 wire structs) puts it after "result", clangd and most clients
// before. A scalar member at the end of an object is found from the end
// without seeing the rest: the last byte is the top-level '}', and quotes
// in JSON strings are escaped, so walking back over scalar members is as
// sure as walking forward.
func ScanEnds(head, last []byte) Ends {
	var e Ends
	e.scanHead(head)
	lastMembers(last, e.note)
	return e
}

// note records one top-level member.
func (e *Ends) note(key, value []byte) {
	switch string(key) {
	case "id":
		if len(value) > 0 && (value[0] == '"' || value[0] == '-' || value[0] >= '0' && value[0] <= '9') {
			e.ID = value
		}
	case "method", "params":
		e.Request = true
	case "result", "error":
		e.Response = true
	}
}

// scanHead notes the members whole in head, and the member whose value
// head ends in (its value unseen).
func (e *Ends) scanHead(head []byte) {
	end := -1 // where the last whole member's value ended
	err := objectMembers(head, func(key []byte, _, v Span) (bool, error) {
		if v.End == len(head) {
			return false, nil // a number there may go on past head
		}
		e.note(key, v.Of(head))
		end = v.End
		return true, nil
	})
	if err == nil && end != -1 {
		return
	}
	s := scanner{b: head, trusted: true}
	if end == -1 {
		s.ws()
		if !s.eat('{') {
			return
		}
	} else {
		s.i = end
		s.ws()
		if !s.eat(',') {
			return
		}
	}
	s.ws()
	ks := s.i
	if s.str() != nil {
		return
	}
	key := head[ks+1 : s.i-1]
	s.ws()
	if s.eat(':') {
		e.note(key, nil)
	}
}

// lastMembers calls fn with the key and value of each top-level member
// at the end of the object whose last bytes are b, last member first,
// while their values are scalars (strings, numbers, literals) held whole
// in b. A member counts only once the ',' or '{' before its key is seen.
func lastMembers(b []byte, fn func(key, value []byte)) {
	i := wsBack(b, len(b))
	if i == 0 || b[i-1] != '}' {
		return
	}
	i--
	for {
		ve := wsBack(b, i)
		vs := scalarBack(b, ve)
		if vs < 0 {
			return
		}
		i = wsBack(b, vs)
		if i == 0 || b[i-1] != ':' {
			return
		}
		ke := wsBack(b, i-1)
		if ke == 0 || b[ke-1] != '"' {
			return
		}
		ks := stringBack(b, ke-1)
		if ks < 0 {
			return
		}
		i = wsBack(b, ks)
		if i == 0 || b[i-1] != ',' && b[i-1] != '{' {
			return
		}
		fn(b[ks+1:ke-1], b[vs:ve])
		if b[i-1] == '{' {
			return // the object's first member: all of it was scalars
		}
		i--
	}
}

// wsBack is the index after the last non-space byte of b[:i].
func wsBack(b []byte, i int) int {
	for i > 0 && (b[i-1] == ' ' || b[i-1] == '\t' || b[i-1] == '\r' || b[i-1] == '\n') {
		i--
	}
	return i
}

// scalarBack is the start of the scalar value that ends at b[:e], or -1
// if the value there is an object or an array or may start before b.
func scalarBack(b []byte, e int) int {
	if e == 0 {
		return -1
	}
	if b[e-1] == '"' {
		return stringBack(b, e-1)
	}
	j := e
	for j > 0 && isTokenByte(b[j-1]) {
		j--
	}
	if j == e || j == 0 {
		return -1
	}
	return j
}

// isTokenByte: a byte of a number or of true, false, null.
func isTokenByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == 'E' || c == '.' || c == '+' || c == '-'
}

// stringBack is the index of the opening quote of the string whose closing
// quote is b[q], or -1 if it is not in b: the nearest quote before q not
// escaped, that is, after an even run of backslashes (a run that reaches
// the start of b may be longer than b shows).
func stringBack(b []byte, q int) int {
	for j := q - 1; j >= 0; j-- {
		if b[j] != '"' {
			continue
		}
		k := j
		for k > 0 && b[k-1] == '\\' {
			k--
		}
		if k == 0 {
			return -1
		}
		if (j-k)%2 == 0 {
			return j
		}
	}
	return -1
}
