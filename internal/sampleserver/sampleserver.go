// Package sampleserver is a small language server built into procref, so that
// `procref demo` and the tests need no language server installed.
//
// It speaks LSP over any byte stream: initialize (full text sync, hover),
// didOpen/didChange/didClose, publishDiagnostics (a warning on every line
// containing "TODO"), hover (names the word under the cursor and the server's
// pid, so clients can see they share one process), shutdown and exit.
// [ListenAndServe] serves many TCP clients, one session each, like gopls in
// its -listen mode.
package sampleserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"unicode"

	"github.com/procref/procref/internal/wire"
)

// ErrExit is returned by Serve when the client sent "exit".
var ErrExit = errors.New("exit notification received")

// Serve runs one LSP session on r/w until EOF or exit. It blocks. It writes
// each message with one Write call.
func Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	s := &session{w: w, docs: map[string]string{}}
	fr := wire.NewReader(bufio.NewReaderSize(r, 64<<10), 0)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		body, err := fr.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := s.handle(body); err != nil {
			return err
		}
	}
}

// ListenAndServe accepts TCP clients on ln, each its own session, until ctx
// is done or ln fails. It blocks and closes ln when it returns.
func ListenAndServe(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			Serve(ctx, c, c)
		}()
	}
}

type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *respError      `json:"error,omitempty"`
}

type respError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type session struct {
	mu       sync.Mutex
	w        io.Writer
	docs     map[string]string
	shutdown bool
}

func (s *session) send(m any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return wire.Write(s.w, b)
}

func (s *session) reply(id json.RawMessage, result any) error {
	r, err := json.Marshal(result)
	if err != nil {
		return err
	}
	return s.send(message{JSONRPC: "2.0", ID: id, Result: r})
}

func (s *session) fail(id json.RawMessage, code int, msg string) error {
	return s.send(message{JSONRPC: "2.0", ID: id, Error: &respError{code, msg}})
}

type textDocument struct {
	URI     string `json:"uri"`
	Text    string `json:"text"`
	Version int    `json:"version"`
}

type position struct {
	Line      int `json:"line"`
	Character int `json:"character"`
}

type rng struct {
	Start position `json:"start"`
	End   position `json:"end"`
}

func (s *session) handle(body []byte) error {
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		return s.fail(json.RawMessage("null"), -32700, "parse error: "+err.Error())
	}
	isRequest := len(m.ID) > 0 && m.Method != ""
	switch m.Method {
	case "initialize":
		return s.reply(m.ID, map[string]any{
			"capabilities": map[string]any{
				"textDocumentSync": map[string]any{"openClose": true, "change": 1},
				"hoverProvider":    true,
			},
			"serverInfo": map[string]any{"name": "procref-sample", "version": "1"},
		})
	case "initialized", "$/cancelRequest", "$/setTrace", "workspace/didChangeConfiguration":
		return nil
	case "shutdown":
		s.shutdown = true
		return s.reply(m.ID, nil)
	case "exit":
		return ErrExit
	case "textDocument/didOpen":
		var p struct {
			TextDocument textDocument `json:"textDocument"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return nil
		}
		s.docs[p.TextDocument.URI] = p.TextDocument.Text
		return s.publish(p.TextDocument.URI, p.TextDocument.Version)
	case "textDocument/didChange":
		var p struct {
			TextDocument   textDocument `json:"textDocument"`
			ContentChanges []struct {
				Text  string `json:"text"`
				Range *rng   `json:"range"`
			} `json:"contentChanges"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			return nil
		}
		for _, c := range p.ContentChanges {
			if c.Range == nil {
				s.docs[p.TextDocument.URI] = c.Text
			}
		}
		return s.publish(p.TextDocument.URI, p.TextDocument.Version)
	case "textDocument/didClose":
		var p struct {
			TextDocument textDocument `json:"textDocument"`
		}
		json.Unmarshal(m.Params, &p)
		delete(s.docs, p.TextDocument.URI)
		return s.send(map[string]any{"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics",
			"params": map[string]any{"uri": p.TextDocument.URI, "diagnostics": []any{}}})
	case "textDocument/hover":
		var p struct {
			TextDocument textDocument `json:"textDocument"`
			Position     position     `json:"position"`
		}
		json.Unmarshal(m.Params, &p)
		text, ok := s.docs[p.TextDocument.URI]
		if !ok {
			return s.reply(m.ID, nil)
		}
		word := wordAt(text, p.Position)
		return s.reply(m.ID, map[string]any{
			"contents": map[string]any{"kind": "plaintext",
				"value": fmt.Sprintf("%q at %d:%d (procref sample server, pid %d)", word, p.Position.Line+1, p.Position.Character+1, os.Getpid())},
		})
	}
	if isRequest {
		return s.fail(m.ID, -32601, "method not found: "+m.Method)
	}
	return nil
}

func (s *session) publish(uri string, version int) error {
	diags := []any{}
	for i, line := range strings.Split(s.docs[uri], "\n") {
		if col := strings.Index(line, "TODO"); col >= 0 {
			diags = append(diags, map[string]any{
				"range":    rng{position{i, col}, position{i, col + 4}},
				"severity": 2,
				"source":   "procref-sample",
				"message":  "TODO found",
			})
		}
	}
	return s.send(map[string]any{"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics",
		"params": map[string]any{"uri": uri, "version": version, "diagnostics": diags}})
}

// wordAt returns the identifier at pos (UTF-16 columns are treated as runes;
// exact enough for a sample).
func wordAt(text string, pos position) string {
	lines := strings.Split(text, "\n")
	if pos.Line < 0 || pos.Line >= len(lines) {
		return ""
	}
	rs := []rune(lines[pos.Line])
	c := pos.Character
	if c < 0 || c > len(rs) {
		return ""
	}
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
	start, end := c, c
	for start > 0 && isWord(rs[start-1]) {
		start--
	}
	for end < len(rs) && isWord(rs[end]) {
		end++
	}
	return string(rs[start:end])
}
