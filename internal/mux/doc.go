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
// A policy keeps the client side: reading a client and routing its
// messages (with the core's queues, Bound, Quota and Claim), and its leave.
package mux
