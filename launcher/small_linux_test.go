//go:build linux

package launcher_test

// Issue 24 item 6: the smaller library items.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// Must show: Count on a service that is not running leaves no semaphore
// set and no file; on a live one it counts and removes nothing.
func TestCountLeavesNothing(t *testing.T) {
	e := newEnv(t)
	if err := platform.EnsurePrivateDir(e.run); err != nil {
		t.Fatal(err)
	}
	svc := toyService(toyLightName)
	for i := range 3 {
		if n, err := svc.Count(); n != 0 || err != nil {
			t.Fatalf("Count of a stopped service = %d, %v", n, err)
		}
		if n := semSets(t, e.run, svc.Key); n != 0 {
			t.Fatalf("call %d: Count left %d semaphore sets", i, n)
		}
		if f := serviceFiles(t, e.run, svc.Name); len(f) != 0 {
			t.Fatalf("call %d: Count left %v", i, f)
		}
	}
	h := acquire(t, svc)
	if n, err := svc.Count(); n != 1 || err != nil {
		t.Fatalf("Count of a live service = %d, %v", n, err)
	}
	if n := semSets(t, e.run, svc.Key); n != 1 {
		t.Fatalf("%d semaphore sets for a live service", n)
	}
	sup := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, sup, 20*time.Second, "supervisor")
	if n, err := svc.Count(); n != 0 || err != nil || semSets(t, e.run, svc.Key) != 0 {
		t.Fatalf("after the stop: Count = %d, %v; %d sets", n, err, semSets(t, e.run, svc.Key))
	}
}

// Must show: a panic in one Serve connection ends that connection only:
// another session of the same supervisor goes on working.
func TestServePanicEndsOnlyItsConnection(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	ctx := testCtx(t, time.Minute)
	good, err := svc.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Release()
	defer good.Conn.Close()
	bad, err := svc.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Release()
	defer bad.Conn.Close()
	io.WriteString(bad.Conn, "panic\n")
	bad.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := bad.Conn.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the panicking connection got %d bytes, want it closed", n)
	}
	io.WriteString(good.Conn, "hello\n")
	good.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(good.Conn).ReadString('\n')
	if err != nil && line == "" {
		t.Fatalf("the other session after the panic: %v", err)
	}
	if !strings.HasPrefix(line, "echo hello") {
		t.Fatalf("the other session got %q", line)
	}
	if !good.Supervisor.Alive() {
		t.Fatal("the supervisor died")
	}
	// The supervisor logs the panic after the connection's own deferred
	// close, which the read above may see first.
	proctest.Eventually(t, 30*time.Second, "the log to report the panic", func() bool {
		b, _ := os.ReadFile(svc.LogPath())
		return strings.Contains(string(b), "Serve panicked")
	})
	good.Conn.Close()
	bad.Conn.Close()
	good.Release()
	bad.Release()
	proctest.WaitGone(t, good.Supervisor, 20*time.Second, "supervisor")
	e.waitAllGone(20 * time.Second)
}

// Must show: an Info over the size limit fails the start with a clear
// error and leaves nothing (the service it started is stopped).
func TestInfoTooLarge(t *testing.T) {
	e := newEnv(t)
	setHangMode(t, e, "big")
	svc := hangService()
	_, err := svc.Acquire(testCtx(t, time.Minute))
	if !errors.Is(err, launcher.ErrStartFailed) || !strings.Contains(err.Error(), fmt.Sprint(launcher.MaxInfoSize)) {
		t.Fatalf("Acquire = %v, want a failed start naming the limit", err)
	}
	e.waitAllGone(20 * time.Second)
	if n := semSets(t, e.run, svc.Key); n != 0 {
		t.Errorf("%d semaphore sets left", n)
	}
	if f := serviceFiles(t, e.run, svc.Name); len(f) != 0 {
		t.Errorf("files left: %v", f)
	}
}

// Must show what the package doc says of the supervisor's process: the
// first acquirer's environment and working directory, no arguments (only
// the program's own name), PROCREF_SUPERVISE naming the service.
func TestSupervisorEnvironment(t *testing.T) {
	e := newEnv(t)
	wd := t.TempDir()
	t.Chdir(wd)
	t.Setenv("LAUNCHER_TEST_MARK", "first-user")
	svc := toyService(toyLightName)
	h := acquire(t, svc)
	sup := h.Supervisor()
	proc := fmt.Sprintf("/proc/%d/", sup.PID)
	env, _ := os.ReadFile(proc + "environ")
	vars := strings.Split(string(env), "\x00")
	has := func(v string) bool {
		for _, x := range vars {
			if x == v {
				return true
			}
		}
		return false
	}
	if !has("LAUNCHER_TEST_MARK=first-user") || !has(launcher.EnvSupervise+"="+svc.Name) {
		t.Errorf("the supervisor's environment lacks the first user's variable or %s", launcher.EnvSupervise)
	}
	if cwd, err := os.Readlink(proc + "cwd"); err != nil || cwd != wd {
		t.Errorf("the supervisor's working directory is %q (%v), want the first user's %q", cwd, err, wd)
	}
	cmdline, _ := os.ReadFile(proc + "cmdline")
	if args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"); len(args) != 1 {
		t.Errorf("the supervisor got arguments %q, want none", args[1:])
	}
	h.Release()
	proctest.WaitGone(t, sup, 20*time.Second, "supervisor")
	e.waitAllGone(20 * time.Second)
}
