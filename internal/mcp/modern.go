package mcp

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/procref/procref/internal/idroute"
	"github.com/procref/procref/internal/mux"
)

// The 2026-07-28 era ("modern"), next to the legacy one on the same
// server:
//
//   - A session is modern from its first request carrying
//     _meta[io.modelcontextprotocol/protocolVersion] (server/discover
//     included); it sends no initialize and its requests reach the server
//     with their own _meta (capabilities, client info, log level), under
//     host ids like every request. server/discover is cached per protocol
//     version asked (the first successful answer per version).
//   - subscriptions/listen is a request in flight; the server tags each
//     notification of that stream with _meta[io.modelcontextprotocol/
//     subscriptionId], the listen's (host) id. Such a notification goes only
//     to the session whose listen it is, with the session's own id in the
//     tag. An untagged notification goes as in the legacy era.
//   - notifications/message without a subscription tag: legacy sessions
//     get it by their logging/setLevel; a modern session gets it while it
//     has a request in flight whose _meta logLevel lets it through (stdio
//     carries no request tag, so with several such sessions each gets it).
//   - results pass unchanged (resultType included). An input_required
//     result goes to the requester as any answer does; its requestState is
//     remembered with the server process that made it, and a retry that
//     carries a requestState of a server process that has since exited is
//     answered by the mux with an error saying to issue the request again
//     (the restarted server could not verify it).

// Keys in _meta of the 2026-07-28 protocol.
const (
	MetaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	MetaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	MetaLogLevel           = "io.modelcontextprotocol/logLevel"
	MetaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
	MetaServerInfo         = "io.modelcontextprotocol/serverInfo"
)

// maxStates bounds the requestStates remembered for the restart check;
// the oldest is forgotten first (a forgotten one is passed on unchecked).
const maxStates = 4096

// CodeRetryAfterRestart is the error code of a retry refused because its
// requestState came from a server process that has exited.
const CodeRetryAfterRestart = -32002

// metaVersion returns the request's _meta protocolVersion ("" if none).
func metaVersion(params json.RawMessage) string {
	return getString(params, "_meta", MetaProtocolVersion)
}

// mcpModern handles one request of a modern session. It reports whether
// the request was answered or forwarded (false: route it as any request).
func (m *Mux) mcpModern(c *client, in *msg, version string) bool {
	var caps map[string]json.RawMessage
	json.Unmarshal(getParam(in.Params, "_meta", MetaClientCapabilities), &caps)
	m.mu.Lock()
	c.modern = true
	for k := range caps {
		c.caps[k] = true
	}
	cached, hasCached := m.policy.discover[version]
	var stale bool
	if st := getString(in.Params, "requestState"); st != "" {
		if gen, ok := m.policy.states[st]; ok && (m.core.Current() == nil || gen != m.core.Current().N()) {
			stale = true
		}
	}
	m.mu.Unlock()
	switch {
	case stale:
		c.send(errorMsg(in.ID, CodeRetryAfterRestart, fmt.Sprintf(
			"procref: the MCP server that asked for this input exited and was restarted; issue the %s request again (without requestState)", in.Method)))
		return true
	case in.Method == "server/discover" && hasCached:
		c.send(result(in.ID, cached))
		return true
	}
	m.forward(c, in)
	return true
}

// noteResult records what the mux keeps of a result for c's call: a
// server/discover answer, an input_required requestState. Callers hold
// m.mu.
func (m *Mux) noteResult(s *mux.Instance, cl call, res json.RawMessage) {
	if res == nil {
		return
	}
	if cl.discover != "" {
		if _, ok := m.policy.discover[cl.discover]; !ok {
			m.policy.discover[cl.discover] = res
		}
	}
	if getString(res, "resultType") != "input_required" {
		return
	}
	st := getString(res, "requestState")
	if st == "" || s == nil {
		return
	}
	if _, ok := m.policy.states[st]; !ok {
		m.policy.stateOrder = append(m.policy.stateOrder, st)
		if len(m.policy.stateOrder) > maxStates {
			delete(m.policy.states, m.policy.stateOrder[0])
			m.policy.stateOrder = m.policy.stateOrder[1:]
		}
	}
	m.policy.states[st] = s.N()
}

// taggedNotification routes a notification tagged with a subscriptionId to
// the session whose subscriptions/listen it belongs to, with the session's
// own id; it reports whether in was tagged. Callers hold m.mu.
func (m *Mux) taggedNotification(in *msg) bool {
	tag := getParam(in.Params, "_meta", MetaSubscriptionID)
	if tag == nil {
		return false
	}
	var hid int64
	if json.Unmarshal(tag, &hid) != nil {
		return true // not one of ours: no session's listen
	}
	if m.fanOutListened(in) {
		return true
	}
	cl, ok := m.calls.Get(hid)
	if !ok || cl.Client == nil {
		return true
	}
	in.Params, _ = setParam(in.Params, cl.ID, "_meta", MetaSubscriptionID)
	cl.Client.send(in.encode())
	return true
}

// Listens of many sessions on one server connection. A server keeps its
// listen registrations per connection, and the Go SDK's keeps one listen
// per kind: each session's subscriptions/listen replaces the previous
// one's, and the end of any of them deletes the registration. So:
//   - a tagged list_changed or resources/updated notification goes to every
//     session with an open listen that asked for it, each under its own
//     listen's id, whichever listen the server tagged;
//   - a listen a session ends (cancel, or leaving) is not ended at the
//     server while another session's open listen shares any of its
//     notifications: it stays open as the host's own, and the host ends it
//     when no session's open listen shares them any more.
//
// Known race, accepted: a session's new listen and the end of a kept one
// cross at a Go SDK server, which may then drop the new registration; the
// host ends a kept listen only when no session listens for its kinds, so
// this needs a session to listen anew just as the last one stops.

// listenInterest lists what a subscriptions/listen asks for: "tools",
// "prompts", "resources" (their list_changed) and "uri:URI" per resource.
func listenInterest(params json.RawMessage) []string {
	var p struct {
		Notifications struct {
			Tools     bool     `json:"toolsListChanged"`
			Prompts   bool     `json:"promptsListChanged"`
			Resources bool     `json:"resourcesListChanged"`
			URIs      []string `json:"resourceSubscriptions"`
		} `json:"notifications"`
	}
	json.Unmarshal(params, &p)
	var out []string
	for k, on := range map[string]bool{"tools": p.Notifications.Tools, "prompts": p.Notifications.Prompts, "resources": p.Notifications.Resources} {
		if on {
			out = append(out, k)
		}
	}
	for _, u := range p.Notifications.URIs {
		out = append(out, "uri:"+u)
	}
	return out
}

// notificationInterest is the listenInterest entry a notification answers
// ("" for one that belongs to one listen alone, as acknowledged does).
func notificationInterest(in *msg) string {
	switch in.Method {
	case "notifications/tools/list_changed":
		return "tools"
	case "notifications/prompts/list_changed":
		return "prompts"
	case "notifications/resources/list_changed":
		return "resources"
	case "notifications/resources/updated":
		return "uri:" + getString(in.Params, "uri")
	}
	return ""
}

// fanOutListened sends in to each session with an open listen asking for
// it, tagged with that listen's id; it reports whether any got it.
// Callers hold m.mu.
func (m *Mux) fanOutListened(in *msg) bool {
	key := notificationInterest(in)
	if key == "" {
		return false
	}
	sent := map[*client]bool{}
	m.calls.Each(func(_ int64, cl idroute.Call[*client, call]) {
		if cl.Client == nil || !cl.Data.listen || sent[cl.Client] || !slices.Contains(cl.Data.interest, key) {
			return
		}
		sent[cl.Client] = true
		out := *in
		out.Params, _ = setParam(in.Params, cl.ID, "_meta", MetaSubscriptionID)
		cl.Client.send(out.encode())
	})
	return len(sent) > 0
}

// listenShared reports whether a session other than except has an open
// listen sharing any of interest. Callers hold m.mu.
func (m *Mux) listenShared(except *client, interest []string) bool {
	shared := false
	m.calls.Each(func(_ int64, cl idroute.Call[*client, call]) {
		if cl.Client != nil && cl.Client != except && cl.Data.listen && cl.Data.srv == m.core.Current() {
			for _, k := range interest {
				shared = shared || slices.Contains(cl.Data.interest, k)
			}
		}
	})
	return shared
}

// keepListen keeps cl, a listen just taken from its leaving or cancelling
// session, open at the server as the host's own when another session's
// listen shares its notifications; it reports whether it did. Callers
// hold m.mu.
func (m *Mux) keepListen(hid int64, cl idroute.Call[*client, call]) bool {
	if !cl.Data.listen || cl.Data.srv != m.core.Current() || !m.listenShared(cl.Client, cl.Data.interest) {
		return false
	}
	m.addCall(hid, idroute.Call[*client, call]{Data: call{srv: cl.Data.srv, listen: true, interest: cl.Data.interest, onDone: func(*msg) {}}})
	return true
}

// cancelListen handles c cancelling its request hid when that is a
// listen: kept as the host's (true, the cancel goes no further), or ended
// (false: the caller forwards the cancel); either way the host's kept
// listens no session shares any more are ended. Callers hold m.mu.
func (m *Mux) cancelListen(c *client, hid int64) bool {
	cl, ok := m.calls.Get(hid)
	if !ok || !cl.Data.listen {
		return false
	}
	m.takeCall(hid)
	kept := m.keepListen(hid, cl)
	m.endKeptListens()
	return kept
}

// endKeptListens ends the host's kept listens that no session's open
// listen shares. Callers hold m.mu.
func (m *Mux) endKeptListens() {
	var end []int64
	m.calls.Each(func(hid int64, cl idroute.Call[*client, call]) {
		if cl.Client == nil && cl.Data.listen && !m.listenShared(nil, cl.Data.interest) {
			end = append(end, hid)
		}
	})
	for _, hid := range end {
		if cl, _ := m.takeCall(hid); cl.Data.srv == m.core.Current() {
			m.sendServerLocked(notification("notifications/cancelled", map[string]any{
				"requestId": hid, "reason": "procref: no session listens any more"}))
		}
	}
}

// modernLogLevel is the most verbose _meta logLevel among c's requests in
// flight (-1 none). Callers hold m.mu.
func (m *Mux) modernLogLevel(c *client) int {
	min := -1
	for _, hid := range m.calls.OfClient(c) {
		if cl, ok := m.calls.Get(hid); ok && cl.Data.logLevel >= 0 && (min < 0 || cl.Data.logLevel < min) {
			min = cl.Data.logLevel
		}
	}
	return min
}

// legacyFromDiscover builds an initialize result for legacy sessions from a
// cached server/discover answer, for a server that refused the host's
// initialize because modern sessions already use it (the Go SDK's server
// keeps one session state per connection). Callers hold m.mu.
func (m *Mux) legacyFromDiscover(version string) json.RawMessage {
	for _, d := range m.policy.discover {
		var r struct {
			Capabilities json.RawMessage            `json:"capabilities"`
			Instructions string                     `json:"instructions,omitempty"`
			Meta         map[string]json.RawMessage `json:"_meta"`
		}
		if json.Unmarshal(d, &r) != nil {
			continue
		}
		out := map[string]any{"protocolVersion": version, "capabilities": r.Capabilities}
		if r.Instructions != "" {
			out["instructions"] = r.Instructions
		}
		if si := r.Meta[MetaServerInfo]; si != nil {
			out["serverInfo"] = si
		} else {
			out["serverInfo"] = map[string]string{"name": "mcp-server", "version": "unknown"}
		}
		return mustJSON(out)
	}
	return nil
}

// allCapabilities returns initialize params whose capabilities declare
// sampling, elicitation and roots, besides the session's own: the host's
// one initialize stands for every session that may later answer such a
// request (a request no session can answer gets an error answer).
func allCapabilities(params json.RawMessage) json.RawMessage {
	caps := map[string]json.RawMessage{}
	json.Unmarshal(getParam(params, "capabilities"), &caps)
	for k, v := range map[string]string{"sampling": `{}`, "elicitation": `{}`, "roots": `{"listChanged":true}`} {
		if _, ok := caps[k]; !ok {
			caps[k] = json.RawMessage(v)
		}
	}
	out, ok := setParam(params, mustJSON(caps), "capabilities")
	if !ok {
		return params
	}
	return out
}
