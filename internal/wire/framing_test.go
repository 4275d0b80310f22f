package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestNDJSONReader(t *testing.T) {
	r := NDJSON.NewReader(strings.NewReader("\n{\"a\":1}\r\n  \n[2]\n"), 0)
	for _, want := range []string{`{"a":1}`, `[2]`} {
		got, err := r.Read()
		if err != nil || string(got) != want {
			t.Fatalf("Read = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("Read at end = %v, want io.EOF", err)
	}
}

func TestNDJSONReaderErrors(t *testing.T) {
	if _, err := NDJSON.NewReader(strings.NewReader(`{"a":1}`), 0).Read(); err != io.ErrUnexpectedEOF {
		t.Errorf("no newline: err = %v, want io.ErrUnexpectedEOF", err)
	}
	long := strings.Repeat("x", 100) + "\n"
	if _, err := NDJSON.NewReader(strings.NewReader(long), 10).Read(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("long line: err = %v, want ErrTooLarge", err)
	}
}

func TestFramingWriteRoundTrip(t *testing.T) {
	for _, f := range []Framing{NDJSON, Header} {
		var buf bytes.Buffer
		if err := f.Write(&buf, []byte(`{"id":1}`)); err != nil {
			t.Fatal(err)
		}
		got, err := f.NewReader(&buf, 0).Read()
		if err != nil || string(got) != `{"id":1}` {
			t.Errorf("%s: Read = %q, %v", f, got, err)
		}
	}
}

func TestDetectFraming(t *testing.T) {
	for in, want := range map[string]Framing{
		" \r\n{\"jsonrpc\"": NDJSON,
		"[":                 NDJSON,
		"Content-Length: 2": Header,
	} {
		br := bufio.NewReader(strings.NewReader(in))
		got, err := DetectFraming(br)
		if err != nil || got != want {
			t.Errorf("DetectFraming(%q) = %q, %v; want %q", in, got, err, want)
		}
		if br.Buffered() != len(in) {
			t.Errorf("DetectFraming(%q) consumed input", in)
		}
	}
	if _, err := DetectFraming(bufio.NewReader(strings.NewReader(strings.Repeat("\n", 5000)))); err == nil {
		t.Error("only blank lines: no error")
	}
}
