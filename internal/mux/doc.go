// Package mux is the multiplexer core every protocol shares: one server
// process, many clients. The protocol rules (LSP in lspmux, MCP and plain
// JSON-RPC in mcp) are policies on top of it (Policy).
//
// Words: a *client* is one editor window or agent session connected to
// the host; the *server* is the one shared server process, and an
// *instance* one run of it (a restart is a new instance). Nothing here is
// called a session.
//
// The parts, a file each: core.go (Core runs the server for a Policy:
// start on demand, supervision, bounded restart with backoff, stop; the
// Policy interface: Started, FromServer, Crashed, NeverUp, GaveUp),
// client.go (Client is one client: its queue with the writer goroutine,
// its reader handing messages to the policy's ClientPolicy (FromClient,
// ReadFailed, Left), and its one way to end: the end notice last, what
// is queued written within a second, then the connection closed),
// instance.go (one run: its queue, writer, reader and reaper; Claim, a
// client reader writing to the server itself), phase.go (the server's
// lifecycle: idle, starting, running, restarting, stopped, changed only
// by the Core), server.go (the server process: start, stop, kill of its
// whole process group), queue.go (a queue toward one destination,
// written by its writer goroutine or directly by a producer that finds it
// empty), turns.go (the order a queue's items leave it: the clients'
// requests round-robin, everything else in arrival order), direct.go
// (direct writes to a client's connection, bounded),
// quota.go (a client's bytes toward the server), bound.go (a client's
// requests in flight at the server, bounded, and the clients served in
// turn). Framing is the policy's (Config.Framing, Config.NewReader): the
// core never looks inside a message.
//
// A protocol is then two small policies: Policy for the server's side,
// ClientPolicy for a client's, with its routing tables (internal/idroute)
// under its one lock.
package mux
