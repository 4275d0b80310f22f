package wire

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a validating single-pass JSON scanner that records nothing but
// the spans its callers ask for.
type scanner struct {
	b       []byte
	i       int
	depth   int
	trusted bool // ScanTrusted: strings are skipped, not validated; names not checked for duplicates
}

// strSafe[c] is true for bytes that need no attention inside a string.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = true
	}
	t['"'] = false
	t['\\'] = false
	return t
}()

// knownMethods interns method names so that scanning common traffic does
// not allocate.
var knownMethods = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		"initialize", "initialized", "shutdown", "exit", "$/cancelRequest", "$/progress", "$/setTrace", "$/logTrace",
		"textDocument/didOpen", "textDocument/didChange", "textDocument/didClose", "textDocument/didSave",
		"textDocument/willSave", "textDocument/willSaveWaitUntil",
		"textDocument/publishDiagnostics", "textDocument/hover", "textDocument/completion", "completionItem/resolve",
		"textDocument/definition", "textDocument/references", "textDocument/documentSymbol",
		"textDocument/documentHighlight", "textDocument/semanticTokens/full", "textDocument/semanticTokens/full/delta",
		"textDocument/semanticTokens/range", "textDocument/codeAction", "codeAction/resolve", "textDocument/codeLens",
		"textDocument/formatting", "textDocument/rangeFormatting", "textDocument/onTypeFormatting",
		"textDocument/rename", "textDocument/prepareRename", "textDocument/signatureHelp", "textDocument/inlayHint",
		"textDocument/foldingRange", "textDocument/documentLink", "textDocument/diagnostic", "textDocument/typeDefinition",
		"textDocument/implementation", "textDocument/declaration", "textDocument/selectionRange",
		"workspace/symbol", "workspace/executeCommand", "workspace/didChangeConfiguration",
		"workspace/didChangeWatchedFiles", "workspace/didChangeWorkspaceFolders", "workspace/configuration",
		"workspace/applyEdit", "workspace/workspaceFolders", "workspace/diagnostic",
		"workspace/semanticTokens/refresh", "workspace/codeLens/refresh", "workspace/inlayHint/refresh",
		"workspace/inlineValue/refresh", "workspace/diagnostic/refresh", "workspace/foldingRange/refresh",
		"window/showMessage", "window/logMessage", "window/showMessageRequest", "window/showDocument",
		"window/workDoneProgress/create", "window/workDoneProgress/cancel", "telemetry/event",
		"client/registerCapability", "client/unregisterCapability",
	} {
		m[s] = s
	}
	return m
}()

func scan(body []byte, trusted bool) (Fields, error) {
	var f Fields
	s := scanner{b: body, trusted: trusted}
	s.ws()
	if s.i >= len(body) || body[s.i] != '{' {
		return f, s.bad("message is not a json object")
	}
	err := s.members(func(name []byte, _, v Span) (bool, error) {
		switch string(name) {
		case "id":
			f.ID = v
		case "method":
			f.Method = v
		case "params":
			f.Params = v
		case "result":
			f.Result = v
		case "error":
			f.Error = v
		}
		return true, nil
	})
	if err != nil {
		return f, err
	}
	s.ws()
	if s.i != len(body) {
		return f, s.bad("trailing data after message")
	}
	if f.Method.Ok() {
		tok := f.Method.Of(body)
		if tok[0] != '"' {
			return f, errf(ErrBadJSON, "method is not a string")
		}
		raw := tok[1 : len(tok)-1]
		if m, ok := knownMethods[string(raw)]; ok {
			f.method = m
		} else {
			m, err := unquote(tok)
			if err != nil {
				return f, err
			}
			f.method = m
		}
	}
	return f, nil
}

func (s *scanner) bad(what string) error {
	return errf(ErrBadJSON, "%s at offset %d", what, s.i)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) value() error {
	if s.i >= len(s.b) {
		return s.bad("unexpected end")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		return s.members(nil)
	case c == '[':
		return s.array()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	}
	return s.bad("unexpected character")
}

func (s *scanner) lit(word string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return s.bad("bad literal")
	}
	s.i += len(word)
	return nil
}

// members walks the object at s.i (its '{'), checking its values and
// (unless trusted) that no member name is given twice. each, if set, is
// given each member's name (unquoted), its span (name to value end) and
// its value's span; it returns false to stop the walk after that member.
// It is the one walk of an object's members: a message's top level
// (scan), nested objects, Lookup, Members, DeleteMember, ScanEnds.
func (s *scanner) members(each func(name []byte, member, value Span) (bool, error)) error {
	s.depth++
	if s.depth > MaxDepth {
		return s.bad("nesting too deep")
	}
	s.i++ // '{'
	s.ws()
	if s.eat('}') {
		s.depth--
		return nil
	}
	var names keySet
	for {
		ks := s.i
		if err := s.str(); err != nil {
			return err
		}
		var name []byte
		if each != nil || !s.trusted {
			var err error
			if name, err = memberName(s.b[ks:s.i]); err != nil {
				return err
			}
		}
		if err := names.add(s, name); err != nil {
			return err
		}
		s.ws()
		if !s.eat(':') {
			return s.bad("expected ':'")
		}
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return err
		}
		if each != nil {
			if more, err := each(name, Span{ks, s.i}, Span{vs, s.i}); err != nil || !more {
				return err
			}
		}
		s.ws()
		if s.eat(',') {
			s.ws()
			continue
		}
		if s.eat('}') {
			s.depth--
			return nil
		}
		return s.bad("expected ',' or '}'")
	}
}

// memberName is a member's name token unquoted: the bytes between its
// quotes unless it has escapes.
func memberName(tok []byte) ([]byte, error) {
	name := tok[1 : len(tok)-1]
	if bytes.IndexByte(name, '\\') < 0 {
		return name, nil
	}
	u, err := unquote(tok)
	return []byte(u), err
}

// keySet detects a member name given twice in one object. JSON parsers
// disagree on which value wins (first, last, or an error), so a router
// that read one value while the backend reads another could be steered
// past its checks; such messages are refused instead.
type keySet struct {
	small [12][]byte
	n     int
	big   map[string]struct{}
}

func (k *keySet) add(s *scanner, key []byte) error {
	if s.trusted {
		return nil
	}
	if k.big != nil {
		if _, dup := k.big[string(key)]; dup {
			return s.bad("duplicate member " + strconv.Quote(string(key)))
		}
		k.big[string(key)] = struct{}{}
		return nil
	}
	for _, o := range k.small[:k.n] {
		if bytes.Equal(o, key) {
			return s.bad("duplicate member " + strconv.Quote(string(key)))
		}
	}
	if k.n < len(k.small) {
		k.small[k.n] = key
		k.n++
		return nil
	}
	k.big = make(map[string]struct{}, 2*len(k.small))
	for _, o := range k.small {
		k.big[string(o)] = struct{}{}
	}
	k.big[string(key)] = struct{}{}
	return nil
}

func (s *scanner) array() error {
	s.depth++
	if s.depth > MaxDepth {
		return s.bad("nesting too deep")
	}
	s.i++ // '['
	s.ws()
	if s.eat(']') {
		s.depth--
		return nil
	}
	for {
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.eat(',') {
			s.ws()
			continue
		}
		if s.eat(']') {
			s.depth--
			return nil
		}
		return s.bad("expected ',' or ']'")
	}
}

// str scans a string token starting at s.i (which must be '"').
func (s *scanner) str() error {
	if !s.eat('"') {
		return s.bad("expected string")
	}
	b := s.b
	i := s.i
	if s.trusted {
		for {
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				s.i = len(b)
				return s.bad("unterminated string")
			}
			i += j
			bs := 0 // backslashes just before the quote
			for k := i - 1; k >= s.i && b[k] == '\\'; k-- {
				bs++
			}
			i++
			if bs%2 == 0 {
				s.i = i
				return nil
			}
		}
	}
	// The next '"' byte is found with IndexByte (vectorised) and kept
	// until i passes it (an escaped quote), so strings full of escapes
	// stay linear; the stretch up to it, or up to the next backslash, is
	// then checked for control and non-ASCII bytes 8 at a time.
	q := -1 // position of the next '"' byte at or after i
	for {
		if q < i {
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				s.i = len(b)
				return s.bad("unterminated string")
			}
			q = i + j
		}
		end := q
		if k := bytes.IndexByte(b[i:q], '\\'); k >= 0 {
			end = i + k
		}
		for i < end {
			for i+8 <= end {
				x := binary.LittleEndian.Uint64(b[i:])
				if ((x-lo8*0x20)|x)&hi8 != 0 {
					break // a control or non-ASCII byte among these 8
				}
				i += 8
			}
			for i < end && strSafe[b[i]] {
				i++
			}
			if i == end {
				break
			}
			if c := b[i]; c < 0x20 {
				s.i = i
				return s.bad("control character in string")
			}
			r, size := utf8.DecodeRune(b[i:end])
			if r == utf8.RuneError && size <= 1 {
				s.i = i
				return s.bad("invalid utf-8 in string")
			}
			i += size
		}
		switch b[i] { // '"' or '\\'
		case '"':
			s.i = i + 1
			return nil
		case '\\':
			if i+1 >= len(b) {
				s.i = i
				return s.bad("unterminated escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					s.i = i
					return s.bad("bad \\u escape")
				}
				i += 6
			default:
				s.i = i
				return s.bad("bad escape")
			}
		}
	}
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

func isHex4(h []byte) bool {
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() error {
	s.eat('-')
	if !s.eat('0') && s.digits() == 0 { // a leading 0 stands alone
		return s.bad("bad number")
	}
	if s.eat('.') && s.digits() == 0 {
		return s.bad("bad fraction")
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return s.bad("bad exponent")
		}
	}
	return nil
}

func lookup(raw []byte, path []string) (Span, bool, error) {
	// raw is valid (checked by Scan, or from the trusted backend): skip
	// strings with IndexByte instead of validating them again.
	base := 0
	for _, want := range path {
		s := scanner{b: raw, trusted: true}
		s.ws()
		if s.i >= len(raw) || raw[s.i] != '{' {
			return Span{}, false, nil
		}
		var found Span
		ok := false
		err := s.members(func(name []byte, _, v Span) (bool, error) {
			if string(name) == want {
				found, ok = v, true
			}
			return !ok, nil
		})
		if err != nil || !ok {
			return Span{}, false, err
		}
		raw, base = raw[found.Start:found.End], base+found.Start
	}
	if len(path) == 0 {
		s := scanner{b: raw, trusted: true}
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return Span{}, false, err
		}
		return Span{vs, s.i}, true, nil
	}
	return Span{base, base + len(raw)}, true, nil
}

func unquote(tok []byte) (string, error) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", errf(ErrBadJSON, "not a string: %.40q", tok)
	}
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		if !utf8.Valid(inner) {
			return "", errf(ErrBadJSON, "invalid utf-8 in string")
		}
		return string(inner), nil
	}
	if !utf8.Valid(inner) {
		return "", errf(ErrBadJSON, "invalid utf-8 in string")
	}
	out := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); {
		j := bytes.IndexByte(inner[i:], '\\')
		if j < 0 {
			out = append(out, inner[i:]...)
			break
		}
		out = append(out, inner[i:i+j]...)
		i += j
		if i+1 >= len(inner) {
			return "", errf(ErrBadJSON, "unterminated escape")
		}
		c := inner[i+1]
		i += 2
		switch c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(inner[i:])
			if !ok {
				return "", errf(ErrBadJSON, "bad \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if i+6 <= len(inner) && inner[i] == '\\' && inner[i+1] == 'u' {
					r2, ok2 = hex4(inner[i+2:])
				}
				if d := utf16.DecodeRune(r, r2); ok2 && d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errf(ErrBadJSON, "bad escape")
		}
	}
	return string(out), nil
}

func hex4(h []byte) (rune, bool) {
	if len(h) < 4 || !isHex4(h[:4]) {
		return 0, false
	}
	var r rune
	for _, c := range h[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

func appendQuote(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if strSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// objectMembers calls fn for each top-level member of the object raw with
// the span of the whole member (key start to value end) and of its value;
// fn returns false to stop.
func objectMembers(raw []byte, fn func(key []byte, member, value Span) (bool, error)) error {
	s := scanner{b: raw, trusted: true} // raw is valid: see lookup
	s.ws()
	if s.i >= len(raw) || raw[s.i] != '{' {
		return s.bad("not an object")
	}
	return s.members(fn)
}

func members(raw []byte, keys []string) ([]Span, error) {
	out := make([]Span, len(keys))
	err := objectMembers(raw, func(key []byte, _, v Span) (bool, error) {
		for i, k := range keys {
			if string(key) == k {
				out[i] = v
			}
		}
		return true, nil
	})
	return out, err
}

func deleteMember(raw []byte, key string) ([]byte, bool, error) {
	var all []Span
	var keep []Span
	err := objectMembers(raw, func(k []byte, m, _ Span) (bool, error) {
		all = append(all, m)
		if string(k) != key {
			keep = append(keep, m)
		}
		return true, nil
	})
	if err != nil || len(keep) == len(all) {
		return raw, false, err
	}
	out := make([]byte, 0, len(raw))
	out = append(out, raw[:all[0].Start]...)
	for i, m := range keep {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, raw[m.Start:m.End]...)
	}
	return append(out, raw[all[len(all)-1].End:]...), true, nil
}
