package refcount

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/procref/procref/internal/proctest/privdir"
	"github.com/procref/procref/platform"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"go.uber.org/goleak"
)

// Helper processes: the test binary re-runs itself with
// GO_WANT_HELPER_PROCESS=1; TestMain then runs helperMain instead of the
// tests. A helper reports each step as one line on stdout and holds what it
// took until its stdin reaches EOF (or it is killed).

func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		os.Exit(helperMain())
	}
	goleak.VerifyTestMain(m)
}

func helperMain() int {
	fail := func(format string, args ...any) int {
		fmt.Printf("error: "+format+"\n", args...)
		return 1
	}
	dir, name, key := os.Getenv("RC_DIR"), os.Getenv("RC_NAME"), os.Getenv("RC_KEY")
	impl, err := ParseImpl(os.Getenv("RC_IMPL"))
	if err != nil {
		return fail("%v", err)
	}
	d, err := platform.OpenPrivateDir(dir)
	if err != nil {
		return fail("%v", err)
	}
	defer d.Close()
	opts := Options{Dir: d, Impl: impl}
	switch mode := os.Getenv("RC_MODE"); mode {
	case "acquire":
		c, err := Open(name, key, opts)
		if err != nil {
			return fail("%v", err)
		}
		release, err := c.Acquire()
		if err != nil {
			return fail("%v", err)
		}
		fmt.Println("ready", c.ID())
		io.Copy(io.Discard, os.Stdin)
		if err := release(); err != nil {
			return fail("%v", err)
		}
	case "lock":
		l, err := OpenLock(d, name)
		if err != nil {
			return fail("%v", err)
		}
		if _, err := l.TryLock(); err != nil {
			return fail("%v", err)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
	case "race":
		// Round r: block reading fd 3+r until the test closes the write
		// end (all helpers wake at once), then open the brand-new
		// counter for round r, acquire, and report its id.
		rounds, _ := strconv.Atoi(os.Getenv("RC_ROUNDS"))
		for r := range rounds {
			gate := os.NewFile(uintptr(3+r), "gate")
			io.Copy(io.Discard, gate)
			gate.Close()
			c, err := Open(roundName(name, r), roundKey(key, r), opts)
			if err != nil {
				return fail("round %d: %v", r, err)
			}
			if _, err := c.Acquire(); err != nil {
				return fail("round %d: %v", r, err)
			}
			fmt.Println("round", r, c.ID())
			c.Close()
		}
		io.Copy(io.Discard, os.Stdin)
	default:
		if h, ok := helperModes[mode]; ok {
			return h(opts, name, key)
		}
		return fail("unknown helper mode %q", mode)
	}
	return 0
}

// helperModes holds per-OS helper modes (registered by init in *_test.go).
var helperModes = map[string]func(opts Options, name, key string) int{}

func roundName(name string, r int) string { return fmt.Sprintf("%s-r%d", name, r) }
func roundKey(key string, r int) string   { return fmt.Sprintf("%s/round%d", key, r) }

type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *proctest.SyncBuffer
}

// startHelper starts a helper process; t.Cleanup kills and reaps it.
func startHelper(t testing.TB, env []string, extra ...*os.File) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = extra
	p := &proc{cmd: cmd, lines: make(chan string, 64), stderr: &proctest.SyncBuffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	go func() {
		defer r.Close()
		defer close(p.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			if s := p.stderr.String(); s != "" {
				t.Logf("helper %d stderr:\n%s", p.cmd.Process.Pid, s)
			}
		}
	})
	return p
}

// expect waits (bounded) for the helper's next line, which must start with
// prefix, and returns the rest of it.
func (p *proc) expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("helper %d exited before %q; stderr: %s", p.cmd.Process.Pid, prefix, p.stderr.String())
		}
		rest, found := strings.CutPrefix(line, prefix)
		if !found {
			t.Fatalf("helper %d: got %q, want %q...", p.cmd.Process.Pid, line, prefix)
		}
		return strings.TrimSpace(rest)
	case <-timer.C:
		t.Fatalf("helper %d: no %q line within %v", p.cmd.Process.Pid, prefix, timeout)
	}
	return ""
}

// kill sends SIGKILL (TerminateProcess on Windows) and reaps the process.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %d: %v", p.cmd.Process.Pid, err)
	}
	p.cmd.Wait()
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testCounter names a brand-new counter (random key, so tests never share a
// semaphore set) and registers its removal, which runs after the helpers
// registered later have been killed.
type testCounter struct {
	name, key string
	opts      Options
}

func newTestCounter(t testing.TB, impl Impl) testCounter {
	t.Helper()
	tc := testCounter{name: "t-" + randomHex(t, 6), key: randomHex(t, 32), opts: Options{Dir: privdir.Dir(t), Impl: impl}}
	t.Cleanup(func() { removeCounter(t, tc.name, tc.key, tc.opts) })
	return tc
}

// removeCounter removes the kernel object if it exists, so nothing leaks;
// unlike Counter.Remove it also removes objects that are not private.
func removeCounter(t testing.TB, name, key string, opts Options) {
	var err error
	switch opts.Impl.resolve() {
	case SysV:
		err = forceRemoveSysV(t, opts.Dir, key)
	default:
		err = os.Remove(filepath.Join(opts.Dir.Path(), name+".ref"))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		t.Errorf("cleanup %s: %v", name, err)
	}
}

func (tc testCounter) env(mode string) []string {
	return []string{"RC_MODE=" + mode, "RC_DIR=" + tc.opts.Dir.Path(), "RC_NAME=" + tc.name, "RC_KEY=" + tc.key, "RC_IMPL=" + tc.opts.Impl.String()}
}

func (tc testCounter) open(t testing.TB) *Counter {
	t.Helper()
	c, err := Open(tc.name, tc.key, tc.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// impls are the implementations this platform can run; Linux runs both.
func impls() []Impl {
	if sysvAvailable {
		return []Impl{SysV, FileLock}
	}
	return []Impl{FileLock}
}

func forEachImpl(t *testing.T, f func(t *testing.T, impl Impl)) {
	for _, impl := range impls() {
		t.Run(impl.String(), func(t *testing.T) { f(t, impl) })
	}
}

func mustCount(t testing.TB, c *Counter) int {
	t.Helper()
	n, err := c.Count()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Must show 1: references of killed processes are given back by the kernel.
func TestKilledHoldersAreReleased(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl Impl) {
		tc := newTestCounter(t, impl)
		c := tc.open(t)
		const n = 20
		procs := make([]*proc, n)
		for i := range procs {
			procs[i] = startHelper(t, tc.env("acquire"))
		}
		for _, p := range procs {
			if id := p.expect(t, "ready", 10*time.Second); id != c.ID() {
				t.Fatalf("helper opened %s, we opened %s", id, c.ID())
			}
		}
		if got := mustCount(t, c); got != n {
			t.Fatalf("count = %d, want %d", got, n)
		}
		for _, p := range procs[:n/2] {
			p.kill(t)
		}
		// The kernel gives the killed ones' references back with no event.
		proctest.WaitCount(t, 10*time.Second, n/2, c.Count)

		// WaitZero must keep waiting while references remain.
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		err := c.WaitZero(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitZero with %d holders = %v, want deadline exceeded", n/2, err)
		}

		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- c.WaitZero(ctx) }()
		for _, p := range procs[n/2:] {
			p.kill(t)
		}
		if err := <-done; err != nil {
			t.Fatalf("WaitZero after killing every holder: %v", err)
		}
		if got := mustCount(t, c); got != 0 {
			t.Fatalf("count after WaitZero = %d", got)
		}
	})
}

func TestAcquireInProcess(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl Impl) {
		tc := newTestCounter(t, impl)
		c := tc.open(t)
		if c.Impl() != impl {
			t.Fatalf("Impl() = %v, want %v", c.Impl(), impl)
		}
		var rels []func() error
		for range 3 {
			rel, err := c.Acquire()
			if err != nil {
				t.Fatal(err)
			}
			rels = append(rels, rel)
		}
		if got := mustCount(t, c); got != 3 {
			t.Fatalf("count = %d, want 3", got)
		}
		// release is idempotent.
		for range 2 {
			if err := rels[0](); err != nil {
				t.Fatal(err)
			}
		}
		if got := mustCount(t, c); got != 2 {
			t.Fatalf("count after one release (twice) = %d, want 2", got)
		}
		// A reference outlives Close of the counter it came from.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Count(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Count after Close = %v, want os.ErrClosed", err)
		}
		c2 := tc.open(t)
		if got := mustCount(t, c2); got != 2 {
			t.Fatalf("count via a second handle = %d, want 2", got)
		}
		rels[1]()
		rels[2]()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := c2.WaitZero(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// Must show 2: the startup lock is given back when its holder is killed.
func TestStartupLockHolderKilled(t *testing.T) {
	d := privdir.Dir(t)
	dir := d.Path()
	name := "lock-" + randomHex(t, 4)
	l, err := OpenLock(d, name)
	if err != nil {
		t.Fatal(err)
	}
	p := startHelper(t, []string{"RC_MODE=lock", "RC_DIR=" + dir, "RC_NAME=" + name, "RC_IMPL=auto"})
	p.expect(t, "locked", 10*time.Second)
	pid := p.cmd.Process.Pid

	if _, err := l.TryLock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock while held elsewhere = %v, want ErrLocked", err)
	}
	if got, err := l.Holder(); err != nil || got != pid {
		t.Fatalf("Holder() = %d, %v; want %d", got, err, pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = l.Lock(ctx)
	cancel()
	if !errors.Is(err, ErrLocked) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), fmt.Sprintf("held by pid %d", pid)) {
		t.Fatalf("Lock timing out = %v; want ErrLocked, deadline exceeded and the holder pid %d", err, pid)
	}

	// A waiter blocked in Lock gets the lock within 1 s of the kill.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	type result struct {
		release func() error
		err     error
	}
	done := make(chan result, 1)
	go func() {
		rel, err := l.Lock(ctx)
		done <- result{rel, err}
	}()
	p.kill(t)
	res := <-done
	if res.err != nil {
		t.Fatalf("Lock after the holder was killed: %v", res.err)
	}
	if got, _ := l.Holder(); got != os.Getpid() {
		t.Fatalf("Holder() = %d, want us (%d)", got, os.Getpid())
	}
	// Exclusive within the process too.
	if _, err := l.TryLock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock in the same process = %v, want ErrLocked", err)
	}
	if err := res.release(); err != nil {
		t.Fatal(err)
	}
	res.release() // idempotent
	if got, _ := l.Holder(); got != 0 {
		t.Fatalf("Holder() after release = %d, want 0", got)
	}
	rel, err := l.TryLock()
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	rel()
}

// Must show 3: many processes opening the same brand-new counter at the same
// moment get one kernel object, and every reference counts.
func TestOpenRace(t *testing.T) {
	const procs, rounds = 50, 20
	forEachImpl(t, func(t *testing.T, impl Impl) {
		tc := testCounter{name: "race-" + randomHex(t, 4), key: randomHex(t, 32), opts: Options{Dir: privdir.Dir(t), Impl: impl}}
		for r := range rounds {
			t.Cleanup(func() { removeCounter(t, roundName(tc.name, r), roundKey(tc.key, r), tc.opts) })
		}
		gatesR := make([]*os.File, rounds)
		gatesW := make([]*os.File, rounds)
		for r := range rounds {
			var err error
			if gatesR[r], gatesW[r], err = os.Pipe(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { gatesR[r].Close(); gatesW[r].Close() })
		}
		env := append(tc.env("race"), "RC_ROUNDS="+strconv.Itoa(rounds))
		ps := make([]*proc, procs)
		for i := range ps {
			ps[i] = startHelper(t, env, gatesR...)
		}
		for _, f := range gatesR {
			f.Close() // only the helpers hold the read ends now
		}
		for r := range rounds {
			gatesW[r].Close() // every helper wakes with EOF at once
			ids := map[string]int{}
			for _, p := range ps {
				rest := p.expect(t, fmt.Sprintf("round %d ", r), 20*time.Second)
				ids[rest]++
			}
			if len(ids) != 1 {
				t.Fatalf("round %d: helpers opened %d different objects: %v", r, len(ids), ids)
			}
			c, err := Open(roundName(tc.name, r), roundKey(tc.key, r), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := ids[c.ID()]; !ok {
				t.Fatalf("round %d: helpers opened %v, we opened %s", r, ids, c.ID())
			}
			if n := kernelObjects(t, impl, tc.opts.Dir, roundKey(tc.key, r)); n != 1 && n != -1 {
				t.Fatalf("round %d: %d kernel objects for the key, want 1", r, n)
			}
			if got := mustCount(t, c); got != procs {
				t.Fatalf("round %d: count = %d, want %d", r, got, procs)
			}
			// Remove it now (the helpers keep their lost references
			// until they exit) so that sets do not pile up.
			if err := c.Remove(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Must show 4 (second half): an object removed while held.
func TestRemovedWhileHeld(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl Impl) {
		tc := newTestCounter(t, impl)
		c := tc.open(t)
		release, err := c.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		p := startHelper(t, tc.env("acquire"))
		p.expect(t, "ready", 10*time.Second)
		oldID := c.ID()

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- c.WaitZero(ctx) }()

		other := tc.open(t)
		if err := other.Remove(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrRemoved) {
			t.Fatalf("WaitZero while removed = %v, want ErrRemoved", err)
		}
		if _, err := c.Count(); !errors.Is(err, ErrRemoved) {
			t.Fatalf("Count = %v, want ErrRemoved", err)
		}
		if _, err := c.Acquire(); !errors.Is(err, ErrRemoved) {
			t.Fatalf("Acquire = %v, want ErrRemoved", err)
		}
		if err := release(); err != nil && !errors.Is(err, ErrRemoved) {
			t.Fatalf("release = %v, want nil or ErrRemoved", err)
		}
		// Opening again gives a fresh object; the old references are lost.
		c2 := tc.open(t)
		if got := mustCount(t, c2); got != 0 {
			t.Fatalf("count of the fresh object = %d, want 0", got)
		}
		if impl == SysV && c2.ID() == oldID {
			t.Fatalf("fresh set has the removed set's id %s", oldID)
		}
	})
}

func TestList(t *testing.T) {
	dir := privdir.Dir(t)
	var want []Info
	for i, impl := range impls() {
		tc := newTestCounter(t, impl)
		tc.opts.Dir = dir
		tc.name = fmt.Sprintf("list%d-%s", i, tc.name)
		c := tc.open(t)
		for range i + 1 {
			rel, err := c.Acquire()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rel() })
		}
		want = append(want, Info{Name: tc.name, Impl: impl, Count: i + 1, ID: c.ID()})
	}
	got, err := List(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %+v\nwant   %+v", got, want)
	}
}

func TestListSkipsRemoved(t *testing.T) {
	tc := newTestCounter(t, Auto)
	c := tc.open(t)
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	got, err := List(tc.opts)
	if err != nil || len(got) != 0 {
		t.Fatalf("List after Remove = %+v, %v; want nothing", got, err)
	}
}

func TestOpenValidates(t *testing.T) {
	dir := privdir.Dir(t)
	for _, name := range []string{"", ".hidden", "a/b", "a b", `a\b`, strings.Repeat("x", 201)} {
		if _, err := Open(name, "k", Options{Dir: dir}); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
		if _, err := OpenLock(dir, name); err == nil {
			t.Errorf("OpenLock(%q) succeeded", name)
		}
	}
	if _, err := Open("ok", "", Options{Dir: dir}); err == nil {
		t.Error("Open with an empty key succeeded")
	}
	if _, err := Open("ok", "k", Options{}); err == nil {
		t.Error("Open without Dir succeeded")
	}
}

func TestParseImpl(t *testing.T) {
	for _, impl := range []Impl{Auto, SysV, FileLock} {
		got, err := ParseImpl(impl.String())
		if err != nil || got != impl {
			t.Errorf("ParseImpl(%q) = %v, %v", impl.String(), got, err)
		}
	}
	if _, err := ParseImpl("posix"); err == nil {
		t.Error("ParseImpl(posix) succeeded")
	}
	want := FileLock
	if sysvAvailable {
		want = SysV
	}
	if Auto.resolve() != want {
		t.Errorf("Auto resolves to %v on %s, want %v", Auto.resolve(), runtime.GOOS, want)
	}
}

func benchCounter(b *testing.B, impl Impl) *Counter {
	tc := newTestCounter(b, impl)
	c := tc.open(b)
	return c
}

func BenchmarkAcquireRelease(b *testing.B) {
	for _, impl := range impls() {
		b.Run(impl.String(), func(b *testing.B) {
			c := benchCounter(b, impl)
			for b.Loop() {
				rel, err := c.Acquire()
				if err != nil {
					b.Fatal(err)
				}
				if err := rel(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCount(b *testing.B) {
	for _, impl := range impls() {
		for _, held := range []int{0, 10} {
			b.Run(fmt.Sprintf("%s/held=%d", impl, held), func(b *testing.B) {
				c := benchCounter(b, impl)
				for range held {
					rel, err := c.Acquire()
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { rel() })
				}
				for b.Loop() {
					n, err := c.Count()
					if err != nil || n != held {
						b.Fatalf("Count = %d, %v; want %d", n, err, held)
					}
				}
			})
		}
	}
}
