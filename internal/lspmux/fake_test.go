package lspmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/procref/procref/internal/wire"
)

// fakeServer is an in-process language server that records what it gets
// and checks the mux's invariants toward a server: one initialize before
// anything else, unique request ids, balanced opens and closes, versions
// that only increase, every request it sends answered exactly once.
type fakeServer struct {
	t     testing.TB
	n     int
	caps  string
	stdin io.Reader      // what the mux writes
	out   io.WriteCloser // what the mux reads
	wmu   sync.Mutex     // serialises writes to out
	done  chan struct{}  // closed when the server goroutine ended
	hook  func(s *fakeServer, method string, id json.RawMessage, params json.RawMessage) bool
	be    *fakeBackend

	mu           sync.Mutex
	inits        int
	initialized  int
	shutdowns    int
	exited       bool
	ids          map[string]bool
	open         map[string]*fdoc
	opens        map[string]int // didOpen count per URI
	closes       map[string]int
	lastVer      map[string]int64
	methods      []string
	violations   []string
	nextSrvID    int
	srvPending   map[int]chan json.RawMessage
	srvAnswered  map[int]int
	folders      map[string]bool
	folderEvents []struct{ Added, Removed []folder }
	held         map[string]chan struct{} // test/hold requests waiting
	cancelled    map[string]bool
}

type fdoc struct {
	version int64
	text    string
}

const defaultCaps = `{"capabilities":{"textDocumentSync":2,"hoverProvider":true,"workspace":{"workspaceFolders":{"supported":true,"changeNotifications":true}}},"serverInfo":{"name":"fake"}}`

func newFakeServer(t testing.TB, n int, caps string) *fakeServer {
	if caps == "" {
		caps = defaultCaps
	}
	return &fakeServer{
		t: t, n: n, caps: caps, done: make(chan struct{}),
		ids: map[string]bool{}, open: map[string]*fdoc{}, opens: map[string]int{}, closes: map[string]int{},
		lastVer: map[string]int64{}, srvPending: map[int]chan json.RawMessage{}, srvAnswered: map[int]int{},
		folders: map[string]bool{}, held: map[string]chan struct{}{}, cancelled: map[string]bool{},
	}
}

// fakeBackend connects a fakeServer to the mux as a Backend.
type fakeBackend struct {
	s        *fakeServer
	toSrvW   *io.PipeWriter
	fromSrvR *io.PipeReader
	inR      *io.PipeReader
	outW     *io.PipeWriter
	once     sync.Once
}

func (b *fakeBackend) Read(p []byte) (int, error)  { return b.fromSrvR.Read(p) }
func (b *fakeBackend) Write(p []byte) (int, error) { return b.toSrvW.Write(p) }
func (b *fakeBackend) Close() error {
	b.toSrvW.Close()
	b.fromSrvR.CloseWithError(io.EOF)
	return nil
}
func (b *fakeBackend) Kill() error { // like kill -9: everything goes at once
	b.once.Do(func() {
		b.inR.CloseWithError(errors.New("killed"))
		b.outW.CloseWithError(errors.New("killed"))
	})
	return nil
}
func (b *fakeBackend) Wait() error { <-b.s.done; return nil }

func (s *fakeServer) backend() *fakeBackend {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s.stdin, s.out = inR, outW
	b := &fakeBackend{s: s, toSrvW: inW, fromSrvR: outR, inR: inR, outW: outW}
	s.be = b
	go s.run()
	return b
}

// fakeFarm starts fake servers for a mux and keeps them for inspection.
type fakeFarm struct {
	t       testing.TB
	caps    string
	hook    func(s *fakeServer, method string, id, params json.RawMessage) bool
	mu      sync.Mutex
	servers []*fakeServer
	fail    error // Start fails with this when set
}

func (f *fakeFarm) start(ctx context.Context) (Backend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	s := newFakeServer(f.t, len(f.servers)+1, f.caps)
	s.hook = f.hook
	f.servers = append(f.servers, s)
	return s.backend(), nil
}

func (f *fakeFarm) last() *fakeServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.servers) == 0 {
		return nil
	}
	return f.servers[len(f.servers)-1]
}

func (f *fakeFarm) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.servers)
}

func (s *fakeServer) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf("server %d: ", s.n)+fmt.Sprintf(format, args...))
}

func (s *fakeServer) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s.sendRaw(b)
}

func (s *fakeServer) sendRaw(b []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	wire.Write(s.out, b)
}

func (s *fakeServer) reply(id json.RawMessage, result any) {
	s.send(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
}

// request sends a request to the mux and returns a channel for its answer.
func (s *fakeServer) request(method string, params any) chan json.RawMessage {
	s.mu.Lock()
	s.nextSrvID++
	id := s.nextSrvID
	ch := make(chan json.RawMessage, 1)
	s.srvPending[id] = ch
	s.mu.Unlock()
	s.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return ch
}

func (s *fakeServer) notify(method string, params any) {
	s.send(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

type wireMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

func (s *fakeServer) run() {
	defer close(s.done)
	defer s.out.Close()
	r := wire.NewReader(s.stdin, 0)
	for {
		body, err := r.Read()
		if err != nil {
			return
		}
		var m wireMsg
		if err := json.Unmarshal(body, &m); err != nil {
			s.mu.Lock()
			s.violate("invalid json from mux: %v", err)
			s.mu.Unlock()
			continue
		}
		if m.Method == "" { // a response to our request
			var id int
			json.Unmarshal(m.ID, &id)
			s.mu.Lock()
			s.srvAnswered[id]++
			ch := s.srvPending[id]
			delete(s.srvPending, id)
			if s.srvAnswered[id] > 1 {
				s.violate("request %d answered %d times", id, s.srvAnswered[id])
			}
			s.mu.Unlock()
			if ch != nil {
				if m.Error != nil {
					ch <- json.RawMessage(`{"error":` + string(m.Error) + `}`)
				} else {
					ch <- m.Result
				}
			}
			continue
		}
		if !s.handle(&m) {
			return
		}
	}
}

func (s *fakeServer) handle(m *wireMsg) bool {
	s.mu.Lock()
	s.methods = append(s.methods, m.Method)
	if m.ID != nil {
		if s.ids[string(m.ID)] {
			s.violate("request id %s reused", m.ID)
		}
		s.ids[string(m.ID)] = true
	}
	if m.Method != "initialize" && s.inits == 0 && m.Method != "exit" {
		s.violate("%s before initialize", m.Method)
	}
	s.mu.Unlock()
	if s.hook != nil && s.hook(s, m.Method, m.ID, m.Params) {
		return true
	}
	switch m.Method {
	case "initialize":
		s.mu.Lock()
		s.inits++
		if s.inits > 1 {
			s.violate("initialize %d times", s.inits)
		}
		for _, f := range initFolders(m.Params) {
			s.folders[strings.TrimSuffix(f.URI, "/")] = true
		}
		s.mu.Unlock()
		s.reply(m.ID, json.RawMessage(s.caps))
	case "initialized":
		s.mu.Lock()
		s.initialized++
		if s.initialized > 1 {
			s.violate("initialized %d times", s.initialized)
		}
		s.mu.Unlock()
	case "shutdown":
		s.mu.Lock()
		s.shutdowns++
		s.mu.Unlock()
		s.reply(m.ID, nil)
	case "exit":
		s.mu.Lock()
		s.exited = true
		s.mu.Unlock()
		return false
	case "workspace/didChangeWorkspaceFolders":
		var p struct {
			Event struct{ Added, Removed []folder } `json:"event"`
		}
		json.Unmarshal(m.Params, &p)
		s.mu.Lock()
		s.folderEvents = append(s.folderEvents, p.Event)
		// net changes only: never a folder it has added, or one it lacks removed
		for _, f := range p.Event.Removed {
			if !s.folders[strings.TrimSuffix(f.URI, "/")] {
				s.violate("folder %s removed, never added", f.URI)
			}
			delete(s.folders, strings.TrimSuffix(f.URI, "/"))
		}
		for _, f := range p.Event.Added {
			if s.folders[strings.TrimSuffix(f.URI, "/")] {
				s.violate("folder %s added twice", f.URI)
			}
			s.folders[strings.TrimSuffix(f.URI, "/")] = true
		}
		s.mu.Unlock()
	case "textDocument/didOpen":
		var p didOpenParams
		json.Unmarshal(m.Params, &p)
		td := p.TextDocument
		s.mu.Lock()
		if s.open[td.URI] != nil {
			s.violate("didOpen of open %s", td.URI)
		}
		s.checkVersion(td.URI, td.Version)
		s.open[td.URI] = &fdoc{td.Version, td.Text}
		s.opens[td.URI]++
		s.mu.Unlock()
		s.diagnose(td.URI, td.Version, td.Text)
	case "textDocument/didChange":
		var p didChangeParams
		json.Unmarshal(m.Params, &p)
		s.mu.Lock()
		d := s.open[p.TextDocument.URI]
		if d == nil {
			s.violate("didChange of closed %s", p.TextDocument.URI)
			s.mu.Unlock()
			break
		}
		s.checkVersion(p.TextDocument.URI, p.TextDocument.Version)
		d.version = p.TextDocument.Version
		d.text = applyChanges(d.text, p.ContentChanges, encUTF16)
		text := d.text
		s.mu.Unlock()
		s.diagnose(p.TextDocument.URI, p.TextDocument.Version, text)
	case "textDocument/didClose":
		var p struct {
			TextDocument struct{ URI string } `json:"textDocument"`
		}
		json.Unmarshal(m.Params, &p)
		s.mu.Lock()
		if s.open[p.TextDocument.URI] == nil {
			s.violate("didClose of closed %s", p.TextDocument.URI)
		}
		delete(s.open, p.TextDocument.URI)
		s.closes[p.TextDocument.URI]++
		s.mu.Unlock()
	case "textDocument/hover":
		var p struct {
			TextDocument struct{ URI string } `json:"textDocument"`
		}
		json.Unmarshal(m.Params, &p)
		s.mu.Lock()
		d := s.open[p.TextDocument.URI]
		var res any
		if d != nil {
			res = map[string]any{"contents": fmt.Sprintf("v%d:%s", d.version, d.text)}
		}
		s.mu.Unlock()
		s.reply(m.ID, res)
	case "test/echo":
		s.sendRaw(msgResult(m.ID, m.Params))
	case "test/hold": // answered when the test releases it (or cancelled)
		var key string
		json.Unmarshal(m.Params, &key)
		ch := make(chan struct{})
		s.mu.Lock()
		s.held[key] = ch
		s.mu.Unlock()
		go func() {
			select {
			case <-ch:
				s.reply(m.ID, "released "+key)
			case <-s.done:
			}
		}()
	case "test/ask": // asks the client params.method and answers with what it said
		var p struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		json.Unmarshal(m.Params, &p)
		ch := s.request(p.Method, p.Params)
		go func() {
			select {
			case res := <-ch:
				s.reply(m.ID, res)
			case <-s.done:
			}
		}()
	case "test/progress": // reports progress on the request's workDoneToken
		var p struct {
			Token json.RawMessage `json:"workDoneToken"`
		}
		json.Unmarshal(m.Params, &p)
		s.notify("$/progress", map[string]any{"token": p.Token, "value": map[string]any{"kind": "begin", "title": "t"}})
		s.reply(m.ID, string(p.Token))
	case "$/cancelRequest":
		var p struct{ ID json.RawMessage }
		json.Unmarshal(m.Params, &p)
		s.mu.Lock()
		s.cancelled[string(p.ID)] = true
		if !s.ids[string(p.ID)] {
			s.violate("cancel of unknown id %s", p.ID)
		}
		s.mu.Unlock()
	default:
		if m.ID != nil {
			s.reply(m.ID, nil)
		}
	}
	return true
}

func (s *fakeServer) checkVersion(uri string, v int64) {
	if v <= s.lastVer[uri] {
		s.violate("version of %s went from %d to %d", uri, s.lastVer[uri], v)
	}
	s.lastVer[uri] = v
}

func (s *fakeServer) diagnose(uri string, version int64, text string) {
	s.notify("textDocument/publishDiagnostics", map[string]any{
		"uri": uri, "version": version,
		"diagnostics": []map[string]any{{"range": map[string]any{"start": map[string]int{"line": 0, "character": 0}, "end": map[string]int{"line": 0, "character": 1}}, "message": "len " + fmt.Sprint(len(text))}},
	})
}

func (s *fakeServer) release(key string) bool {
	s.mu.Lock()
	ch := s.held[key]
	delete(s.held, key)
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
	return ch != nil
}

func (s *fakeServer) holding(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[key] != nil
}

func (s *fakeServer) snapshot() (open map[string]fdoc, violations []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	open = map[string]fdoc{}
	for k, v := range s.open {
		open[k] = *v
	}
	return open, append([]string(nil), s.violations...)
}

// checkAnswered reports server requests never answered.
func (s *fakeServer) unanswered() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for id := range s.srvPending {
		out = append(out, id)
	}
	return out
}
