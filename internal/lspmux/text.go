package lspmux

import (
	"strings"
	"unicode/utf8"
)

// posEncoding is the unit of LSP Position.character the backend agreed to
// (initialize result capabilities.positionEncoding; UTF-16 by default).
type posEncoding int

const (
	encUTF16 posEncoding = iota
	encUTF8
	encUTF32
)

func parseEncoding(s string) posEncoding {
	switch s {
	case "utf-8":
		return encUTF8
	case "utf-32":
		return encUTF32
	}
	return encUTF16
}

type position struct {
	Line      int `json:"line"`
	Character int `json:"character"`
}

type textRange struct {
	Start position `json:"start"`
	End   position `json:"end"`
}

type contentChange struct {
	Range *textRange `json:"range,omitempty"`
	Text  string     `json:"text"`
}

// applyChanges applies LSP content changes in order, as the spec defines:
// a change without a range replaces the whole text; positions past the end
// of a line clamp to the line's end, lines past the end clamp to the end of
// the text; a range whose end precedes its start is treated as empty.
func applyChanges(text string, changes []contentChange, enc posEncoding) string {
	for _, ch := range changes {
		if ch.Range == nil {
			text = ch.Text
			continue
		}
		a := offsetOf(text, ch.Range.Start, enc)
		b := offsetOf(text, ch.Range.End, enc)
		if b < a {
			b = a
		}
		var sb strings.Builder
		sb.Grow(len(text) - (b - a) + len(ch.Text))
		sb.WriteString(text[:a])
		sb.WriteString(ch.Text)
		sb.WriteString(text[b:])
		text = sb.String()
	}
	return text
}

// offsetOf converts an LSP position to a byte offset in text. Line breaks
// are "\n", "\r\n" and "\r". A character offset inside a surrogate pair (or
// a multi-byte sequence for UTF-8) rounds down to the character's start.
func offsetOf(text string, p position, enc posEncoding) int {
	if p.Line < 0 || p.Character < 0 {
		return 0
	}
	i := 0
	for line := 0; line < p.Line; line++ {
		j := strings.IndexAny(text[i:], "\r\n")
		if j < 0 {
			return len(text)
		}
		i += j
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i += 2
		} else {
			i++
		}
	}
	if enc == encUTF8 {
		end := i + p.Character
		if eol := strings.IndexAny(text[i:], "\r\n"); eol >= 0 && i+eol < end {
			return i + eol
		}
		if end > len(text) {
			return len(text)
		}
		for end > i && !utf8.RuneStart(text[end]) {
			end--
		}
		return end
	}
	units := 0
	for i < len(text) {
		c := text[i]
		if c == '\n' || c == '\r' {
			return i
		}
		if units >= p.Character {
			return i
		}
		if c < utf8.RuneSelf {
			units++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		w := 1
		if enc == encUTF16 && r >= 0x10000 {
			w = 2
		}
		if units+w > p.Character {
			return i
		}
		units += w
		i += size
	}
	return i
}
