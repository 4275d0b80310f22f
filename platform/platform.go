// Package platform holds the operating-system facts and controls procref
// needs: whether a process is alive, its start time (so a recycled PID is
// never mistaken for the process we meant), terminate/kill/stop with that
// identity re-checked before every signal, detached and parent-bound spawning,
// and private runtime/state directories.
//
// Every function here is safe for concurrent use. Each operating system's code
// lives in its own file behind a //go:build line; this file holds the whole
// exported API and its documentation.
package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/adrg/xdg"
)

// ErrNoProcess reports that no live process has the given PID. A zombie
// (exited, not yet reaped) counts as gone.
var ErrNoProcess = errors.New("no such process")

// ErrIdentityChanged reports that the PID now belongs to a different process
// than the Identity names (the PID was reused). It is returned instead of
// sending a signal: no signal is ever sent to a process whose start time does
// not match.
var ErrIdentityChanged = errors.New("process identity changed: pid was reused")

// ErrInsecureDir reports a directory procref refuses to use (a symlink, not a
// directory, owned by another user, or accessible by group/other). It is
// always wrapped with the path, what is wrong and the command that fixes it.
var ErrInsecureDir = errors.New("insecure directory")

// Identity is a process identity that survives PID reuse: the PID together
// with the process start time. StartTime is opaque and OS specific (Linux:
// clock ticks since boot; darwin/freebsd: microseconds since the epoch;
// Windows: FILETIME creation time in 100 ns units); compare it only for
// equality with a value read on the same machine.
type Identity struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// String formats the identity for logs as "pid 123 (start 456)".
func (id Identity) String() string {
	return fmt.Sprintf("pid %d (start %d)", id.PID, id.StartTime)
}

var self = sync.OnceValue(func() Identity {
	pid := os.Getpid()
	st, _ := StartTime(pid) // reading our own start time cannot fail on a sane system
	return Identity{PID: pid, StartTime: st}
})

// Self returns the identity of the calling process. It does not block.
func Self() Identity { return self() }

// Lookup returns the current identity of pid. It returns ErrNoProcess if no
// live process (zombies excluded) has that PID.
func Lookup(pid int) (Identity, error) {
	if pid <= 0 {
		return Identity{}, fmt.Errorf("lookup pid %d: %w", pid, ErrNoProcess)
	}
	st, zombie, err := procState(pid)
	if err != nil {
		return Identity{}, fmt.Errorf("lookup pid %d: %w", pid, err)
	}
	if zombie {
		return Identity{}, fmt.Errorf("lookup pid %d: exited (zombie): %w", pid, ErrNoProcess)
	}
	return Identity{PID: pid, StartTime: st}, nil
}

// Alive reports whether some process has this PID: on unix kill(pid, 0)
// succeeds or fails with EPERM (a zombie counts as alive here; use
// Identity.Alive for the precise answer); on Windows the process can be
// opened and has not exited. It says nothing about which process it is.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return alive(pid)
}

// StartTime returns the start time of pid (see Identity for units), or an
// error wrapping ErrNoProcess if there is no such process. Sources: Linux
// /proc/PID/stat field 22; darwin sysctl kern.proc.pid p_starttime; freebsd
// sysctl kern.proc.pid ki_start; Windows GetProcessTimes creation time.
func StartTime(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, ErrNoProcess)
	}
	st, _, err := procState(pid)
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	return st, nil
}

// Alive reports whether the process named by id is still running: its PID is
// in use, not a zombie, and its start time still equals id.StartTime.
func (id Identity) Alive() bool {
	if id.PID <= 0 {
		return false
	}
	st, zombie, err := procState(id.PID)
	return err == nil && !zombie && st == id.StartTime
}

// Terminate asks the process to exit (SIGTERM; on Windows TerminateProcess,
// which is not graceful). It first re-checks the identity and returns
// ErrIdentityChanged (sending nothing) if the PID now belongs to another
// process, or ErrNoProcess if it is gone. On Linux the check and the signal
// go through one pidfd, so there is no window in which the PID can be reused
// between them; elsewhere on unix that window is a few microseconds and
// documented in signalIdentity. Windows uses one process handle for both
// (race free).
func (id Identity) Terminate() error { return id.signal(sigTerm) }

// Kill forcibly ends the process (SIGKILL; Windows TerminateProcess), with
// the same identity check as Terminate.
func (id Identity) Kill() error { return id.signal(sigKill) }

func (id Identity) signal(s sigKind) error {
	if id.PID <= 0 {
		return fmt.Errorf("signal %v: %w", id, ErrNoProcess)
	}
	if err := signalIdentity(id, s); err != nil {
		return fmt.Errorf("%s %v: %w", s, id, err)
	}
	return nil
}

// Wait blocks until the process named by id is no longer alive (exited,
// zombie, or its PID reused) and returns nil, or returns ctx.Err() when ctx is
// done first. It works for processes that are not our children (Linux: pidfd
// poll; elsewhere polling every few milliseconds). It never reaps a child:
// the owner of the exec.Cmd still calls cmd.Wait.
func (id Identity) Wait(ctx context.Context) error {
	if !id.Alive() {
		return nil
	}
	return waitGone(ctx, id)
}

// killWait bounds how long Stop waits for the process to vanish after SIGKILL.
const killWait = 5 * time.Second

// Stop ends the process: Terminate, wait up to timeout, then Kill and wait up
// to a few seconds. The identity is re-checked before each signal. It returns
// nil once the process is gone, including when it was already gone before the
// first signal (ErrNoProcess is not an error for Stop). If the PID already
// belongs to another process before the first signal it returns
// ErrIdentityChanged and sends nothing. If the process exits after SIGTERM and
// its PID is reused before the SIGKILL check, that check fails and nothing is
// sent: Stop returns nil because the process it was asked to stop is gone.
func (id Identity) Stop(timeout time.Duration) error {
	if err := id.Terminate(); err != nil {
		if errors.Is(err, ErrNoProcess) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := id.Wait(ctx)
	cancel()
	if err == nil {
		return nil
	}
	if err := id.Kill(); err != nil {
		if errors.Is(err, ErrNoProcess) || errors.Is(err, ErrIdentityChanged) {
			return nil // exited between the wait and the kill (its PID may even be reused)
		}
		return err
	}
	ctx, cancel = context.WithTimeout(context.Background(), killWait)
	defer cancel()
	if err := id.Wait(ctx); err != nil {
		return fmt.Errorf("stop %v: still alive %s after SIGKILL: %w", id, killWait, err)
	}
	return nil
}

// Detach sets cmd.SysProcAttr so the child is detached from us: on unix it
// starts a new session (Setsid: new process group, no controlling terminal,
// so terminal hangups and Ctrl-C in the editor's terminal do not reach it); on
// Windows DETACHED_PROCESS|CREATE_NEW_PROCESS_GROUP. Other SysProcAttr fields
// are kept. The caller sets Stdin/Stdout/Stderr/ExtraFiles (use files or
// os.DevNull, not pipes it will stop reading, for a long-lived child).
func Detach(cmd *exec.Cmd) { detach(cmd) }

// BindToParent sets cmd.SysProcAttr so the child should not outlive us.
//
// Linux: Pdeathsig=SIGKILL. Caveat: the kernel sends it when the OS *thread*
// that forked the child exits, not the process. The Go runtime only ends a
// thread when a goroutine exits while locked with runtime.LockOSThread, so
// starting from an ordinary goroutine is normally fine, but starting from a
// locked goroutine that later ends kills the child early. StartBound removes
// the caveat and is what procref uses.
//
// darwin/freebsd: Setpgid (the child leads a new process group); there is no
// kernel parent-death signal, so the caller must kill the group (negative
// PID) on shutdown and the child should exit on stdin EOF.
//
// Windows: nothing can be set on SysProcAttr; use StartBound, which puts the
// child in a kill-on-close job object.
func BindToParent(cmd *exec.Cmd) { bindToParent(cmd) }

// StartBound applies BindToParent and starts cmd so that the binding is
// robust. Linux: the child is forked from a goroutine locked to its OS thread
// and that thread stays locked (parked in waitid(WNOWAIT), which does not
// reap) until the child exits, so Pdeathsig fires only when our process dies;
// this costs one OS thread and one goroutine per bound child, both released
// when the child exits (goleak users: wait for the child before the test ends).
// Windows: the child is assigned to a job object with
// JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE whose only handle we hold, so the kernel
// kills it when we exit (a child it spawns before assignment completes can
// escape). Other unix: same as BindToParent then cmd.Start. The caller still
// owns cmd and must call cmd.Wait.
func StartBound(cmd *exec.Cmd) error { return startBound(cmd) }

// RuntimeDir returns the private directory for hints and locks, creating it
// 0700 and verifying it with EnsurePrivateDir. Order: $PROCREF_RUNTIME_DIR;
// else $XDG_RUNTIME_DIR/procref; else (Linux/BSD) /run/user/<uid>/procref if
// /run/user/<uid> is an existing directory owned by us with mode 0700; else
// $TMPDIR/procref-<uid> (os.TempDir). On darwin and Windows without
// XDG_RUNTIME_DIR it is xdg.RuntimeDir/procref (per-user Application Support /
// LocalAppData). We do not use adrg/xdg's unset-variable fallback directly: it
// silently yields /tmp, where another user may have created procref first.
func RuntimeDir() (string, error) { return AppRuntimeDir(DefaultApp) }

// DefaultApp is the application name of RuntimeDir and StateDir.
const DefaultApp = "procref"

// AppEnv is the environment variable name of setting for app: "procref",
// "RUNTIME_DIR" → "PROCREF_RUNTIME_DIR"; characters other than letters and
// digits in app become '_'.
func AppEnv(app, setting string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, app) + "_" + setting
}

// AppRuntimeDir is RuntimeDir for another application: $APP_RUNTIME_DIR,
// else the same places with app in place of "procref".
func AppRuntimeDir(app string) (string, error) {
	dir := AppRuntimePath(app)
	if err := EnsurePrivateDir(dir); err != nil {
		env := AppEnv(app, "RUNTIME_DIR")
		return "", fmt.Errorf("runtime dir: %w (or set %s to a private directory)", err, env)
	}
	return dir, nil
}

// AppRuntimePath is the path AppRuntimeDir checks and returns, without
// creating or checking anything (for a caller that holds that dir's
// checked handle already). It does not block.
func AppRuntimePath(app string) string {
	if dir := os.Getenv(AppEnv(app, "RUNTIME_DIR")); dir != "" {
		return dir
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(x) {
		return filepath.Join(x, app)
	}
	return defaultRuntimeDir(app)
}

// StateDir returns the private directory for logs: $PROCREF_STATE_DIR, else
// $XDG_STATE_HOME/procref, else xdg.StateHome/procref (~/.local/state/procref
// on Linux). It is created 0700 and verified with EnsurePrivateDir.
func StateDir() (string, error) { return AppStateDir(DefaultApp) }

// AppStateDir is StateDir for another application: $APP_STATE_DIR, else
// $XDG_STATE_HOME/app, else xdg.StateHome/app.
func AppStateDir(app string) (string, error) {
	env := AppEnv(app, "STATE_DIR")
	dir := os.Getenv(env)
	if dir == "" {
		base := os.Getenv("XDG_STATE_HOME")
		if !filepath.IsAbs(base) {
			base = xdg.StateHome
		}
		dir = filepath.Join(base, app)
	}
	if err := EnsurePrivateDir(dir); err != nil {
		return "", fmt.Errorf("state dir: %w (or set %s to a private directory)", err, env)
	}
	return dir, nil
}

// EnsurePrivateDir creates path with mode 0700 (parents too, also 0700) if it
// is missing, then verifies it without following symlinks. On unix it returns
// an error wrapping ErrInsecureDir, naming the path, the problem and the fix,
// if path is a symlink, not a directory, owned by another uid, or has any
// group/other permission bits. It never changes an existing directory's mode
// or creates anything inside it. Windows: it only creates the directory and
// refuses a symlink/reparse point or non-directory; the per-user profile
// directories' ACLs are relied on (documented limitation).
func EnsurePrivateDir(path string) error {
	if path == "" {
		return fmt.Errorf("%w: empty path", ErrInsecureDir)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		// MkdirAll fails with "not a directory" for a file or a dangling
		// symlink; report those the same way as the checks below.
		if _, lerr := os.Lstat(path); lerr != nil {
			return fmt.Errorf("create private dir: %w", err)
		}
	}
	return checkPrivateDir(path)
}

// RSS returns the resident set size of pid in bytes. Linux reads
// /proc/PID/statm, freebsd ki_rssize; darwin and Windows return an error
// wrapping errors.ErrUnsupported.
func RSS(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, ErrNoProcess)
	}
	n, err := rss(pid)
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d: %w", pid, err)
	}
	return n, nil
}

type sigKind int

const (
	sigTerm sigKind = iota
	sigKill
)

func (s sigKind) String() string {
	if s == sigKill {
		return "kill"
	}
	return "terminate"
}

// pollGone polls until id is no longer alive or ctx is done: 1 ms doubling to
// 10 ms. Used where the kernel offers no exit event for non-children.
func pollGone(ctx context.Context, id Identity) error {
	d := time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if !id.Alive() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if d < 10*time.Millisecond {
			d *= 2
		}
		t.Reset(d)
	}
}
