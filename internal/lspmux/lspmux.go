// Package lspmux shares one stdio language server (the backend) among many
// LSP clients (editor windows): the host side of procref's mux mode.
//
// Each client talks to the [Mux] as if it had the server to itself. The mux
// keeps one LSP conversation with the backend (one mux.Instance of the
// core at a time) and routes between them:
//
//   - initialize: the first client's initialize parameters start the
//     backend (the mux sends initialize and then initialized itself); every
//     client, the first included, gets the cached result with its own id.
//     An initialize arriving while the first is in flight waits for it.
//     Clients' initialized notifications are swallowed.
//   - ids: client request ids become host-unique numbers on the way to the
//     backend and are mapped back on the way out ($/cancelRequest included);
//     a response for a client that has gone is dropped. Work-done and
//     partial-result tokens are rewritten the same way, so $/progress
//     reaches only the token's owner.
//   - documents: open counts per URI; the first didOpen and the last
//     didClose reach the backend; versions the backend sees form one
//     increasing sequence per URI; the mux keeps every client's text of its
//     open documents, and when a different client starts changing a URI the
//     backend first gets that client's full text (so the backend's text is
//     always the last editing client's). A leaving client's documents are
//     closed for it.
//   - server→client: URI-scoped notifications (publishDiagnostics and any
//     notification whose params carry uri or textDocument.uri) go to the
//     clients that have the URI open, else to the clients whose workspace
//     folders contain it; diagnostics versions are mapped to each client's
//     own version or dropped; other notifications go to all. progress
//     creation, (un)registerCapability and */refresh are answered by the
//     mux and passed on (their answers dropped) only to clients whose
//     initialize declared the capability (window.workDoneProgress, the
//     feature's dynamicRegistration, refreshSupport: capabilities.go);
//     registrations are replayed to late joiners the same way.
//     workspace/configuration, applyEdit, showMessageRequest, showDocument
//     and unknown server requests go to one client that declared what they
//     need (the one with a pending workspace/executeCommand, else the most
//     recently active) and its answer is mapped back, or the backend gets an
//     error answer if that client leaves first; if no client declared it,
//     the mux answers as such a client would. workspace/workspaceFolders is
//     answered from the union of the clients' folders. Every server request
//     gets exactly one answer.
//   - positions: the backend is offered only UTF-16 (encoding.go), so every
//     client is told "utf-16", which all clients support.
//   - a client's shutdown is answered by the mux; its exit ends only that
//     session.
//   - crash: pending requests get an error answer at once, the backend is
//     restarted (bounded), initialize, initialized, workspace folders and
//     every open document are replayed, and clients get window/showMessage.
//   - failures: a backend that cannot start, dies before answering the
//     first initialize or refuses it fails every waiting initialize with
//     the reason (its last stderr lines, Config.FailureHint) and ends those
//     sessions (ErrInitFailed); a client the mux ends for a reason (stop,
//     crash loop, bad input) gets hostproto.EndMethod with mux.EndReason as its last
//     message, so a relaying proxy can say why.
//   - containment: per-client bounds on the bytes queued toward the backend
//     (a flooding client waits, others pass) and toward the client (a client
//     that stops reading is disconnected); a malformed frame disconnects
//     only that client; invalid JSON gets a parse error answer.
//
// The parts, a file each: clients.go (a client: the core's mux.Client
// with the LSP state; its ClientPolicy hooks route what it sends and
// forget it when it leaves), ids.go (the routing tables of request ids and
// progress tokens, changed only through methods that check them),
// initialize.go (the one backend initialize and its cached result),
// documents.go and text.go (open counts, versions, each client's text),
// folders.go (the union of workspace folders), requests.go and
// capabilities.go (backend requests to clients, gated by what each
// declared), notifications.go, encoding.go (UTF-16 for everyone),
// backend.go (the LSP policy's hooks on the core, mux.Core: initialize at
// start, routing the backend's messages, what a crash, a failed start and
// a spent restart budget tell the clients, and the shutdown/exit
// goodbye), queue.go (LSP framing for the core's queues, what a client
// and the backend are sent), fair.go (the core's in-flight bound) and
// failure.go (what a client is told when the backend is unavailable).
//
// Messages are never fully decoded to route them: ids and the few params
// the mux needs are found with [wire.Scan] and spliced into the original
// bytes. Only didOpen/didChange/didClose and small control messages are
// decoded.
//
// After a crash the dead backend's registrations are withdrawn from the
// clients (client/unregisterCapability) and the new backend registers
// afresh, so clients never hold registrations no backend knows.
//
// Known limits: the first client's initialize parameters (capabilities
// beyond those gated per client, e.g. snippet support and markup kinds;
// initializationOptions) decide what the backend does for every client;
// workspace/didChangeConfiguration is passed through, so the last client to
// send one wins; a server request that cannot be attributed goes to the
// most recently active client; notebook documents are passed through
// without open counting.
package lspmux

import (
	"context"
	"log/slog"
	"time"

	"github.com/procref/procref/internal/mux"
)

// Backend is the running language server: the core's server process
// ([mux.Server], started with [mux.Exec] or any other implementation).
type Backend = mux.Server

// Config configures a Mux. Only Start is required.
type Config struct {
	// Start starts a backend. It is called when the first client sends
	// initialize, and again to restart the backend after a crash. ctx ends
	// when the Mux closes.
	Start func(ctx context.Context) (Backend, error)
	// MaxMessage bounds one message in either direction (default
	// wire.DefaultMaxMessage). A client that sends a larger one gets an
	// error answer and its session ends.
	MaxMessage int64
	// Logger receives the mux's log (default slog.Default()).
	Logger *slog.Logger
	// ShutdownTimeout bounds each step of stopping the backend in Close:
	// waiting for the shutdown answer, then for the process to exit after
	// exit, before Kill (default 5s).
	ShutdownTimeout time.Duration
	// ShareGlobal makes the mux add each client's workspace folders to the
	// backend with workspace/didChangeWorkspaceFolders (and remove
	// them when no client has them any more), when the backend advertises
	// workspace.workspaceFolders supported and changeNotifications. If it
	// does not, the mux logs it: the caller should share per root instead.
	ShareGlobal bool
	// ClientQueue bounds the bytes queued toward one client; a client that
	// falls further behind is disconnected (a single message larger than
	// the bound is still accepted into an empty queue). Before that, while
	// its queue and the size of its unanswered requests exceed half the
	// bound, the mux stops reading the client's requests (a client that
	// pipelines large requests and reads slowly is slowed down, not cut
	// off); if it then takes nothing from a queue over a quarter of the
	// bound for 2s, it is disconnected as not reading. Default 32 MiB.
	ClientQueue int64
	// ClientFrozen is how long a client may read nothing while messages
	// for it are queued before it is disconnected as frozen (a stopped
	// editor, a suspended process), however little is queued: its queue
	// would otherwise grow until ClientQueue. Checked when something more
	// is queued for it. Default 30s; negative disables it.
	ClientFrozen time.Duration
	// MaxRequests bounds one client's requests in flight at the backend:
	// while it has that many unanswered, the mux stops reading its input,
	// so a flooding client cannot starve the others (fair.go). Default 32.
	MaxRequests int
	// ClientInflight bounds the bytes one client may have queued toward the
	// backend; past it the mux stops reading that client until the backend
	// has taken them, so a flooding client cannot starve others. Default
	// 4 MiB.
	ClientInflight int64
	// MaxRestarts is how many times the backend may be restarted after a
	// crash within RestartWindow (defaults 3 and one minute); one more crash
	// stops the mux for good. A negative MaxRestarts disables restarts.
	MaxRestarts   int
	RestartWindow time.Duration
	// StderrTail, if set, returns the last lines the backend wrote to
	// stderr; they are added to the errors that report its failure.
	StderrTail func() string
	// FailureHint is added to every error a client is told about the
	// backend's failure (e.g. where its log is).
	FailureHint string
}

// ErrClosed is returned by ServeClient when the Mux has stopped.
var ErrClosed = mux.NewError("lsp multiplexer closed", mux.ErrClosed)

// ErrBackendFailed is the cause returned by ServeClient (wrapped) and
// recorded by Err when the backend failed more often than the restart
// limit allows.
var ErrBackendFailed = mux.NewError("language server keeps failing", mux.ErrServerFailing)
