package lspmux

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procref/procref/internal/idroute"
	"github.com/procref/procref/internal/mux"
	"github.com/procref/procref/internal/wire"
)

// Mux multiplexes clients onto one backend. All methods are safe for
// concurrent use.
//
// Lock order: mu, then queue/quota locks. Nothing blocks while holding
// mu: pushes never block (bounds are applied before taking it), and client
// disconnects only close a connection.
type Mux struct {
	cfg Config
	log *slog.Logger

	core *mux.Core // the backend: start, supervision, restart, stop (backend.go is the policy)
	done chan struct{}
	wg   sync.WaitGroup // client goroutines

	nextID     atomic.Int64 // host ids toward the backend and toward clients; host progress tokens
	closeOnce  sync.Once
	closeErr   error
	doneOnce   sync.Once
	nextClient int

	mu          sync.Mutex
	closing     bool // Close was called
	err         error
	initParams  []byte // first client's initialize params (for restarts)
	initResult  []byte // cached initialize result
	initWaiters []initWaiter
	enc         posEncoding
	folderCaps  bool // backend supports workspace folder change notifications
	clients     map[*client]struct{}
	activeSeq   int64
	calls       idroute.Calls[*client, call]    // requests in flight at the backend (ids.go)
	asks        idroute.Asks[*client, struct{}] // backend requests in flight at clients (ids.go)
	docs        map[string]*doc
	verSeq      map[string]int64 // last version the backend saw per URI (survives close)
	regs        []registration
	stokens     map[string]map[*client]bool // backend-created progress token → clients told of it
	folders     map[string]*folderRef       // union of the clients' workspace folders
	backendFold map[string]bool             // folders the backend has been told about

	checks   bool               // tests only: verify the routing tables after every change (checkIDs)
	testHook func(event string) // tests only: called at notable points (with mu held, except "direct-rest")
}

func (m *Mux) event(ev string) {
	if m.testHook != nil {
		m.testHook(ev)
	}
}

// New returns a Mux. It starts no backend: the first client's initialize
// does.
func New(cfg Config) (*Mux, error) {
	if cfg.Start == nil {
		return nil, errors.New("lspmux: Config.Start is required")
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = wire.DefaultMaxMessage
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.ClientQueue <= 0 {
		cfg.ClientQueue = 32 << 20
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = mux.DefaultMaxInflight
	}
	if cfg.ClientFrozen == 0 {
		cfg.ClientFrozen = 30 * time.Second
	}
	if cfg.ClientInflight <= 0 {
		cfg.ClientInflight = 4 << 20
	}
	if cfg.MaxRestarts == 0 {
		cfg.MaxRestarts = 3
	}
	if cfg.RestartWindow <= 0 {
		cfg.RestartWindow = time.Minute
	}
	m := &Mux{
		cfg:         cfg,
		log:         cfg.Logger,
		done:        make(chan struct{}),
		clients:     map[*client]struct{}{},
		docs:        map[string]*doc{},
		verSeq:      map[string]int64{},
		stokens:     map[string]map[*client]bool{},
		folders:     map[string]*folderRef{},
		backendFold: map[string]bool{},
	}
	// The backend's phase (Running: initialized; Starting: the first
	// initialize in flight) is the core's, under mu.
	m.core = mux.NewCore(mux.Config{
		Start:     cfg.Start,
		Framing:   lspFraming{},
		NewReader: func(r io.Reader) wire.MessageReader { return wire.NewReader(r, cfg.MaxMessage) },
		Lock:      &m.mu, MaxRestarts: cfg.MaxRestarts, RestartWindow: cfg.RestartWindow, Logger: cfg.Logger,
	}, (*policy)(m))
	return m, nil
}

// Clients returns the number of connected client sessions.
func (m *Mux) Clients() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.clients)
}

// Backends returns how many backends the Mux has started (1 + restarts).
func (m *Mux) Backends() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.Starts()
}

// Done is closed when the Mux has stopped for good: Close was called or
// the backend failed beyond the restart limit (see Err).
func (m *Mux) Done() <-chan struct{} { return m.done }

// Err returns why the Mux stopped (nil while it runs, ErrClosed after
// Close, a wrapped ErrBackendFailed after too many crashes).
func (m *Mux) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close stops the Mux: every client is disconnected, the backend gets
// shutdown and then exit (each step bounded by ShutdownTimeout and ctx),
// and is killed if it does not leave. It blocks until the backend process
// has exited and every goroutine of the Mux has finished. Later calls
// return the first call's result.
func (m *Mux) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		m.closeErr = m.shutdown(ctx)
	})
	return m.closeErr
}

func (m *Mux) finish() {
	m.doneOnce.Do(func() { close(m.done) })
}
