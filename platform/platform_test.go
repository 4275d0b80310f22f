//go:build linux || darwin || freebsd

package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

var initTime = time.Now()

func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		helperMain(os.Getenv("HELPER_MODE"))
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// helperMain is the child side. Every mode prints "ready" once its signal
// dispositions are in place, so the parent never signals too early.
func helperMain(mode string) {
	switch mode {
	case "sleep":
		fmt.Println("ready")
		time.Sleep(time.Hour) // killed by the test; the hour is only a bound
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "signals":
		// Reports every SIGTERM/SIGWINCH on stdout, in arrival order; exits 0
		// on SIGTERM. The kernel delivers pending standard signals lowest
		// number first (TERM=15 before WINCH=28) and Go's signal loop keeps
		// that order, so a TERM sent before a WINCH is always printed first.
		ch := make(chan os.Signal, 16)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGWINCH)
		fmt.Println("ready")
		for s := range ch {
			if s == syscall.SIGTERM {
				fmt.Println("TERM")
				os.Exit(0)
			}
			fmt.Println("WINCH")
		}
	case "bound-parent":
		// Starts a grandchild bound to this process, reports its identity,
		// then waits to be killed.
		cmd := helperCmd("sleep")
		r, w, err := os.Pipe()
		if err != nil {
			fatalHelper(err)
		}
		cmd.Stdout = w
		if err := StartBound(cmd); err != nil {
			fatalHelper(err)
		}
		w.Close()
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil || line != "ready\n" {
			fatalHelper(fmt.Errorf("grandchild said %q: %v", line, err))
		}
		id, err := Lookup(cmd.Process.Pid)
		if err != nil {
			fatalHelper(err)
		}
		fmt.Printf("%d %d\n", id.PID, id.StartTime)
		time.Sleep(time.Hour)
	default:
		if h, ok := helperModes[mode]; ok {
			h()
			return
		}
		fatalHelper(fmt.Errorf("unknown HELPER_MODE %q", mode))
	}
}

// helperModes holds per-OS helper modes (registered by init in *_test.go).
var helperModes = map[string]func(){}

func fatalHelper(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(3)
}

func helperCmd(mode string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=1", "HELPER_MODE="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

type helper struct {
	cmd *exec.Cmd
	out *bufio.Reader
	r   *os.File
	id  Identity
}

// line reads one stdout line from the helper, bounded by a read deadline.
func (h *helper) line(t *testing.T) string {
	t.Helper()
	if err := h.r.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	s, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("read from helper %d: %v (got %q)", h.cmd.Process.Pid, err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// wait reaps the helper, bounded: after 10 s it is killed and the test fails.
func (h *helper) wait(t *testing.T) error {
	t.Helper()
	if h.cmd.ProcessState != nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
		t.Errorf("helper %d did not exit within 10 s", h.cmd.Process.Pid)
		return errors.New("timeout")
	}
}

// startHelper starts a helper in mode, waits for its "ready" line and
// registers cleanup (kill + reap by pid).
func startHelper(t *testing.T, mode string, start func(*exec.Cmd) error) *helper {
	t.Helper()
	cmd := helperCmd(mode)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	if start == nil {
		// Linux: the helper dies with the test binary even if a test times
		// out before its cleanup runs.
		BindToParent(cmd)
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	w.Close()
	h := &helper{cmd: cmd, out: bufio.NewReader(r), r: r}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = h.wait(t)
		r.Close()
	})
	if mode != "bound-parent" {
		if got := h.line(t); got != "ready" {
			t.Fatalf("helper said %q, want ready", got)
		}
	}
	h.id, err = Lookup(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestStartTimeSelfStableAndDistinct(t *testing.T) {
	s1 := Self()
	st, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s1.PID != os.Getpid() || s1.StartTime == 0 || st != s1.StartTime || Self() != s1 {
		t.Fatalf("self %v, StartTime %d: not stable", s1, st)
	}
	if !s1.Alive() || !Alive(s1.PID) {
		t.Fatal("self not alive")
	}
	// Start times have clock-tick resolution (10 ms on Linux): make sure the
	// child starts at least a few ticks after us. Not synchronisation.
	if d := 50*time.Millisecond - time.Since(initTime); d > 0 {
		time.Sleep(d)
	}
	h := startHelper(t, "sleep", nil)
	if h.id.StartTime <= s1.StartTime {
		t.Fatalf("child start %d not after ours %d", h.id.StartTime, s1.StartTime)
	}
	again, err := Lookup(h.id.PID)
	if err != nil || again != h.id {
		t.Fatalf("lookup again = %v, %v; want %v", again, err, h.id)
	}
}

func TestDeadProcess(t *testing.T) {
	h := startHelper(t, "sleep", nil)
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = h.wait(t)
	pid := h.id.PID
	if _, err := Lookup(pid); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("Lookup(dead) = %v, want ErrNoProcess", err)
	}
	if _, err := StartTime(pid); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("StartTime(dead) = %v, want ErrNoProcess", err)
	}
	if Alive(pid) || h.id.Alive() {
		t.Fatal("dead process reported alive")
	}
	if err := h.id.Terminate(); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("Terminate(dead) = %v, want ErrNoProcess", err)
	}
	if err := h.id.Kill(); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("Kill(dead) = %v, want ErrNoProcess", err)
	}
	if err := h.id.Stop(time.Second); err != nil {
		t.Fatalf("Stop(dead) = %v, want nil", err)
	}
	if err := h.id.Wait(ctxFor(t, time.Second)); err != nil {
		t.Fatalf("Wait(dead) = %v", err)
	}
	if _, err := Lookup(-1); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("Lookup(-1) = %v", err)
	}
}

// A zombie (exited, not yet reaped) still answers kill(pid, 0), but the
// identity is gone: Wait returns, Lookup says ErrNoProcess.
func TestZombieCountsAsGone(t *testing.T) {
	h := startHelper(t, "sleep", nil)
	if err := unix.Kill(h.id.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := h.id.Wait(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Wait on zombie child: %v", err)
	}
	if !Alive(h.id.PID) {
		t.Fatal("unreaped child: Alive(pid) should still be true (kill(pid,0) succeeds)")
	}
	if h.id.Alive() {
		t.Fatal("zombie identity reported alive")
	}
	if _, err := Lookup(h.id.PID); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("Lookup(zombie) = %v", err)
	}
}

// Simulated PID reuse: an identity with the right PID but another start time
// must never be signalled.
func TestPIDReuseNoSignalSent(t *testing.T) {
	h := startHelper(t, "signals", nil)
	fake := Identity{PID: h.id.PID, StartTime: h.id.StartTime + 1}
	if fake.Alive() {
		t.Fatal("fake identity reported alive")
	}
	if err := fake.Terminate(); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("Terminate = %v, want ErrIdentityChanged", err)
	}
	if err := fake.Kill(); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("Kill = %v, want ErrIdentityChanged", err)
	}
	if err := fake.Stop(time.Second); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("Stop = %v, want ErrIdentityChanged", err)
	}
	if err := fake.Wait(ctxFor(t, time.Second)); err != nil {
		t.Fatalf("Wait(fake) = %v, want nil (that identity is gone)", err)
	}
	// Barrier: a WINCH sent now is reported after any TERM sent earlier.
	if err := unix.Kill(h.id.PID, unix.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	if got := h.line(t); got != "WINCH" {
		t.Fatalf("child reported %q before the barrier: it was signalled", got)
	}
	if !h.id.Alive() {
		t.Fatal("child died")
	}
	// The real identity still works.
	if err := h.id.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := h.line(t); got != "TERM" {
		t.Fatalf("child reported %q, want TERM", got)
	}
	if err := h.wait(t); err != nil {
		t.Fatalf("child exit: %v, want clean exit after TERM", err)
	}
}

func TestStopGraceful(t *testing.T) {
	h := startHelper(t, "signals", nil)
	if err := h.id.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if h.id.Alive() {
		t.Fatal("still alive after Stop")
	}
	if err := h.wait(t); err != nil {
		t.Fatalf("exit = %v, want 0 (handled SIGTERM, not SIGKILL)", err)
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	h := startHelper(t, "ignore-term", nil)
	if err := h.id.Stop(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	err := h.wait(t)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("exit = %v, want killed", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("exit status %v, want SIGKILL", ws)
	}
}

func TestWaitTimeout(t *testing.T) {
	h := startHelper(t, "sleep", nil)
	if err := h.id.Wait(ctxFor(t, 30*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on live process = %v, want DeadlineExceeded", err)
	}
}

func TestDetachNewSession(t *testing.T) {
	h := startHelper(t, "sleep", func(c *exec.Cmd) error { Detach(c); return c.Start() })
	sid, err := unix.Getsid(h.id.PID)
	if err != nil {
		t.Fatal(err)
	}
	ours, _ := unix.Getsid(0)
	if sid == ours || sid != h.id.PID {
		t.Fatalf("child sid %d, ours %d: want child to lead a new session", sid, ours)
	}
}

func TestStartBoundGrandchildDiesWithParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signal is Linux only; other unix kill the process group")
	}
	mid := startHelper(t, "bound-parent", nil)
	var g Identity
	if _, err := fmt.Sscanf(mid.line(t), "%d %d", &g.PID, &g.StartTime); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Kill() })
	if !g.Alive() {
		t.Fatal("grandchild not alive")
	}
	if err := mid.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = mid.wait(t)
	if err := g.Wait(ctxFor(t, time.Second)); err != nil {
		t.Fatalf("grandchild %v outlived its killed parent: %v", g, err)
	}
}

// StartBound in this process: the child runs, and the thread-holding
// goroutine ends once the child is reaped (goleak checks at exit).
func TestStartBoundLocal(t *testing.T) {
	h := startHelper(t, "sleep", StartBound)
	if err := h.id.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	_ = h.wait(t)
}

func TestRSS(t *testing.T) {
	if runtime.GOOS == "darwin" {
		if _, err := RSS(os.Getpid()); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("RSS on darwin = %v, want ErrUnsupported", err)
		}
		return
	}
	n, err := RSS(os.Getpid())
	if err != nil || n < 1<<20 {
		t.Fatalf("RSS(self) = %d, %v; want > 1 MiB", n, err)
	}
}

func BenchmarkIdentityAlive(b *testing.B) {
	id := Self()
	for b.Loop() {
		if !id.Alive() {
			b.Fatal("not alive")
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := Lookup(pid); err != nil {
			b.Fatal(err)
		}
	}
}
