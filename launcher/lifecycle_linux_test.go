//go:build linux

package launcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// One acquire and release: the service starts, works, and is gone after.
func TestAcquireRelease(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	info := h.Info()
	if info.PID <= 0 || info.Port <= 0 || info.Data["serial"] == "" {
		t.Fatalf("Info = %+v", info)
	}
	if pid, err := ping(testCtx(t, 10*time.Second), info.Port); err != nil || pid != info.PID {
		t.Fatalf("ping the service: pid %d, %v; want pid %d", pid, err, info.PID)
	}
	if n, err := svc.Count(); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
	host := h.Supervisor()
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	if e.count("first") != 1 || e.count("last") != 1 {
		t.Errorf("first %d, last %d; want 1 and 1", e.count("first"), e.count("last"))
	}
	if _, err := os.Lstat(e.hintPath(toyName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hint still there after the service stopped: %v", err)
	}
	e.waitAllGone(5 * time.Second)
}

// Must show 1: 64 processes acquire at once, 10 rounds: OnFirstAcquire ran
// once per round and every process saw the same service.
func TestStorm(t *testing.T) {
	const procs, rounds = 64, 10
	e := newEnv(t)
	ts := time.Now()
	ps := startAcquirers(t, e, procs, toyName)
	t.Logf("start %v", time.Since(ts))
	for round := 1; round <= rounds; round++ {
		ctx := testCtx(t, 2*time.Minute)
		// All 64 are blocked reading stdin; these writes release them
		// within microseconds of each other.
		t0 := time.Now()
		for _, p := range ps {
			p.send(t, "acquire")
		}
		var first reply
		for i, p := range ps {
			r := p.reply(t, ctx)
			if r.Err != "" {
				t.Fatalf("round %d: acquirer %d: %s", round, i, r.Err)
			}
			if i == 0 {
				first = r
				continue
			}
			a, _ := json.Marshal(first)
			b, _ := json.Marshal(r)
			if string(a) != string(b) {
				t.Fatalf("round %d: acquirers saw different services:\n%s\n%s", round, a, b)
			}
		}
		if first.Info.PID <= 0 || first.Info.Port <= 0 || first.Info.Data["serial"] == "" {
			t.Fatalf("round %d: info %+v", round, first.Info)
		}
		if pid, err := ping(ctx, first.Info.Port); err != nil || pid != first.Info.PID {
			t.Fatalf("round %d: service does not answer: pid %d, %v", round, pid, err)
		}
		if n := e.count("first"); n != round {
			t.Fatalf("round %d: OnFirstAcquire ran %d times in all, want %d", round, n, round)
		}
		t1 := time.Now()
		for _, p := range ps {
			p.send(t, "release")
		}
		for i, p := range ps {
			if r := p.reply(t, ctx); r.Err != "" || !r.Released {
				t.Fatalf("round %d: acquirer %d release: %+v", round, i, r)
			}
		}
		t2 := time.Now()
		proctest.WaitGone(t, first.Host, 10*time.Second, fmt.Sprintf("round %d supervisor", round))
		t.Logf("round %d: acquire %v release %v exit %v", round, t1.Sub(t0), t2.Sub(t1), time.Since(t2))
		if n := e.count("last"); n != round {
			t.Fatalf("round %d: OnLastRelease ran %d times in all, want %d", round, n, round)
		}
	}
	if n := e.count("double"); n != 0 {
		t.Errorf("a second copy of the service was started %d times", n)
	}
	e.waitAllGone(5 * time.Second)
}

// Must show 2: every holder is killed with SIGKILL: OnLastRelease runs once
// within linger + 1 s, the hint is gone and no service process is left.
func TestAllHoldersKilled(t *testing.T) {
	e := newEnv(t)
	ps := startAcquirers(t, e, 3, toyLingerName)
	ctx := testCtx(t, time.Minute)
	for _, p := range ps {
		p.send(t, "acquire")
	}
	var r reply
	for _, p := range ps {
		if r = p.reply(t, ctx); r.Err != "" {
			t.Fatal(r.Err)
		}
	}
	child, err := platform.Lookup(r.Info.PID)
	if err != nil {
		t.Fatalf("service process: %v", err)
	}
	if n, err := toyService(toyLingerName).Count(); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3", n, err)
	}
	killed := time.Now()
	for _, p := range ps {
		p.cmd.Process.Kill()
	}
	for _, p := range ps {
		p.cmd.Wait()
	}
	proctest.WaitGone(t, r.Host, toyLinger+time.Second-time.Since(killed), "supervisor after every holder was killed")
	took := time.Since(killed)
	t.Logf("supervisor gone %v after the kills (linger %v)", took, toyLinger)
	if took < toyLinger {
		t.Errorf("service stopped after %v, before its linger of %v", took, toyLinger)
	}
	if n := e.count("last"); n != 1 {
		t.Errorf("OnLastRelease ran %d times, want 1", n)
	}
	if child.Alive() {
		t.Errorf("service process %v still alive", child)
	}
	if _, err := os.Lstat(e.hintPath(toyLingerName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hint still there: %v", err)
	}
	e.waitAllGone(time.Second)
}

// Within the linger a new acquirer gets the same service back.
func TestLingerKeepsService(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyLingerName)
	h := acquire(t, svc)
	first := h.Supervisor()
	h.Release()
	h2 := acquire(t, svc)
	if h2.Supervisor() != first {
		t.Errorf("re-acquire within the linger started a new service")
	}
	host := h2.Supervisor()
	h2.Release()
	proctest.WaitGone(t, host, toyLinger+5*time.Second, "supervisor")
	if e.count("first") != 1 || e.count("last") != 1 {
		t.Errorf("first %d, last %d; want 1, 1", e.count("first"), e.count("last"))
	}
	e.waitAllGone(time.Second)
}

// Must show 3: the last holder releases while a new acquirer arrives, 200
// times: never two live services (the toy's exclusive lock would make the
// second OnFirstAcquire fail loudly), and every acquirer gets a working one.
func TestZeroCrossingRace(t *testing.T) {
	const iterations = 200
	e := newEnv(t)
	svc := toyService(toyLightName)
	ctx := testCtx(t, 4*time.Minute)
	holder := acquire(t, svc)
	starts := 0
	for i := range iterations {
		var (
			next *launcher.Handle
			err  error
			wg   sync.WaitGroup
		)
		go1 := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go1
			if i%3 == 1 {
				time.Sleep(time.Duration(i%7) * 100 * time.Microsecond)
			}
			next, err = svc.Acquire(ctx)
		}()
		close(go1)
		if i%3 == 2 {
			time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		}
		if rerr := holder.Release(); rerr != nil {
			t.Fatalf("iteration %d: Release: %v", i, rerr)
		}
		wg.Wait()
		if err != nil {
			t.Fatalf("iteration %d: Acquire: %v", i, err)
		}
		if pid, perr := ping(ctx, next.Info().Port); perr != nil || pid != next.Supervisor().PID {
			t.Fatalf("iteration %d: the acquired service does not work: pid %d, %v (host %v)", i, pid, perr, next.Supervisor())
		}
		if next.Supervisor() != holder.Supervisor() {
			starts++
		}
		holder = next
	}
	host := holder.Supervisor()
	holder.Release()
	proctest.WaitGone(t, host, 10*time.Second, "last supervisor")
	t.Logf("%d iterations, %d new services", iterations, starts)

	evs := e.events()
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.kind)
	}
	if n := e.count("double"); n != 0 {
		t.Fatalf("two live services %d times", n)
	}
	// Strict alternation: each service stopped before the next started.
	for j, k := range kinds {
		want := "first"
		if j%2 == 1 {
			want = "last"
		}
		if k != want {
			t.Fatalf("event %d is %q, want %q: %v", j, k, want, kinds)
		}
	}
	if len(kinds) != 2*(starts+1) {
		t.Errorf("%d events for %d services", len(kinds), starts+1)
	}
	e.waitAllGone(5 * time.Second)
}

// The acquirer that is starting the service is killed while OnFirstAcquire
// runs: the next acquirer must neither start a second copy nor fail; it
// gets the copy that the orphaned supervisor finishes starting.
func TestStarterKilledDuringStart(t *testing.T) {
	e := newEnv(t)
	ps := startAcquirers(t, e, 1, toySlowName)
	ps[0].send(t, "acquire")
	e.waitEvent("starting", 30*time.Second)
	ps[0].cmd.Process.Kill()
	ps[0].cmd.Wait()

	h := acquire(t, toyService(toySlowName))
	if pid, err := ping(testCtx(t, 10*time.Second), h.Info().Port); err != nil || pid != h.Supervisor().PID {
		t.Fatalf("service does not work: %d, %v", pid, err)
	}
	if n := e.count("double"); n != 0 {
		t.Errorf("a second copy was started %d times", n)
	}
	if n := e.count("first"); n != 1 {
		t.Errorf("OnFirstAcquire completed %d times, want 1", n)
	}
	host := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

// fakeHost is a listener in the test process that answers the handshake
// with a given nonce, for hints that would verify but for one field.
type fakeHost struct {
	port     int
	token    string
	sessions chan string // verbs of handshakes that got "ok"
}

func newFakeHost(t *testing.T, nonce string) *fakeHost {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHost{port: ln.Addr().(*net.TCPAddr).Port, token: handshake.NewSecret(), sessions: make(chan string, 100)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if req, err := handshake.ReadRequest(c, f.token); err == nil {
				f.sessions <- req.Verb
				handshake.Accept(c, nonce)
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return f
}

// Must show 4: stale hints are replaced, never trusted, crash nothing.
func TestStaleHints(t *testing.T) {
	exited := func(t *testing.T) platform.Identity {
		// A process that has exited: its pid is dead (or, rarely, reused;
		// both are stale).
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := platform.Lookup(p.Pid)
		p.Wait()
		if id.PID == 0 {
			id = platform.Identity{PID: p.Pid, StartTime: 1}
		}
		return id
	}
	// valid writes a hint that verifies against fh, then edits it.
	valid := func(e *testEnv, fh *fakeHost, nonce string, edit func(*discovery.Hint)) {
		h := &discovery.Hint{Name: toyLightName, Key: "k", Host: platform.Self(), Port: fh.port, Token: fh.token, Nonce: nonce}
		if edit != nil {
			edit(h)
		}
		if err := discovery.Write(dirOf(e.run), h); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// plant writes the stale hint; it returns a check to run afterwards.
		plant func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(t *testing.T)
		// dials is whether verifying may dial the fake host at all.
		dials bool
	}{
		{name: "dead pid", plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			valid(e, fh, nonce, func(h *discovery.Hint) { h.Host = exited(t) })
			return nil
		}},
		{name: "pid reused", plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			valid(e, fh, nonce, func(h *discovery.Hint) { h.Host.StartTime++ })
			return nil
		}},
		{name: "wrong nonce", dials: true, plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			valid(e, fh, handshake.NewSecret(), nil)
			return nil
		}},
		{name: "corrupt", plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			os.WriteFile(e.hintPath(toyLightName), []byte(`{"version":1,"name":"toy-light","port":`), 0o600)
			return nil
		}},
		{name: "empty", plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			os.WriteFile(e.hintPath(toyLightName), nil, 0o600)
			return nil
		}},
		{name: "10 MiB", plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			os.WriteFile(e.hintPath(toyLightName), []byte(strings.Repeat("{", 10<<20)), 0o600)
			return nil
		}},
		{name: "other version", plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			valid(e, fh, nonce, func(h *discovery.Hint) { h.Version = handshake.Version + 1 })
			return nil
		}},
		{name: "symlink", plant: func(t *testing.T, e *testEnv, fh *fakeHost, nonce string) func(*testing.T) {
			// The link points at a hint that would verify: only the
			// symlink refusal keeps it from being trusted.
			other := filepath.Join(t.TempDir(), "elsewhere")
			os.Mkdir(other, 0o700)
			h := &discovery.Hint{Name: toyLightName, Key: "k", Host: platform.Self(), Port: fh.port, Token: fh.token, Nonce: nonce}
			if err := discovery.Write(dirOf(other), h); err != nil {
				t.Fatal(err)
			}
			target := discovery.Path(other, toyLightName)
			before, _ := os.ReadFile(target)
			if err := os.Symlink(target, e.hintPath(toyLightName)); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				if after, err := os.ReadFile(target); err != nil || string(after) != string(before) {
					t.Errorf("the symlink's target was changed or removed: %v", err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if err := platform.EnsurePrivateDir(e.run); err != nil {
				t.Fatal(err)
			}
			nonce := handshake.NewSecret()
			fh := newFakeHost(t, nonce)
			after := tc.plant(t, e, fh, nonce)

			svc := toyService(toyLightName)
			h := acquire(t, svc)
			hint := liveHint(t, svc)
			if hint.Port == fh.port || hint.Nonce == nonce || hint.Host.PID == os.Getpid() {
				t.Fatalf("Acquire trusted the stale hint: %+v", hint)
			}
			if pid, err := ping(testCtx(t, 10*time.Second), h.Info().Port); err != nil || pid != hint.Host.PID {
				t.Fatalf("fresh service does not work: %d, %v", pid, err)
			}
			if n := e.count("first"); n != 1 {
				t.Errorf("OnFirstAcquire ran %d times, want 1", n)
			}
			// The file now is the fresh supervisor's regular hint.
			if fi, err := os.Lstat(e.hintPath(toyLightName)); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("hint after replacement: %v, %v", fi, err)
			}
			if got, err := discovery.Read(dirOf(e.run), toyLightName); err != nil || got.Nonce != hint.Nonce {
				t.Errorf("hint on disk is not the new one: %v", err)
			}
			close(fh.sessions)
			var verbs []string
			for v := range fh.sessions {
				verbs = append(verbs, v)
			}
			fh.sessions = make(chan string, 100)
			if !tc.dials && len(verbs) > 0 {
				t.Errorf("the stale hint's port was dialled: %v", verbs)
			}
			if slices.Contains(verbs, handshake.VerbSession) {
				t.Errorf("a session was opened to the stale hint's listener")
			}
			if after != nil {
				after(t)
			}
			host := hint.Host
			h.Release()
			proctest.WaitGone(t, host, 10*time.Second, "supervisor")
			if n := e.count("last"); n != 1 {
				t.Errorf("OnLastRelease ran %d times, want 1", n)
			}
			e.waitAllGone(5 * time.Second)
		})
	}
}

// Must show 5: a runtime dir that is group/other accessible or owned by
// another user is refused with a clear error, and nothing is written.
func TestInsecureRuntimeDir(t *testing.T) {
	check := func(t *testing.T, e *testEnv, want string) {
		t.Helper()
		svc := toyService(toyLightName)
		_, err := svc.Acquire(testCtx(t, 10*time.Second))
		if !errors.Is(err, platform.ErrInsecureDir) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), e.run) {
			t.Errorf("Acquire: %v; want ErrInsecureDir naming %s and saying %q", err, e.run, want)
		}
		if _, err := svc.Count(); !errors.Is(err, platform.ErrInsecureDir) {
			t.Errorf("Count: %v; want ErrInsecureDir", err)
		}
		if err := launcher.Supervise(testCtx(t, 10*time.Second), svc); !errors.Is(err, platform.ErrInsecureDir) {
			t.Errorf("Supervise: %v; want ErrInsecureDir", err)
		}
		if ents, _ := os.ReadDir(e.run); len(ents) != 0 {
			t.Errorf("files were written into the refused dir: %v", ents)
		}
		if ents, _ := os.ReadDir(e.state); len(ents) != 0 {
			t.Errorf("files were written into the state dir: %v", ents)
		}
		if e.count("first") != 0 {
			t.Error("a service was started")
		}
	}
	t.Run("mode 0777", func(t *testing.T) {
		e := newEnv(t)
		if err := os.Mkdir(e.run, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(e.run, 0o777)
		check(t, e, "chmod 700")
		if fi, _ := os.Stat(e.run); fi.Mode().Perm() != 0o777 {
			t.Errorf("the dir's mode was changed to %v", fi.Mode().Perm())
		}
	})
	t.Run("mode 0750", func(t *testing.T) {
		e := newEnv(t)
		os.Mkdir(e.run, 0o700)
		os.Chmod(e.run, 0o750)
		check(t, e, "chmod 700")
	})
	t.Run("other owner", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to give a directory to another user (uid 65534)")
		}
		e := newEnv(t)
		os.Mkdir(e.run, 0o700)
		if err := os.Chown(e.run, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		check(t, e, "owned by uid 65534")
	})
	t.Run("symlink", func(t *testing.T) {
		e := newEnv(t)
		real := filepath.Join(t.TempDir(), "real")
		os.Mkdir(real, 0o700)
		if err := os.Symlink(real, e.run); err != nil {
			t.Fatal(err)
		}
		check(t, e, "symlink")
		if ents, _ := os.ReadDir(real); len(ents) != 0 {
			t.Errorf("files were written through the symlink: %v", ents)
		}
	})
}

// Must show 6a: the service process is killed with SIGKILL while in use:
// OnRecover runs and Handle.Info shows the new service.
func TestServiceKilledRecovers(t *testing.T) {
	e := newEnv(t)
	h := acquire(t, toyService(toyName))
	old := h.Info()
	id, err := platform.Lookup(old.PID)
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Kill(); err != nil {
		t.Fatal(err)
	}
	// No event tells us when the supervisor republished; poll the API under
	// test, bounded.
	info := waitInfoChange(t, h, old.PID, 10*time.Second)
	if info.Port == 0 || info.Data["serial"] == old.Data["serial"] {
		t.Errorf("new info %+v, old %+v", info, old)
	}
	if pid, err := ping(testCtx(t, 10*time.Second), info.Port); err != nil || pid != info.PID {
		t.Errorf("the recovered service does not answer: %d, %v", pid, err)
	}
	if n := e.count("recover"); n != 1 {
		t.Errorf("OnRecover ran %d times, want 1", n)
	}
	// A new acquirer sees the recovered service too.
	h2 := acquire(t, toyService(toyName))
	if got := h2.Info(); got.PID != info.PID || got.Port != info.Port {
		t.Errorf("new acquirer sees %+v, want %+v", got, info)
	}
	host := h.Supervisor()
	h.Release()
	h2.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	if e.count("first") != 1 || e.count("last") != 1 {
		t.Errorf("first %d, last %d; want 1, 1", e.count("first"), e.count("last"))
	}
	e.waitAllGone(5 * time.Second)
}

// The service dies while in use and the last user leaves while OnRecover
// runs: the drain gives the hint up first, and the recovery that ends
// after it must not publish it again (the host would exit and leave a
// hint naming it: seen once in CI as TestReopenAtOnce/tcp's leftover
// hint, a tcp backend that exited as its last window left).
func TestRecoverDuringDrainLeavesNoHint(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	host := h.Supervisor()
	release := e.hold(recoverHold)
	id, err := platform.Lookup(h.Info().PID)
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Kill(); err != nil {
		t.Fatal(err)
	}
	e.waitEvent("recovering", 10*time.Second) // OnRecover holds the hooks
	h.Release()
	proctest.WaitFor(t, 10*time.Second, "the drain to give the hint up", func() error {
		if _, err := os.Lstat(e.hintPath(svc.Name)); err == nil {
			return errors.New("the hint is still there")
		}
		return nil
	})
	release() // the recovery ends, after the drain removed the hint
	proctest.WaitGone(t, host, 20*time.Second, "supervisor")
	if _, err := os.Lstat(e.hintPath(svc.Name)); err == nil {
		b, _ := os.ReadFile(e.hintPath(svc.Name))
		t.Fatalf("the supervisor exited and left its hint: %s", b)
	}
	e.waitAllGone(10 * time.Second)
}

// waitInfoChange polls Handle.Info (no event says when the supervisor
// republished), bounded.
func waitInfoChange(t *testing.T, h *launcher.Handle, oldPID int, d time.Duration) launcher.Info {
	t.Helper()
	var info launcher.Info
	proctest.Eventually(t, d, fmt.Sprintf("Info to show another service process than %d", oldPID), func() bool {
		info = h.Info()
		return info.PID != oldPID
	})
	return info
}

// stopProcess stops pid with SIGSTOP and waits until it is stopped: kill
// returns before every thread of the target has stopped (one thread takes
// the signal and then stops the others), and a thread that is still running
// could answer a ping meanwhile. /proc is polled, bounded: there is no event.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 5*time.Second, fmt.Sprintf("every thread of process %d to stop after SIGSTOP", pid), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.LastIndexByte(string(b), ')'); i < 0 || !strings.HasPrefix(string(b[i:]), ") T") {
			return false
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		for _, task := range tasks {
			tb, _ := os.ReadFile(task)
			if j := strings.LastIndexByte(string(tb), ')'); j > 0 && !strings.HasPrefix(string(tb[j:]), ") T") {
				return false
			}
		}
		return true
	})
}

// A service process that stops answering (SIGSTOP: alive but hung) fails
// the periodic health check; OnRecover replaces it, exactly once.
func TestHealthCheckRecovers(t *testing.T) {
	e := newEnv(t)
	h := acquire(t, toyService(toyHealthName))
	old := h.Info()
	stopProcess(t, old.PID)
	info := waitInfoChange(t, h, old.PID, 10*time.Second)
	if pid, err := ping(testCtx(t, 10*time.Second), info.Port); err != nil || pid != info.PID {
		t.Errorf("the recovered service does not answer: %d, %v", pid, err)
	}
	if id, err := platform.Lookup(old.PID); err == nil {
		t.Errorf("the hung service process %v was not ended", id)
	}
	host := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	if n := e.count("recover"); n != 1 {
		t.Errorf("OnRecover ran %d times, want 1", n)
	}
	if e.count("first") != 1 || e.count("last") != 1 {
		t.Errorf("first %d, last %d; want 1, 1", e.count("first"), e.count("last"))
	}
	e.waitAllGone(5 * time.Second)
}

// Issue 14: every hook runs in the supervisor, OnHealthCheck too: Acquire
// never calls it in the acquirer (the supervisor has its own copy of the
// Service; this process's hook must stay untouched).
func TestAcquireRunsNoHook(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	var calls atomic.Int32
	svc.Hooks.OnHealthCheck = func(ctx context.Context, info launcher.Info) error {
		calls.Add(1)
		return errors.New("must not run in an acquirer")
	}
	h := acquire(t, svc)
	h2 := acquire(t, svc)
	if n := calls.Load(); n != 0 {
		t.Errorf("OnHealthCheck ran %d times in the acquirer, want 0", n)
	}
	host := h.Supervisor()
	h.Release()
	h2.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

// Issue 14: the ctx given to OnFirstAcquire outlives the hook. The toy
// starts its child with exec.CommandContext(ctx, ...); the child still
// answers after the hook returned, and OnLastRelease finds that ctx still
// live (so exec.CommandContext never killed the child in between).
func TestHookCtxOutlivesHook(t *testing.T) {
	e := newEnv(t)
	h := acquire(t, toyService(toyName))
	info := h.Info()
	if pid, err := ping(testCtx(t, 5*time.Second), info.Port); err != nil || pid != info.PID {
		t.Errorf("the service started with exec.CommandContext does not answer: %d, %v", pid, err)
	}
	host := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	var last []event
	for _, ev := range e.events() {
		if ev.kind == "last" {
			last = append(last, ev)
		}
	}
	if len(last) != 1 || last[0].kv["ctx"] != "live" {
		t.Errorf("last events %+v, want one with OnFirstAcquire's ctx live (ctx=live)", last)
	}
	e.waitAllGone(5 * time.Second)
}

// Issue 14: a failing OnRecover is tried 3 times with back-off (0.5 s, 1 s),
// then the supervisor shuts down; not called 100 times a second.
func TestFailingRecoverBacksOff(t *testing.T) {
	e := newEnv(t)
	h := acquire(t, toyService(toyBadRecName))
	host := h.Supervisor()
	defer h.Release()
	start := time.Now()
	if err := syscall.Kill(h.Info().PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proctest.WaitGone(t, host, 15*time.Second, "supervisor")
	took := time.Since(start)
	if n := e.count("recover"); n != 3 {
		t.Errorf("OnRecover ran %d times, want 3", n)
	}
	if took < 1500*time.Millisecond {
		t.Errorf("3 OnRecover attempts within %v, want back-off of at least 1.5 s", took)
	}
	h.Release()
	e.waitAllGone(5 * time.Second)
}

// Must show 6b: the supervisor is killed with SIGKILL: its service process
// is gone within 1 s, and the next Acquire starts a fresh service.
func TestSupervisorKilled(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	host := h.Supervisor()
	child, err := platform.Lookup(h.Info().PID)
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	proctest.WaitGone(t, child, time.Second, "service process after its supervisor was killed")
	t.Logf("service process gone %v after the supervisor was killed", time.Since(killed))

	// The handle still holds its reference; a new acquirer (here the same
	// process, as a second user) must not trust the dead supervisor's hint.
	h2 := acquire(t, svc)
	if h2.Supervisor() == host {
		t.Fatalf("Acquire returned the killed supervisor")
	}
	if pid, err := ping(testCtx(t, 10*time.Second), h2.Info().Port); err != nil || pid != h2.Info().PID {
		t.Fatalf("fresh service does not answer: %d, %v", pid, err)
	}
	if n := e.count("first"); n != 2 {
		t.Errorf("OnFirstAcquire ran %d times, want 2", n)
	}
	h.Release()
	host2 := h2.Supervisor()
	h2.Release()
	proctest.WaitGone(t, host2, 10*time.Second, "second supervisor")
	if n := e.count("last"); n != 1 {
		t.Errorf("OnLastRelease ran %d times, want 1 (the killed supervisor never ran it)", n)
	}
	e.waitAllGone(5 * time.Second)
}

// Must show 8a: a connection with a missing or wrong token is closed before
// any byte reaches Serve.
func TestUnauthenticatedConnectionsClosed(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	hint := liveHint(t, svc)
	ctx := testCtx(t, 30*time.Second)
	for _, tc := range []struct{ name, send string }{
		{"wrong token", handshake.Protocol + " " + handshake.NewSecret() + " 1\nSECRET-PAYLOAD-1\n"},
		{"missing token", handshake.Protocol + " 1\nSECRET-PAYLOAD-2\n"},
		{"empty token", handshake.Protocol + "  1\nSECRET-PAYLOAD-3\n"},
		{"token prefix", handshake.Protocol + " " + hint.Token[:32] + " 1\nSECRET-PAYLOAD-4\n"},
		{"no handshake", "Content-Length: 17\r\n\r\nSECRET-PAYLOAD-5\n"},
		{"other protocol version", "procref/2 " + hint.Token + " 1\nSECRET-PAYLOAD-6\n"},
	} {
		var d net.Dialer
		network, address := hint.Endpoint()
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		c.Close()
		if n != 0 || err == nil {
			t.Errorf("%s: host answered %q, %v; want the connection closed without a byte", tc.name, buf[:n], err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: host kept the connection open", tc.name)
		}
	}
	// Control: an authenticated session does reach Serve.
	sess, err := svc.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(sess.Conn, "AUTHENTICATED\n")
	sess.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _ := sess.Conn.Read(buf)
	if string(buf[:n]) != "echo AUTHENTICATED\n" {
		t.Errorf("session answer %q", buf[:n])
	}
	sess.Conn.Close()
	sess.Release()

	var serves []string
	for _, ev := range e.events() {
		if ev.kind == "serve" {
			serves = append(serves, ev.kv["line"])
		}
	}
	if len(serves) != 1 || !strings.Contains(serves[0], "AUTHENTICATED") {
		t.Errorf("Serve saw %q; want only the authenticated session", serves)
	}
	h.Release()
	proctest.WaitGone(t, hint.Host, 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

// A stop request ends the service even while a session is open, and the
// session is closed rather than keeping the supervisor alive.
func TestStopWithOpenSession(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	ctx := testCtx(t, 30*time.Second)
	sess, err := svc.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Release()
	defer sess.Conn.Close()
	if err := svc.RequestStop(ctx); err != nil {
		t.Fatal(err)
	}
	proctest.WaitGone(t, sess.Supervisor, 10*time.Second, "supervisor after a stop request with a session open")
	sess.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := sess.Conn.Read(make([]byte, 1)); err == nil {
		t.Error("session still open after stop")
	}
	if e.count("last") != 1 {
		t.Errorf("OnLastRelease ran %d times, want 1", e.count("last"))
	}
	e.waitAllGone(5 * time.Second)
}

// Status reports the supervisor's view.
func TestQueryStatus(t *testing.T) {
	newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	st, err := svc.QueryStatus(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != h.Supervisor().PID || st.Port != liveHint(t, svc).Port || st.Count != 1 || st.Info.PID != h.Info().PID {
		t.Errorf("status %+v", st)
	}
	host := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
}

// A hook that fails makes Acquire fail with ErrStartFailed and the log path,
// and leaves nothing running.
func TestStartFailure(t *testing.T) {
	e := newEnv(t)
	if err := platform.EnsurePrivateDir(e.run); err != nil {
		t.Fatal(err)
	}
	// Hold the toy's exclusive lock: its OnFirstAcquire must fail.
	e.doubleOK = true
	f, err := lockExclusive()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = toyService(toyLightName).Acquire(testCtx(t, 30*time.Second))
	if !errors.Is(err, launcher.ErrStartFailed) || !strings.Contains(err.Error(), "another copy") || !strings.Contains(err.Error(), ".log") {
		t.Errorf("Acquire with a failing OnFirstAcquire: %v", err)
	}
	if _, err := os.Lstat(e.hintPath(toyLightName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a hint was published: %v", err)
	}
	e.waitAllGone(5 * time.Second)
}

// BenchmarkAcquireWarm measures Acquire + Release against a service that is
// already up: take the reference, read and verify the hint (pid, start time,
// dial, handshake). It reports the median and the 90th percentile.
func BenchmarkAcquireWarm(b *testing.B) {
	base := b.TempDir()
	b.Setenv("PROCREF_RUNTIME_DIR", filepath.Join(base, "run"))
	b.Setenv("PROCREF_STATE_DIR", filepath.Join(base, "state"))
	svc := toyService(toyLightName)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	holder, err := svc.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	host := holder.Supervisor()
	defer func() {
		holder.Release()
		host.Wait(ctx)
	}()
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		h, err := svc.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		h.Release()
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1e3, "median-µs")
	b.ReportMetric(float64(times[len(times)*9/10].Nanoseconds())/1e3, "p90-µs")
}
