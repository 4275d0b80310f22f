//go:build linux

package launcher_test

// Issue 24 item 3: no hook can wedge a service. toy-hang's hooks hang,
// ignoring their ctx, in the hook that <runtime dir>/hang-mode names.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

const toyHangName = "toy-hang"

// hangMode is the hook that hangs ("first", "first-term", "health",
// "recover", "last"), read from the runtime dir; "" means none.
func hangMode() string {
	b, _ := os.ReadFile(filepath.Join(runDir(), "hang-mode"))
	return strings.TrimSpace(string(b))
}

// hangService is toy-hang for the current runtime dir and hang mode.
func hangService() *launcher.Service {
	s := &launcher.Service{
		Name:           toyHangName,
		Key:            launcher.Key(toyHangName, runDir()),
		StartTimeout:   5 * time.Second, // a start under load takes more than 1 s
		StopTimeout:    500 * time.Millisecond,
		HealthTimeout:  500 * time.Millisecond,
		HealthInterval: 100 * time.Millisecond,
		Hooks: launcher.Hooks{
			OnFirstAcquire: hangFirst,
			OnLastRelease:  hangLast,
			OnHealthCheck:  hangHealth,
			OnRecover: func(ctx context.Context, old launcher.Info, _ error) (launcher.Info, error) {
				record("recovering", "sup="+selfIdent())
				switch hangMode() {
				case "sick":
					launcher.StopChild(old, time.Second)
					return hangFirst(ctx)
				case "recover-child":
					return recoverNeverReady(ctx, old)
				}
				<-make(chan struct{})
				return launcher.Info{}, nil
			},
		},
		HealthRestarts: 2,
	}
	if hangMode() == "first-term" {
		s.StartTimeout = 10 * time.Minute // only the signal can end it
	}
	return s
}

// hangFirst starts a hung child (plainly: in the supervisor's process
// group, not bound to it) and, in the "first" modes, then hangs.
func hangFirst(ctx context.Context) (launcher.Info, error) {
	exe, err := os.Executable()
	if err != nil {
		return launcher.Info{}, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=hungchild")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return launcher.Info{}, err
	}
	if err := cmd.Start(); err != nil {
		return launcher.Info{}, err
	}
	go cmd.Wait()
	line, _ := bufio.NewReader(out).ReadString('\n')
	var port int
	if _, err := fmt.Sscanf(line, "port %d", &port); err != nil {
		cmd.Process.Kill()
		return launcher.Info{}, fmt.Errorf("hung child said %q", line)
	}
	id, _ := platform.Lookup(cmd.Process.Pid)
	record("first", "sup="+selfIdent(), "child="+identString(id))
	if strings.HasPrefix(hangMode(), "first") {
		<-make(chan struct{}) // ignores ctx
	}
	info := launcher.Info{PID: id.PID, StartTime: id.StartTime, Port: port}
	if hangMode() == "big" {
		info.Data = map[string]string{"big": strings.Repeat("x", 70<<10)}
	}
	return info, nil
}

// recoverNeverReady is the other realistic trigger: StartChild in
// OnRecover for a child that never gets ready. It relies on the ctx being
// cancelled at StartTimeout.
func recoverNeverReady(ctx context.Context, old launcher.Info) (launcher.Info, error) {
	launcher.StopChild(old, time.Second)
	exe, err := os.Executable()
	if err != nil {
		return launcher.Info{}, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=hungchild")
	once := false
	return launcher.StartChild(ctx, cmd, func(context.Context) error {
		if !once {
			once = true
			record("first", "sup="+selfIdent(), "child="+pidIdent(cmd.Process.Pid))
		}
		return errors.New("toy-hang: never ready")
	})
}

func hangLast(ctx context.Context, info launcher.Info) error {
	if hangMode() == "last" {
		<-make(chan struct{})
	}
	return launcher.StopChild(info, time.Second)
}

// hangHealth is the realistic hang: http.Get (no timeout, no ctx) against
// a child that accepts and never answers.
func hangHealth(ctx context.Context, info launcher.Info) error {
	switch hangMode() {
	case "health":
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(info.Port) + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	case "recover", "sick", "recover-child":
		return errors.New("toy-hang: unhealthy")
	}
	return nil
}

// hungChild accepts connections and never answers, until killed.
func hungChild() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hung child:", err)
		return 1
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	var conns []net.Conn
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		conns = append(conns, c)
	}
}

// setHangMode writes the hang mode for the next supervisor.
func setHangMode(t *testing.T, e *testEnv, mode string) {
	t.Helper()
	if err := platform.EnsurePrivateDir(e.run); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.run, "hang-mode"), []byte(mode), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkEnded checks that a stuck hook's service ended: every process
// gone, the log names the hook, no semaphore set and no file left.
func checkEnded(t *testing.T, e *testEnv, svc *launcher.Service, hook string) {
	t.Helper()
	checkEndedSaying(t, e, svc, "hook did not return", "hook="+hook)
}

// checkEndedSaying is checkEnded for a log that says both phrases.
func checkEndedSaying(t *testing.T, e *testEnv, svc *launcher.Service, phrase, hook string) {
	t.Helper()
	e.waitAllGone(20 * time.Second)
	b, _ := os.ReadFile(svc.LogPath())
	if !strings.Contains(string(b), phrase) || !strings.Contains(string(b), hook) {
		t.Errorf("the log does not say %q of %s:\n%s", phrase, hook, tail(b, 2000))
	}
	if n := semSets(t, e.run, svc.Key); n != 0 {
		t.Errorf("%d semaphore sets left", n)
	}
	if f := serviceFiles(t, e.run, svc.Name); len(f) != 0 {
		t.Errorf("files left: %v", f)
	}
}

// startsFresh shows that the next Acquire gets a new, working supervisor.
func startsFresh(t *testing.T, e *testEnv, old platform.Identity) {
	t.Helper()
	setHangMode(t, e, "")
	h := acquire(t, hangService())
	if h.Supervisor() == old {
		t.Errorf("the next Acquire got the old supervisor %v", old)
	}
	sup := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, sup, 20*time.Second, "fresh supervisor")
	e.waitAllGone(20 * time.Second)
}

// Must show: a hook that ignores its ctx and never returns ends the
// service (its child too), for each hook kind, and the next Acquire starts
// a fresh one.
func TestHookStuck(t *testing.T) {
	for _, tc := range []struct{ mode, hook string }{
		{"first", "OnFirstAcquire"},
		{"health", "OnHealthCheck"},
		{"recover", "OnRecover"},
		{"recover-child", "OnRecover"},
		{"last", "OnLastRelease"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newEnv(t)
			setHangMode(t, e, tc.mode)
			svc := hangService()
			var sup platform.Identity
			if tc.mode == "first" {
				_, err := svc.Acquire(testCtx(t, time.Minute))
				if !errors.Is(err, launcher.ErrStartFailed) || !strings.Contains(err.Error(), "OnFirstAcquire") {
					t.Fatalf("Acquire = %v, want a failed start naming OnFirstAcquire", err)
				}
			} else {
				h := acquire(t, svc)
				sup = h.Supervisor()
				if tc.mode == "last" {
					h.Release()
				} else {
					select {
					case <-h.Done():
					case <-testCtx(t, time.Minute).Done():
						t.Fatal("the supervisor still runs with a stuck hook")
					}
					if !errors.Is(h.Err(), launcher.ErrServiceGone) {
						t.Errorf("Err = %v", h.Err())
					}
					h.Release()
				}
				proctest.WaitGone(t, sup, 20*time.Second, "supervisor")
			}
			if tc.mode == "recover-child" { // StartChild returns once its ctx is cancelled
				checkEndedSaying(t, e, svc, "longer than its timeout", tc.hook)
			} else {
				checkEnded(t, e, svc, tc.hook)
			}
			startsFresh(t, e, sup)
		})
	}
}

// Must show: SIGTERM ends a supervisor whose OnFirstAcquire hangs long
// before its StartTimeout, and its child with it.
func TestSIGTERMWhileHookHangs(t *testing.T) {
	e := newEnv(t)
	setHangMode(t, e, "first-term")
	svc := hangService()
	errc := make(chan error, 1)
	go func() {
		_, err := svc.Acquire(testCtx(t, time.Minute))
		errc <- err
	}()
	e.waitEvent("first", 30*time.Second) // the hook started
	var sup platform.Identity
	for _, ev := range e.events() {
		if ev.kind == "first" {
			sup, _ = parseIdent(ev.kv["sup"])
		}
	}
	if err := syscall.Kill(sup.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, launcher.ErrStartFailed) {
			t.Errorf("Acquire = %v, want ErrStartFailed", err)
		}
	case <-testCtx(t, time.Minute).Done():
		t.Fatal("Acquire still waits after SIGTERM")
	}
	proctest.WaitGone(t, sup, 20*time.Second, "supervisor")
	checkEnded(t, e, svc, "OnFirstAcquire")
}

// Must show: while OnLastRelease hangs, status says stopping (ErrDraining),
// not "not running" until the supervisor has ended the service; after it
// exited, status says ErrNotRunning.
func TestStatusWhileStopHangs(t *testing.T) {
	e := newEnv(t)
	setHangMode(t, e, "last")
	svc := hangService()
	h := acquire(t, svc)
	sup := h.Supervisor()
	if _, err := svc.QueryStatus(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("QueryStatus of a live service: %v", err)
	}
	h.Release()
	sawStopping := false
	// Status is sampled until the supervisor is gone (the hang's timeout
	// ends it).
	proctest.Eventually(t, time.Minute, fmt.Sprintf("supervisor %v to end", sup), func() bool {
		_, err := svc.QueryStatus(testCtx(t, 10*time.Second))
		switch {
		case errors.Is(err, launcher.ErrDraining):
			sawStopping = true
		case errors.Is(err, launcher.ErrNotRunning):
			// Only once the supervisor has ended the service (it then
			// removes its files and exits).
			if b, _ := os.ReadFile(svc.LogPath()); !strings.Contains(string(b), "hook did not return") {
				t.Fatalf("status says not running while supervisor %v stops: %v", sup, err)
			}
		}
		return !sup.Alive()
	})
	if !sawStopping {
		t.Error("status never said stopping while OnLastRelease hung")
	}
	if _, err := svc.QueryStatus(testCtx(t, 10*time.Second)); !errors.Is(err, launcher.ErrNotRunning) {
		t.Errorf("QueryStatus after the end = %v, want ErrNotRunning", err)
	}
	checkEnded(t, e, svc, "OnLastRelease")
}

// Must show: a service that keeps failing its health check is restarted
// HealthRestarts times, then the supervisor shuts down and leaves nothing.
func TestHealthRestartBudget(t *testing.T) {
	e := newEnv(t)
	setHangMode(t, e, "sick")
	svc := hangService()
	h := acquire(t, svc)
	select {
	case <-h.Done():
	case <-testCtx(t, time.Minute).Done():
		t.Fatal("the supervisor restarts a failing service forever")
	}
	h.Release()
	proctest.WaitGone(t, h.Supervisor(), 20*time.Second, "supervisor")
	e.waitAllGone(20 * time.Second)
	if n := e.count("recovering"); n != svc.HealthRestarts {
		t.Errorf("%d restarts, want HealthRestarts = %d", n, svc.HealthRestarts)
	}
	if b, _ := os.ReadFile(svc.LogPath()); !strings.Contains(string(b), "health restart budget spent") {
		t.Errorf("the log does not say the budget was spent:\n%s", tail(b, 2000))
	}
	if n := semSets(t, e.run, svc.Key); n != 0 {
		t.Errorf("%d semaphore sets left", n)
	}
	if f := serviceFiles(t, e.run, svc.Name); len(f) != 0 {
		t.Errorf("files left: %v", f)
	}
}
