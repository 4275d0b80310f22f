package mcp

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/procref/procref/internal/mux"
)

// The MCP policy:
//
//   - initialize (legacy era; the 2026-07-28 era is in modern.go): the
//     first legacy session's initialize goes to the server, its
//     capabilities completed with sampling, elicitation and roots (the one
//     initialize stands for every session that may answer such requests);
//     the mux then sends notifications/initialized itself; every legacy
//     session gets the cached result with its own id; sessions'
//     notifications/initialized are swallowed. Both eras share the server:
//     the protocol version is not in the share key. If the server refuses
//     that initialize after modern sessions have used it (the Go SDK's
//     server keeps one session state per connection), legacy sessions get
//     an initialize result built from its cached server/discover answer.
//     ping is answered by the mux.
//   - notifications/cancelled is mapped to the host id; progress tokens are
//     rewritten to host tokens and notifications/progress goes to the owner.
//   - notifications/message goes to every session whose logging/setLevel
//     lets it through; the server gets the most verbose level asked for.
//     Other notifications (list_changed) go to every session.
//   - resources/subscribe and unsubscribe are counted per URI (the server
//     sees the first subscribe and the last unsubscribe);
//     notifications/resources/updated goes only to the URI's subscribers.
//   - server requests: ping is answered by the mux; roots/list with the
//     union of the roots of every session that declared roots; others go to
//     the session that could have caused them (see pickClient: the one
//     capable session with a request in flight; several: the most recently
//     active, logged as ambiguous); with no capable session, the server
//     gets a JSON-RPC error answer.
//   - after a crash: initialize, initialized, subscriptions and the log
//     level are replayed, and sessions get a notifications/message.

// logLevels in increasing severity (RFC 5424 names, as MCP uses them).
var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

func levelOf(s string) int {
	for i, l := range logLevels {
		if l == s {
			return i
		}
	}
	return -1
}

// mcpState is the mux's MCP state, guarded by Mux.mu.
type mcpState struct {
	initParams  json.RawMessage // the first session's, replayed after a crash
	initResult  json.RawMessage // cached for every session
	initErr     json.RawMessage // the server's error answer to initialize
	initStarted bool
	initFor     *mux.Instance // the server the initialize was sent to
	initDone    chan struct{} // closed when initResult or initErr is known
	subs        map[string]map[*client]bool
	srvLevel    int // the level the server was set to; -1 none
	// discover caches server/discover results per protocol version asked;
	// states maps input_required requestStates to the server generation
	// that made them (stateOrder: oldest first, bounded by maxStates).
	discover   map[string]json.RawMessage
	states     map[string]int
	stateOrder []string
}

func newMCPState() mcpState {
	return mcpState{initDone: make(chan struct{}), subs: map[string]map[*client]bool{}, srvLevel: -1,
		discover: map[string]json.RawMessage{}, states: map[string]int{}}
}

// mcpClient is a session's MCP state, guarded by Mux.mu.
type mcpClient struct {
	caps   map[string]bool // client capabilities declared in initialize or _meta
	level  int             // its logging/setLevel; -1 none (gets every message)
	subs   map[string]bool
	modern bool            // it sent a request with _meta protocolVersion (2026-07-28)
	initID json.RawMessage // its initialize waiting for the server's answer, else nil
}

func newMCPClient() mcpClient {
	return mcpClient{caps: map[string]bool{}, level: -1, subs: map[string]bool{}}
}

// capabilityFor is the client capability a server request needs.
func capabilityFor(method string) string {
	switch method {
	case "sampling/createMessage":
		return "sampling"
	case "elicitation/create":
		return "elicitation"
	case "roots/list":
		return "roots"
	}
	return ""
}

func (m *Mux) mcpFromClient(c *client, in *msg) error {
	switch in.Method {
	case "initialize":
		m.mcpInitialize(c, in)
		return nil
	case "notifications/initialized":
		return nil
	case "ping":
		if in.isRequest() {
			c.send(result(in.ID, nil))
		}
		return nil
	}
	version := ""
	if in.isRequest() {
		version = metaVersion(in.Params)
	}
	if version != "" {
		m.ensureServer() // a modern session sends no initialize
	}
	if !c.WaitRunning(m.core) {
		return nil
	}
	if version != "" {
		m.mcpModern(c, in, version)
		return nil
	}
	switch in.Method {
	case "logging/setLevel":
		m.setLevel(c, in)
	case "resources/subscribe", "resources/unsubscribe":
		m.subscribe(c, in)
	case "notifications/cancelled":
		m.mu.Lock()
		hid, ok := m.calls.HostID(c, getParam(in.Params, "requestId"))
		if ok && m.cancelListen(c, hid) {
			ok = false
		}
		m.mu.Unlock()
		if ok {
			in.Params, _ = setParam(in.Params, hostID(hid), "requestId")
			m.toServer(in.encode())
		}
	default:
		if in.isRequest() {
			m.forward(c, in)
		} else {
			m.toServer(in.encode())
		}
	}
	return nil
}

// mcpInitialize answers a session's initialize from the cache, starting
// the server and initializing it for the first session.
func (m *Mux) mcpInitialize(c *client, in *msg) {
	var caps map[string]json.RawMessage
	json.Unmarshal(getParam(in.Params, "capabilities"), &caps)
	m.mu.Lock()
	for k := range caps {
		c.caps[k] = true
	}
	first := !m.policy.initStarted
	if first {
		m.policy.initStarted = true
		m.policy.initParams = allCapabilities(in.Params)
		m.policy.initErr = nil
	}
	s, done := m.core.Current(), m.policy.initDone
	c.initID = in.ID // a stop answers it (stop)
	m.mu.Unlock()
	if first && s != nil {
		m.mcpStarted(s) // a retry after an error answer
	} else if first {
		m.ensureServer()
	}
	select {
	case <-done:
	case <-c.Ending():
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c.initID = nil
	if m.policy.initResult == nil {
		c.send((&msg{ID: in.ID, Error: m.policy.initErr}).encode())
		return
	}
	c.send(result(in.ID, m.policy.initResult))
	if c.caps["roots"] && !first {
		m.sendServerLocked(notification("notifications/roots/list_changed", nil))
	}
}

// mcpStarted initializes a freshly started server s with the first
// session's parameters; after a restart it also replays subscriptions and
// the log level and tells the sessions.
func (m *Mux) mcpStarted(s *mux.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s != m.core.Current() || !m.policy.initStarted {
		return // no session has asked yet; the first initialize comes here
	}
	// Known race, answered here: a server started for a 2026-07-28 session
	// is current before the core calls Started (us), so a legacy session's
	// first initialize can call us too; each server gets one initialize.
	if m.policy.initFor == s {
		return
	}
	m.policy.initFor = s
	restart := m.policy.initResult != nil
	m.hostRequest("initialize", m.policy.initParams, func(res *msg) {
		if res.Error != nil && !restart {
			if r := m.legacyFromDiscover(getString(m.policy.initParams, "protocolVersion")); r != nil {
				m.log.Info("the server refused initialize after serving 2026-07-28 sessions; legacy sessions get its server/discover answer", "error", string(res.Error))
				res = &msg{Result: r}
			}
		}
		if res.Error != nil {
			m.log.Warn("the server refused initialize", "error", string(res.Error))
			if !restart {
				m.policy.initErr = res.Error
				m.policy.initStarted = false
				m.policy.initFor = nil // the next session's initialize tries again
				close(m.policy.initDone)
				m.policy.initDone = make(chan struct{})
			}
			return
		}
		m.sendServerLocked(notification("notifications/initialized", nil))
		if !restart {
			m.policy.initResult = res.Result
			close(m.policy.initDone)
			return
		}
		for uri := range m.policy.subs {
			m.hostRequest("resources/subscribe", mustJSON(map[string]string{"uri": uri}), func(*msg) {})
		}
		if m.policy.srvLevel >= 0 {
			m.hostRequest("logging/setLevel", mustJSON(map[string]string{"level": logLevels[m.policy.srvLevel]}), func(*msg) {})
		}
		note := notification("notifications/message", map[string]any{
			"level": "warning", "logger": "procref",
			"data": fmt.Sprintf("procref: the shared MCP server exited and was restarted (start %d); requests in flight failed", s.N()),
		})
		for c := range m.clients {
			c.send(note)
		}
	})
}

// setLevel records c's level; the server is asked for the most verbose
// level any session wants, and c is answered directly if that is unchanged.
func (m *Mux) setLevel(c *client, in *msg) {
	lv := levelOf(getString(in.Params, "level"))
	if lv < 0 {
		m.forward(c, in) // the server answers the bad level
		return
	}
	m.mu.Lock()
	c.level = lv
	min, changed := m.minLevelLocked()
	m.mu.Unlock()
	if !changed {
		c.send(result(in.ID, nil))
		return
	}
	in.Params, _ = setParam(in.Params, mustJSON(logLevels[min]), "level")
	m.forward(c, in)
}

// minLevelLocked returns the most verbose level a session asked for and
// whether the server must be told (it updates srvLevel).
func (m *Mux) minLevelLocked() (int, bool) {
	min := -1
	for c := range m.clients {
		if c.level >= 0 && (min < 0 || c.level < min) {
			min = c.level
		}
	}
	if min < 0 || min == m.policy.srvLevel {
		return min, false
	}
	m.policy.srvLevel = min
	return min, true
}

// subscribe counts resources/subscribe and unsubscribe per URI: the server
// sees only the first subscribe and the last unsubscribe.
func (m *Mux) subscribe(c *client, in *msg) {
	uri := getString(in.Params, "uri")
	m.mu.Lock()
	set := m.policy.subs[uri]
	pass := false
	if in.Method == "resources/subscribe" {
		if set == nil {
			set = map[*client]bool{}
			m.policy.subs[uri] = set
			pass = true
		}
		set[c], c.subs[uri] = true, true
	} else if set[c] {
		delete(set, c)
		delete(c.subs, uri)
		if len(set) == 0 {
			delete(m.policy.subs, uri)
			pass = true
		}
	}
	m.mu.Unlock()
	if pass {
		m.forward(c, in)
	} else if in.isRequest() {
		c.send(result(in.ID, nil))
	}
}

// mcpRemove drops a leaving session's subscriptions and log level.
// Callers hold m.mu.
func (m *Mux) mcpRemove(c *client) {
	for uri := range c.subs {
		set := m.policy.subs[uri]
		delete(set, c)
		if len(set) == 0 {
			delete(m.policy.subs, uri)
			m.hostRequest("resources/unsubscribe", mustJSON(map[string]string{"uri": uri}), func(*msg) {})
		}
	}
	if min, changed := m.minLevelLocked(); changed {
		m.hostRequest("logging/setLevel", mustJSON(map[string]string{"level": logLevels[min]}), func(*msg) {})
	}
	if c.caps["roots"] && m.policy.initResult != nil {
		m.sendServerLocked(notification("notifications/roots/list_changed", nil))
	}
}

// mcpNotification routes a server notification. Callers hold m.mu.
func (m *Mux) mcpNotification(in *msg) {
	switch in.Method {
	case "notifications/progress":
		var tok string
		json.Unmarshal(getParam(in.Params, "progressToken"), &tok)
		if c, own, ok := m.calls.Token(string(mustJSON(tok))); ok {
			in.Params, _ = setParam(in.Params, own, "progressToken")
			c.send(in.encode())
		}
	case "notifications/resources/updated":
		b := in.encode()
		for c := range m.policy.subs[getString(in.Params, "uri")] {
			c.send(b)
		}
	case "notifications/message":
		lv := levelOf(getString(in.Params, "level"))
		b := in.encode()
		for c := range m.clients {
			level := c.level
			if c.modern {
				if level = m.modernLogLevel(c); level < 0 {
					continue // no request of its own asked for messages
				}
			}
			if level < 0 || lv < 0 || lv >= level {
				c.send(b)
			}
		}
	case "notifications/cancelled":
		if c, hid, ok := m.asks.ByServerID(getParam(in.Params, "requestId")); ok {
			m.asks.Take(c, hid)
			in.Params, _ = setParam(in.Params, hostID(hid), "requestId")
			c.send(in.encode())
		}
	default:
		b := in.encode()
		for c := range m.clients {
			c.send(b)
		}
	}
}

// mcpServerRequest answers the server requests the mux handles itself;
// it reports whether it did. Callers hold m.mu.
func (m *Mux) mcpServerRequest(s *mux.Instance, in *msg) bool {
	switch in.Method {
	case "ping":
		m.sendServerLocked(result(in.ID, nil))
		return true
	case "roots/list":
		g := &rootsGather{srv: s, id: in.ID, seen: map[string]bool{}, roots: []json.RawMessage{}}
		for c := range m.clients {
			if c.caps["roots"] {
				g.left++
				m.sendToClient(c, s, in, g)
			}
		}
		if g.left == 0 {
			g.finish(m)
			return true
		}
		g.timer = time.AfterFunc(5*time.Second, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			g.finish(m)
		})
		return true
	}
	return false
}

// rootsGather collects the sessions' answers to one roots/list.
type rootsGather struct {
	srv   *mux.Instance
	id    json.RawMessage
	left  int
	roots []json.RawMessage
	seen  map[string]bool
	done  bool
	timer *time.Timer
}

// add takes one session's answer (nil: the session left). Callers hold
// m.mu.
func (g *rootsGather) add(m *Mux, res *msg) {
	if g.done {
		return
	}
	if res != nil && res.Result != nil {
		var r struct {
			Roots []json.RawMessage `json:"roots"`
		}
		json.Unmarshal(res.Result, &r)
		for _, root := range r.Roots {
			if uri := getString(root, "uri"); !g.seen[uri] {
				g.seen[uri] = true
				g.roots = append(g.roots, root)
			}
		}
	}
	if g.left--; g.left <= 0 {
		g.finish(m)
	}
}

// finish answers the server once. Callers hold m.mu.
func (g *rootsGather) finish(m *Mux) {
	if g.done {
		return
	}
	g.done = true
	if g.timer != nil {
		g.timer.Stop()
	}
	if g.srv == m.core.Current() {
		m.sendServerLocked(result(g.id, mustJSON(map[string]any{"roots": g.roots})))
	}
}
