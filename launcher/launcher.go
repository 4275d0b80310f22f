// Package launcher is procref's lifecycle for a shared local service: any
// number of processes ask for one service; exactly one copy starts; everyone
// finds it fast; it stops exactly once when the last user is gone — also when
// the last user was killed.
//
// # Roles
//
// An acquirer (a [Service.Acquire] or [Service.Attach] caller, e.g. an editor's
// procref proxy) takes a kernel reference (refcount.Counter: a SysV semaphore
// with SEM_UNDO on Linux, so the kernel gives the reference back when the
// acquirer dies however it dies), then finds the service through its hint file
// (package discovery) and verifies it with the handshake (package handshake).
//
// A supervisor (one per service, started detached by the first acquirer under
// the startup lock; procref's own is its host, `procref host`: "host" in
// procref's code and docs, "supervisor" in this library's API) runs the hooks: OnFirstAcquire when it starts, OnLastRelease
// when the reference count reaches zero, OnHealthCheck periodically, OnRecover
// when the service died while in use. Because the supervisor, not the last
// releasing client, runs OnLastRelease, a crashed last client cannot leave the
// service running, and two clients releasing together cannot both (or neither)
// stop it.
//
// # Supervisor mode for library users
//
// The supervisor is the same program re-executed with PROCREF_SUPERVISE set.
// Register every service at package init (or early in main), then let the
// launcher take over first thing in main:
//
//	var svc = launcher.Register(&launcher.Service{Name: "toy", Key: "...", Hooks: ...})
//
//	func main() {
//		launcher.Main() // returns at once unless this process is a supervisor
//		h, err := svc.Acquire(ctx)
//		...
//	}
//
// The procref command uses its hidden `procref host` subcommand instead, via
// [Service.Spawn], and calls [Supervise] itself.
//
// The supervisor's process is the program's executable (os.Executable)
// started by whichever acquirer comes first, and it keeps that user's
// conditions for its whole life, which may be days: the first acquirer's
// environment (plus APP_SUPERVISE=Name and APP_READY_FD), its working
// directory, and no arguments at all (os.Args is the program's name only),
// so Main must run before flags are parsed, and hooks must not depend on
// flags, on the working directory or on an environment variable that
// differs between users of one service (put what matters into Key). Its
// stdin is /dev/null, stdout and stderr go to [Service.LogPath], and it
// runs detached in a session and process group of its own.
//
// The common case, a child process, is one call each way: [StartChild] in
// OnFirstAcquire (and OnRecover) and [StopChild] in OnLastRelease; see
// examples/sharedhttp for a complete program. The hooks' ctx lives as long
// as the service, so exec.CommandContext(ctx, ...) is right.
//
// # Contracts
//
//   - Every hook runs in the supervisor, one at a time, never in an acquirer.
//   - [Service.Acquire] returns when its ctx ends; a start others wait on goes
//     on. Errors: [ErrInvalidService] (checked before anything is created),
//     [ErrNotRegistered], [ErrStartFailed] (with the log path), ctx.Err().
//   - [Handle.Done] closes and [Handle.Err] wraps [ErrServiceGone] when the
//     supervisor the handle came from exits.
//   - A failed start, a forced stop or a counter removed under the supervisor
//     leave no semaphore set and no counter or lock file behind.
//
// # Where the Rust seed's pieces live
//
//   - RefCounter (acquire, release, count, try_lock, unlock): package refcount
//     ([refcount.Counter], [refcount.Lock]).
//   - process (is_alive, terminate, kill, stop): [platform.Identity] (Alive,
//     Terminate, Kill, Stop), which refuses reused pids.
//   - ServiceInfo: [Info]. The builder: [Service] plus [Service.Validate].
//   - The handle that releases: [Handle] ([Handle.Release]).
//
// # Protocol
//
// Startup (acquirer): take the reference; read and verify the hint; if it is
// not live, take the startup lock (bounded by ctx; while waiting, keep
// verifying the hint, so that waiters connect as soon as a starter has
// published it), read and verify again, and only then — if no supervisor is
// alive without a hint — remove the stale hint, spawn the supervisor
// detached, wait for its ready line on an inherited pipe (it writes the hint
// first), release the lock and connect.
//
// A supervisor holds the supervisor lock (<name>.supervisor.lock) from
// before OnFirstAcquire until after OnLastRelease. An acquirer that finds no
// live hint but that lock held waits for that supervisor to publish or to
// exit instead of starting a second copy: the lock covers a supervisor whose
// starter was killed before it was ready (the startup lock died with the
// starter) and one still finishing its drain.
//
// Shutdown (supervisor): wait for the kernel count to reach zero (a blocking
// wait-for-zero) and for no session connection to remain; linger; take the
// startup lock; re-check both counts; mark draining (a handshake now gets
// "draining" and the acquirer goes round the startup path, where it waits on
// the lock); remove the hint if it still holds our nonce; run OnLastRelease;
// remove the kernel counter; release the lock and exit. OnLastRelease runs
// under the lock so that a new acquirer can never see two live services.
package launcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/platform"
	"github.com/procref/procref/refcount"
)

// Environment variables of the supervisor protocol, for the default
// [Service.App]; another App's are APP_SUPERVISE and APP_READY_FD.
const (
	// EnvSupervise names the service a re-executed process must supervise.
	EnvSupervise = "PROCREF_SUPERVISE"
	// EnvReadyFD is the inherited file descriptor of the ready pipe.
	EnvReadyFD = "PROCREF_READY_FD"
)

// env returns the name of s's environment variable for setting
// ("SUPERVISE", "READY_FD").
func (s *Service) env(setting string) string { return platform.AppEnv(s.app(), setting) }

// app returns s.App or the default.
func (s *Service) app() string {
	if s.App == "" {
		return platform.DefaultApp
	}
	return s.App
}

// Sentinel errors.
var (
	// ErrStartFailed means the supervisor could not start the service; the
	// wrapped text carries its reason and the log path.
	ErrStartFailed = errors.New("service failed to start")
	// ErrNotRegistered means Main found no registered service with the name
	// in PROCREF_SUPERVISE (for that App).
	ErrNotRegistered = errors.New("service not registered")
	// ErrNameConflict means a live service with the same Name but another
	// Key (or Version) runs: the acquirer neither joins it nor starts a
	// second copy under the same files.
	ErrNameConflict = errors.New("service name in use by another service")
)

// resolved returns s as the launcher uses it: with a Version, Key and
// Name derived from it (see [Service.Version]); else s itself.
func (s *Service) resolved() *Service {
	if s.Version == "" {
		return s
	}
	c := *s
	c.Key = Key("version", s.Version, s.Key)
	c.Name = s.Name + "-v" + c.Key[:8]
	c.Version = ""
	return &c
}

// FileName returns the name the service's hint, lock, counter and log
// files carry: Name, or with a Version, Name plus "-v" and 8 hex digits.
func (s *Service) FileName() string { return s.resolved().Name }

// Info describes a running service. The supervisor gets it from
// OnFirstAcquire or OnRecover and publishes it in the hint file; every
// acquirer sees it.
type Info struct {
	// PID is the service's process, if it has one. The supervisor watches it
	// (with its start time) and runs OnRecover when it dies while in use.
	PID int `json:"pid,omitempty"`
	// StartTime is PID's start time (platform.Identity.StartTime), if
	// known: with it the supervisor and [StopChild] never mistake a process
	// that reuses the pid for the service. [StartChild] fills it in.
	StartTime uint64 `json:"start_time,omitempty"`
	// Port is the service's port, if any.
	Port int `json:"port,omitempty"`
	// Data is anything else the service wants its users to know.
	Data map[string]string `json:"data,omitempty"`
}

// Hooks are the service's lifecycle callbacks. They all run in the supervisor
// process, one at a time.
type Hooks struct {
	// OnFirstAcquire starts the service and returns its Info. It runs exactly
	// once per lifetime of the service, however many acquirers race. Child
	// processes it starts should use platform.BindToParent so that they die
	// with the supervisor.
	//
	// Its ctx (and OnRecover's) lives as long as the service, not the call:
	// exec.CommandContext(ctx, ...) is right. The supervisor cancels it when
	// it ends, after OnLastRelease, or when the hook overruns StartTimeout.
	OnFirstAcquire func(ctx context.Context) (Info, error)
	// OnLastRelease stops the service. It runs exactly once, when the count
	// reaches zero (after the linger), including when every holder was killed.
	OnLastRelease func(ctx context.Context, info Info) error
	// OnHealthCheck reports whether the service works. It runs in the
	// supervisor every HealthInterval, never in an acquirer.
	OnHealthCheck func(ctx context.Context, info Info) error
	// OnRecover restarts a service that died or failed its health check while
	// in use; its result replaces the published Info. A failing OnRecover is
	// tried 3 times with back-off (0.5 s, 1 s), then the supervisor shuts
	// down. Without it, a dead service ends the supervisor (the next
	// acquirer starts a fresh one).
	OnRecover func(ctx context.Context, old Info, cause error) (Info, error)
}

// Service is a shared service. Fill it in, then use it from any number of
// processes. Its fields must not change after first use.
type Service struct {
	// Name is the file-name-safe service name, e.g. "gopls-0123456789ab".
	Name string
	// Key is the service's full identity (see [Key]); Name alone is not.
	// Name and Key must agree: a Name already used by a live service with
	// another Key is refused ([ErrNameConflict]), never joined. Derive
	// Name from Key with [Name] to keep them apart.
	Key string
	// Version separates supervisors of different builds of one program:
	// every acquirer must agree on it, and acquirers with another Version
	// start (and find) their own supervisor, so a rebuilt binary never
	// joins the old one, whose recovery would then start the old build's
	// child. It is folded into the key and into the file names (Name plus
	// "-v" and 8 hex digits of it); status tools show that name. Use a
	// build identity (e.g. a hash of os.Executable's contents or the
	// vcs.revision plus vcs.modified from debug.ReadBuildInfo), not only a
	// release number. "" means none.
	Version string
	// Hooks run in the supervisor.
	Hooks Hooks
	// Linger keeps the service up this long after the last release.
	Linger time.Duration
	// HealthInterval is the period of OnHealthCheck; 0 means 10s, <0 never.
	HealthInterval time.Duration
	// HealthTimeout bounds one OnHealthCheck; 0 means 10s. A check that
	// overruns it counts as failed.
	HealthTimeout time.Duration
	// HealthRestarts is how many times failed health checks may restart the
	// service (OnRecover) within 10 minutes; the next failure then shuts the
	// supervisor down (the next Acquire starts a fresh one). 0 means 5;
	// <0 means none: the first failure shuts down.
	HealthRestarts int
	// StartTimeout bounds OnFirstAcquire and each OnRecover (and waiting
	// for them); 0 means 30s.
	StartTimeout time.Duration
	// StopTimeout bounds OnLastRelease; 0 means 10s.
	//
	// No hook can wedge the service: when a hook overruns its timeout
	// (StartTimeout, HealthTimeout, StopTimeout) its ctx is cancelled, and
	// if it has not returned 3 s later the supervisor stops waiting for it
	// ([ErrHookStuck]): it logs which hook and how long, kills the
	// service's process (Info.PID) and its process group, removes its hint
	// and counter, and exits, ending its own process group too (whatever
	// the hook started without binding it). The next Acquire starts a fresh
	// supervisor. A SIGTERM gives a running hook the same 3 s.
	StopTimeout time.Duration
	// App names the program the service belongs to: it prefixes the
	// environment variables (APP_SUPERVISE, APP_READY_FD, APP_RUNTIME_DIR,
	// APP_STATE_DIR) and names the directories ($XDG_RUNTIME_DIR/APP,
	// ~/.local/state/APP). "" means "procref". Two apps never share a
	// runtime dir, so never a key secret, a hint or a count, even for
	// equal Name and Key.
	App string
	// Dir is the private runtime dir; "" means the App's (see
	// platform.AppRuntimeDir).
	Dir string
	// LogDir holds <Name>.log, the supervisor's stdout and stderr; ""
	// means platform.StateDir().
	LogDir string
	// Impl selects the reference-count implementation.
	Impl refcount.Impl
	// Spawn returns the command that runs the supervisor; nil means
	// re-executing this program, without arguments, in the first
	// acquirer's working directory and environment, with
	// PROCREF_SUPERVISE=Name (see the package doc). The launcher adds the
	// ready pipe, log file, detaching and environment.
	Spawn func() (*exec.Cmd, error)
	// Serve, if set, makes the supervisor the server: it runs in the
	// supervisor for every connection from [Service.Attach] that passed the
	// handshake, and the connection is counted as a user while Serve runs.
	// It owns conn. (The procref host multiplexes editors here.)
	Serve func(ctx context.Context, conn net.Conn, peer Peer)
	// Status, if set, adds fields to the supervisor's status answer.
	Status func() map[string]any
	// Logger receives the lifecycle's log lines; nil means slog.Default().
	Logger *slog.Logger
	// About is recorded in the service's hint for status tools such as
	// `procref status`; the launcher does not interpret it.
	About About
	// Overlap lets a new instance start while the old one is still in
	// OnLastRelease: a draining supervisor gives the service up (removes
	// its hint, counter and locks, refuses new handshakes) before it stops
	// the service, so an acquirer arriving then starts a fresh one at once
	// instead of waiting. Set it only if two instances can run side by side
	// for that long (no fixed port, no exclusive files).
	Overlap bool
	// Done, if set, ends the service when it is closed (for example, its
	// backend failed beyond recovery): the supervisor drains as on a stop
	// request, so acquirers start a fresh one.
	Done <-chan struct{}
}

// Key derives a service key from the parts that make two services the same:
// the uid, the protocol version (handshake.Version) and the given parts (mode, absolute command
// path, arguments, share scope, selected environment, ...). It returns 64 hex
// digits.
func Key(parts ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "procref\x00%d\x00%d", os.Getuid(), handshake.Version) // incompatible procrefs never share
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Name makes a service name from a base (e.g. the backend's file name) and a
// key: "<base>-<first 12 hex of key>", with unsafe characters replaced.
func Name(base, key string) string {
	base = strings.Map(func(r rune) rune {
		if unsafeNameRune(r) {
			return '_'
		}
		return r
	}, filepath.Base(base))
	if len(base) > 40 {
		base = base[:40]
	}
	base = strings.TrimLeft(base, ".")
	if base == "" {
		base = "service"
	}
	return base + "-" + key[:12]
}

// ErrInvalidService is what [Service.Validate] wraps.
var ErrInvalidService = errors.New("invalid service")

// Validate checks s up front, as Acquire, Attach and Supervise do: a
// file-name-safe Name (letters, digits, '-', '_', '.'; not starting with
// '.'), a Key, and, unless a custom Spawn runs a supervisor built elsewhere,
// a way to run the service: OnFirstAcquire (with OnLastRelease to stop it)
// or Serve. The error wraps [ErrInvalidService].
func (s *Service) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidService, s.Name, fmt.Sprintf(format, a...))
	}
	if s.Name == "" || len(s.Name) > 200 || s.Name[0] == '.' || strings.IndexFunc(s.Name, unsafeNameRune) >= 0 {
		return bad("Name must be 1-200 letters, digits, '-', '_' or '.', not starting with '.' (see launcher.Name)")
	}
	if s.Key == "" {
		return bad("Key is empty; derive it with launcher.Key")
	}
	if s.Spawn != nil {
		return nil // the hooks live in the program Spawn runs
	}
	if s.Hooks.OnFirstAcquire == nil && s.Serve == nil {
		return bad("set Hooks.OnFirstAcquire (or Serve): nothing would run the service")
	}
	if s.Hooks.OnFirstAcquire != nil && s.Hooks.OnLastRelease == nil {
		return bad("set Hooks.OnLastRelease: a service that OnFirstAcquire starts must be stopped")
	}
	return nil
}

func unsafeNameRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		return false
	}
	return true
}

var registry struct {
	sync.Mutex
	m map[string]*Service
}

// Register records s for supervisor mode and returns it. Call it before
// [Main], typically from a package-level var.
//
// It panics if a service of the same name (and App) but another Key is
// registered already: the two would share one supervisor.
func Register(s *Service) *Service {
	registry.Lock()
	defer registry.Unlock()
	if registry.m == nil {
		registry.m = map[string]*Service{}
	}
	r := s.resolved()
	if old := registry.m[r.Name]; old != nil && old.app() == s.app() && old.resolved().Key != r.Key {
		panic(fmt.Sprintf("launcher.Register: %v: %q is registered with another Key; give each service its own Name (launcher.Name(base, key))", ErrNameConflict, r.Name))
	}
	registry.m[r.Name] = s
	return s
}

// Main turns this process into a supervisor if it was started as one
// (APP_SUPERVISE is set for the App of a registered service, or
// PROCREF_SUPERVISE): it runs [Supervise] for the registered service
// and exits. Otherwise it returns at once. Call it first thing in main.
func Main() {
	name, app := supervisedName()
	if name == "" {
		return
	}
	registry.Lock()
	s := registry.m[name]
	registry.Unlock()
	if s == nil || s.app() != app {
		// The acquirer reads this line and returns ErrNotRegistered.
		msg := fmt.Sprintf("%v: no service named %q of app %q is registered in this program (call launcher.Register for it before launcher.Main, with the same Name, App and Version as the acquirer's)", ErrNotRegistered, name, app)
		if ready := readyFile(platform.AppEnv(app, "READY_FD")); ready != nil {
			io.WriteString(ready, "error: "+msg+"\n")
			ready.Close()
		}
		fmt.Fprintf(os.Stderr, "supervisor: %s\n", msg)
		os.Exit(2)
	}
	// Processes the hooks start must not inherit the supervisor role: a
	// service that re-executes this program (as tests and many daemons do)
	// would otherwise become a second supervisor.
	os.Unsetenv(s.env("SUPERVISE"))
	if err := Supervise(context.Background(), s); err != nil {
		fmt.Fprintf(os.Stderr, "procref supervisor %s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// supervisedName returns the service this process was started to
// supervise, and its app: APP_SUPERVISE for the apps of the registered
// services and the default app.
func supervisedName() (name, app string) {
	registry.Lock()
	apps := []string{platform.DefaultApp}
	for _, s := range registry.m {
		apps = append(apps, s.app())
	}
	registry.Unlock()
	for _, a := range apps {
		if v := os.Getenv(platform.AppEnv(a, "SUPERVISE")); v != "" {
			return v, a
		}
	}
	return "", ""
}

// Handle is an acquired reference to a running service.
type Handle struct {
	s       *Service
	dir     *platform.PrivateDir
	hint    *discovery.Hint
	info    Info
	release func() error
	once    sync.Once
	err     error

	watchOnce sync.Once
	done      chan struct{} // closed when the supervisor is gone
	mu        sync.Mutex
	lost      error              // why done was closed
	stopWatch context.CancelFunc // ends the watcher on Release
}

// ErrServiceGone is what [Handle.Err] wraps once the supervisor the handle
// was acquired from has exited: the service is gone (or was replaced by a
// new instance this handle does not describe). Release the handle and
// Acquire again.
var ErrServiceGone = errors.New("service is gone")

// ErrDraining is what [Service.RequestStop] and [Service.QueryStatus] wrap
// when the supervisor is stopping the service already.
var ErrDraining = errors.New("service is stopping")

// ErrNotRunning is what [Service.QueryStatus] and [Service.RequestStop]
// wrap when no supervisor of the service runs.
var ErrNotRunning = errors.New("service is not running")

// Info returns the latest Info published by the supervisor this handle was
// acquired from (after a recovery the supervisor republishes it), else the
// one seen at Acquire. It never describes another instance: once that
// supervisor is gone, Info keeps its last value and [Handle.Err] says so.
func (h *Handle) Info() Info {
	if nh, err := discovery.Read(h.dir, h.s.Name); err == nil && nh.Nonce == h.hint.Nonce {
		var info Info
		if json.Unmarshal(nh.Info, &info) == nil {
			h.mu.Lock()
			h.info = info
			h.mu.Unlock()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.info
}

// Done returns a channel that is closed when the service's supervisor has
// exited (the service stopped, crashed beyond recovery or was stopped by
// request). The first call starts a watcher goroutine, which Release ends;
// after Release the channel is never closed.
func (h *Handle) Done() <-chan struct{} {
	h.watchOnce.Do(func() {
		h.done = make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		h.mu.Lock()
		h.stopWatch = cancel
		h.mu.Unlock()
		host := h.hint.Host
		go func() {
			if host.Wait(ctx) != nil {
				return // released
			}
			h.mu.Lock()
			if h.lost == nil {
				h.lost = h.goneErr()
			}
			h.mu.Unlock()
			close(h.done)
		}()
	})
	return h.done
}

// Err returns nil while the service is live, and an error wrapping
// [ErrServiceGone] once it is gone. It does not block.
func (h *Handle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost == nil && !h.hint.Host.Alive() {
		h.lost = h.goneErr()
	}
	return h.lost
}

func (h *Handle) goneErr() error {
	return fmt.Errorf("%w: supervisor pid %d of %s exited (log: %s)", ErrServiceGone, h.hint.Host.PID, h.s.Name, h.s.LogPath())
}

// Supervisor returns the identity (pid and start time) of the supervisor
// process the handle was verified against.
func (h *Handle) Supervisor() platform.Identity { return h.hint.Host }

// Release gives the reference back and ends Done's watcher. It is
// idempotent; the kernel also gives the reference back if the process dies.
func (h *Handle) Release() error {
	h.once.Do(func() {
		h.mu.Lock()
		if h.stopWatch != nil {
			h.stopWatch()
		}
		h.mu.Unlock()
		h.err = h.release()
	})
	return h.err
}

// Acquire takes a reference to the service, starting it if it is not running,
// and returns once it is verified live. It blocks at most until ctx is done.
// The caller must Release the handle (or exit).
func (s *Service) Acquire(ctx context.Context) (*Handle, error) {
	s = s.resolved()
	sess, err := s.connect(ctx, handshake.VerbPing)
	if err != nil {
		return nil, err
	}
	sess.Conn.Close()
	h := &Handle{s: s, dir: sess.dir, hint: sess.hint, release: sess.release}
	json.Unmarshal(sess.hint.Info, &h.info)
	return h, nil
}

// Peer is the process at the other end of a [Service.Serve] connection,
// as it named itself in the handshake.
type Peer struct {
	PID int
}

// About describes a service for status tools; see [Service.About].
type About struct {
	Mode    string   // e.g. procref's "mux" or "tcp"
	Command []string // what the service runs
	Root    string   // e.g. a workspace root
	// Dir is the working directory the service was started in.
	Dir string
	// Identity is what identifies the service's executables (procref's
	// hostproto.Identity); a status tool compares it with the files now.
	Identity string
}

// Session is a reference plus an authenticated connection to the
// supervisor's [Service.Serve].
type Session struct {
	// Conn carries the protocol bytes; the caller owns it.
	Conn net.Conn
	// Started reports whether this call started the supervisor.
	Started bool
	// Supervisor is the identity of the supervisor process at the other
	// end of Conn.
	Supervisor platform.Identity
	// Log is the supervisor's log file.
	Log     string
	hint    *discovery.Hint
	dir     *platform.PrivateDir
	release func() error
	once    sync.Once
}

// Release gives the reference back (idempotent). It does not close Conn.
func (s *Session) Release() error {
	var err error
	s.once.Do(func() { err = s.release() })
	return err
}

// Attach takes a reference and returns a connection to the supervisor's
// [Service.Serve] (which must be set), starting the supervisor if needed.
// It blocks at most until ctx is done. The caller owns the Session: Release
// it and close its Conn.
func (s *Service) Attach(ctx context.Context) (*Session, error) {
	return s.connect(ctx, handshake.VerbSession)
}

// Count returns the service's current kernel reference count. On a
// service that is not running it leaves nothing behind (no semaphore set,
// no file).
func (s *Service) Count() (int, error) {
	s = s.resolved()
	dir, err := s.dir()
	if err != nil {
		return 0, err
	}
	c, err := refcount.Open(s.Name, s.Key, refcount.Options{Dir: dir, Impl: s.Impl})
	if err != nil {
		return 0, err
	}
	n, err := c.Count()
	if err != nil || n > 0 {
		c.Close()
		return n, err
	}
	// Opening may have created the counter of a stopped service: remove it
	// again unless someone is starting the service (startup lock) or a
	// supervisor lives, as after a failed start (removeLeftovers closes c).
	lock, lerr := refcount.OpenLock(dir, s.Name)
	if lerr != nil {
		c.Close()
		return 0, nil
	}
	unlock, lerr := lock.TryLock()
	if lerr != nil {
		c.Close()
		return 0, nil
	}
	defer unlock()
	s.removeLeftovers(dir, c)
	return 0, nil
}

// RuntimeDir returns the path of the private runtime dir the service's
// hint, locks and counter live in (Dir, checked to be private, or
// platform.AppRuntimeDir), for messages; the files are reached through
// [Service.PrivateDir].
func (s *Service) RuntimeDir() (string, error) {
	d, err := s.dir()
	if err != nil {
		return "", err
	}
	return d.Path(), nil
}

// PrivateDir returns this process's one checked handle on the service's
// private runtime dir: created if missing and checked (every directory from
// the root down, then the dir itself: platform.EnsurePrivateDir), then
// opened (platform.OpenPrivateDir) on first use, and kept open for the life
// of the process, shared by every Service with that dir. Hints, locks,
// counters and sockets are then reached relative to it, so a directory
// swapped or renamed at the path later redirects nothing. Each call
// re-checks the opened directory (fstat: ours, 0700), not the path. The
// launcher owns the handle: callers must not Close it. There is no
// fallback: a dir that fails its check is an error wrapping
// platform.ErrInsecureDir that says how to fix it, on every call, never
// replaced by another place (which would silently split the service in
// two).
func (s *Service) PrivateDir() (*platform.PrivateDir, error) { return s.dir() }

// privateDirs holds the process's checked runtime dir handles by path
// (see Service.PrivateDir); they are never closed.
var privateDirs struct {
	sync.Mutex
	m map[string]*platform.PrivateDir
}

func (s *Service) dir() (*platform.PrivateDir, error) {
	path := s.Dir
	if path == "" {
		path = platform.AppRuntimePath(s.app())
	}
	privateDirs.Lock()
	defer privateDirs.Unlock()
	d := privateDirs.m[path]
	if d == nil {
		var err error
		if d, err = s.openDir(path); err != nil {
			return nil, err
		}
		if privateDirs.m == nil {
			privateDirs.m = map[string]*platform.PrivateDir{}
		}
		privateDirs.m[path] = d
	}
	if err := d.Check(); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	return d, nil
}

// openDir creates (if missing), checks and opens the runtime dir path.
func (s *Service) openDir(path string) (*platform.PrivateDir, error) {
	if s.Dir != "" {
		if err := platform.EnsurePrivateDir(path); err != nil {
			return nil, fmt.Errorf("runtime dir: %w", err)
		}
	} else if _, err := platform.AppRuntimeDir(s.app()); err != nil {
		return nil, err
	}
	d, err := platform.OpenPrivateDir(path)
	if err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	return d, nil
}

func (s *Service) logDir() (string, error) {
	if s.LogDir != "" {
		return s.LogDir, platform.EnsurePrivateDir(s.LogDir)
	}
	return platform.AppStateDir(s.app())
}

// LogPath returns the supervisor's log file path.
func (s *Service) LogPath() string {
	s = s.resolved()
	d, err := s.logDir()
	if err != nil {
		if d, err = s.RuntimeDir(); err != nil {
			d = os.TempDir()
		}
	}
	return filepath.Join(d, s.Name+".log")
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
