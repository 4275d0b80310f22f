//go:build linux

package launcher_test

// Issue 14 and issue 12 item 5: failed starts, impatient acquirers and
// programs set up wrong end with a clear error and leave nothing behind.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/launcher"
	"github.com/procref/procref/platform"
)

// semSets counts the semaphore sets in /proc/sysvipc/sem with the IPC key
// the reference counter of key gets in dir (HMAC of the dir's secret; an
// independent computation, so a changed derivation fails here).
func semSets(t *testing.T, dir, key string) int { return len(semIDs(t, dir, key)) }

// semIDs returns the ids of those sets.
func semIDs(t *testing.T, dir, key string) []string {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(dir, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("procref/refcount/sysv\x00" + strconv.Itoa(os.Geteuid()) + "\x00" + key))
	want := strconv.Itoa(int(int32(binary.BigEndian.Uint32(m.Sum(nil)[:4]))))
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(string(data), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[0] == want {
			ids = append(ids, f[1])
		}
	}
	return ids
}

// serviceFiles lists what the runtime dir holds for name (but the toys'
// own exclusivity file, toy.excl).
func serviceFiles(t *testing.T, dir, name string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, name+".*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range m {
		if filepath.Base(p) != "toy.excl" {
			out = append(out, p)
		}
	}
	return out
}

// Must show: 10 failed starts leave 0 semaphore sets and no files.
func TestFailedStartsLeaveNothing(t *testing.T) {
	e := newEnv(t)
	if err := platform.EnsurePrivateDir(e.run); err != nil {
		t.Fatal(err)
	}
	e.doubleOK = true
	f, err := lockExclusive() // the toy's OnFirstAcquire must fail
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	svc := toyService(toyLightName)
	for i := range 10 {
		_, err := svc.Acquire(testCtx(t, 30*time.Second))
		if !errors.Is(err, launcher.ErrStartFailed) {
			t.Fatalf("start %d: %v, want ErrStartFailed", i, err)
		}
	}
	e.waitAllGone(5 * time.Second)
	if n := semSets(t, e.run, svc.Key); n != 0 {
		t.Errorf("%d semaphore sets left after 10 failed starts, want 0", n)
	}
	if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
		t.Errorf("files left after 10 failed starts: %v", files)
	}
}

// Must show: ErrNotRegistered is what Acquire returns when the program
// does not Register the service.
func TestNotRegistered(t *testing.T) {
	e := newEnv(t)
	svc := &launcher.Service{Name: "not-registered", Key: launcher.Key("not-registered", e.run),
		Hooks: noopHooks}
	start := time.Now()
	_, err := svc.Acquire(testCtx(t, 30*time.Second))
	if !errors.Is(err, launcher.ErrNotRegistered) || !strings.Contains(err.Error(), "launcher.Register") {
		t.Fatalf("Acquire of an unregistered service = %v, want ErrNotRegistered naming launcher.Register", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

// Must show: a program that forgets launcher.Main() gets a clear error
// within a second. The usual such program acquires the service in main: its
// re-executed copy reports the mistake on the ready pipe at once (the error
// carries its words, not the timeout's). A program that says nothing at all
// (here sleep) gets the same advice after mainTimeout.
func TestMissingMain(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		spawn      func(name string) *exec.Cmd
	}{
		{"acquires", "did not call launcher.Main()", func(name string) *exec.Cmd {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), launcher.EnvSupervise+"="+name, noMainEnv+"=1")
			return cmd
		}},
		{"silent", "does the program call launcher.Main()", func(string) *exec.Cmd {
			return exec.Command("sleep", "60")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			name := "no-main-" + tc.name
			svc := &launcher.Service{Name: name, Key: launcher.Key(name, e.run),
				Hooks: noopHooks,
				Spawn: func() (*exec.Cmd, error) { return tc.spawn(name), nil }}
			_, err := svc.Acquire(testCtx(t, 30*time.Second))
			if !errors.Is(err, launcher.ErrStartFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Acquire with no Main = %v, want ErrStartFailed saying %q", err, tc.want)
			}
			if n := semSets(t, e.run, svc.Key); n != 0 {
				t.Errorf("%d semaphore sets left", n)
			}
			if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
				t.Errorf("files left: %v", files)
			}
		})
	}
}

// Must show: Acquire returns when its ctx ends, not when the start it
// waits for does, and leaves that start, which another acquirer waits on,
// alone.
func TestImpatientAcquirer(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toySlowName)
	release := e.holdStart() // the start cannot finish before the impatient one returns
	var wg sync.WaitGroup
	var patient *launcher.Handle
	var patientErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		patient, patientErr = svc.Acquire(testCtx(t, 30*time.Second))
	}()
	e.waitEvent("starting", 30*time.Second) // the patient one's start is under way
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := svc.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("impatient Acquire = %v, want context.DeadlineExceeded", err)
	}
	release()
	wg.Wait()
	if patientErr != nil {
		t.Fatalf("the patient acquirer failed: %v", patientErr)
	}
	if n := e.count("first"); n != 1 {
		t.Errorf("OnFirstAcquire ran %d times, want 1", n)
	}
	host := patient.Supervisor()
	patient.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

// The impatient acquirer that started the service itself returns when
// its ctx ends and leaves the service starting; with no reference left it stops by itself and cleans up.
func TestImpatientStarterLeavesNothing(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toySlowName)
	release := e.holdStart() // returning at all shows it did not wait for the start
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := svc.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v, want DeadlineExceeded", err)
	}
	release()
	for _, id := range e.processes() {
		proctest.WaitGone(t, id, 10*time.Second, "supervisor")
	}
	if n := semSets(t, e.run, svc.Key); n != 0 {
		t.Errorf("%d semaphore sets left", n)
	}
	if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

// Issue 12 item 5: a forced drain (stop request with a session open) and a
// set removed under a running supervisor (ipcrm) leave no set and no file.
func TestStopAndIpcrmLeaveNothing(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	ctx := testCtx(t, 30*time.Second)
	sess, err := svc.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RequestStop(ctx); err != nil {
		t.Fatal(err)
	}
	proctest.WaitGone(t, sess.Supervisor, 10*time.Second, "supervisor after a stop request")
	if n := semSets(t, e.run, svc.Key); n != 0 {
		t.Errorf("forced drain: %d semaphore sets left while a window still held its reference", n)
	}
	sess.Conn.Close()
	sess.Release()
	if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
		t.Errorf("forced drain: files left: %v", files)
	}

	h := acquire(t, svc)
	host := h.Supervisor()
	ids := semIDs(t, e.run, svc.Key)
	if len(ids) != 1 {
		t.Fatalf("sets for the service: %v, want 1", ids)
	}
	if out, err := exec.Command("ipcrm", "-s", ids[0]).CombinedOutput(); err != nil {
		t.Fatalf("ipcrm: %v: %s", err, out)
	}
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor after ipcrm of its set")
	if n := semSets(t, e.run, svc.Key); n != 0 {
		t.Errorf("ipcrm: %d semaphore sets left", n)
	}
	if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
		t.Errorf("ipcrm: files left: %v", files)
	}
	e.waitAllGone(5 * time.Second)
}

// Issue 22 item 6: after an ipcrm under a running supervisor, a window that
// comes later takes its reference on a new set under the same key; once
// every window has left, that set is gone too.
func TestIpcrmThenNewWindowLeavesNoSet(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	ctx := testCtx(t, 30*time.Second)
	first, err := svc.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := semIDs(t, e.run, svc.Key)
	if len(ids) != 1 {
		t.Fatalf("sets for the service: %v, want 1", ids)
	}
	if out, err := exec.Command("ipcrm", "-s", ids[0]).CombinedOutput(); err != nil {
		t.Fatalf("ipcrm: %v: %s", err, out)
	}
	second, err := svc.Attach(ctx)
	if err != nil {
		t.Fatalf("a window after the ipcrm: %v", err)
	}
	if second.Supervisor != first.Supervisor {
		t.Errorf("the window after the ipcrm got supervisor %v, want the running %v", second.Supervisor, first.Supervisor)
	}
	if now := semIDs(t, e.run, svc.Key); len(now) != 1 || now[0] == ids[0] {
		t.Fatalf("sets after the second window: %v, want one new set", now)
	}
	// The supervisor counts connections now; the second window closes its
	// session and releases its reference only once the drain is under way
	// (OnLastRelease ran), as a proxy's SEM_UNDO comes after its session
	// closed: the drain must still remove the set.
	first.Conn.Close()
	first.Release()
	second.Conn.Close()
	e.waitEvent("last", 10*time.Second)
	second.Release()
	proctest.WaitGone(t, first.Supervisor, 10*time.Second, "supervisor after its windows left")
	if now := semIDs(t, e.run, svc.Key); len(now) != 0 {
		t.Errorf("sets left after every window left: %v", now)
	}
	if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	e.waitAllGone(5 * time.Second)
}

// Issue 22 item 6: a symbolic link at the log path is not followed: the
// start fails naming the link and what to do, and the file it points to is
// neither written nor truncated.
func TestLogSymlinkNotFollowed(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	if err := platform.EnsurePrivateDir(e.state); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := svc.LogPath()
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Acquire(testCtx(t, 30*time.Second))
	if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "rm "+link) {
		t.Errorf("Acquire with a link at the log path: %v; want an error naming %s and how to remove it", err, link)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
		t.Errorf("the link's target was written: %q", b)
	}
	os.Remove(link)
	e.waitAllGone(5 * time.Second)
}

// Issue 22 item 6: a directory at NAME.json under a live supervisor makes a
// new acquirer fail at once with a message naming the directory (not wait
// out its ctx and blame the supervisor); once it is removed the supervisor
// rewrites its hint and the next acquirer joins it.
func TestHintDirectoryUnderLiveHost(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	hint := e.hintPath(toyName)
	if err := os.Remove(hint); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(hint, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 60*time.Second)
	_, err := svc.Acquire(ctx)
	if err == nil || !strings.Contains(err.Error(), hint+" is a directory") || !strings.Contains(err.Error(), "rm -r "+hint) {
		t.Fatalf("Acquire with a directory at the hint path: %v; want it named with how to remove it", err)
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire waited for its deadline: %v", err)
	}
	if err := os.RemoveAll(hint); err != nil {
		t.Fatal(err)
	}
	h2, err := svc.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after removing the directory: %v", err)
	}
	if h2.Supervisor() != h.Supervisor() {
		t.Errorf("joined supervisor %v, want the running %v", h2.Supervisor(), h.Supervisor())
	}
	h2.Release()
	host := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

// Must show: Handle.Done closes when the service is gone, Err says so, and
// Info does not describe the replacement.
func TestHandleDone(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	defer h.Release()
	if err := h.Err(); err != nil {
		t.Fatalf("Err of a live service = %v", err)
	}
	old := h.Info()
	select {
	case <-h.Done():
		t.Fatal("Done closed while the service is live")
	default:
	}
	if err := svc.RequestStop(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10 s after the service was stopped")
	}
	if err := h.Err(); !errors.Is(err, launcher.ErrServiceGone) {
		t.Errorf("Err after stop = %v, want ErrServiceGone", err)
	}
	h2 := acquire(t, svc) // a new instance
	defer h2.Release()
	if got := h.Info(); got.PID != old.PID {
		t.Errorf("the old handle's Info follows the new instance silently: %d, want %d", got.PID, old.PID)
	}
	h.Release()
	h2.Release()
	proctest.WaitGone(t, h2.Supervisor(), 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

var noopHooks = launcher.Hooks{
	OnFirstAcquire: func(context.Context) (launcher.Info, error) { return launcher.Info{}, nil },
	OnLastRelease:  func(context.Context, launcher.Info) error { return nil },
}

// Issue 14: a Service is checked up front, before anything is created.
func TestValidate(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		svc  launcher.Service
		want string
	}{
		{launcher.Service{Name: "../x", Key: "k", Hooks: noopHooks}, "Name"},
		{launcher.Service{Name: "", Key: "k", Hooks: noopHooks}, "Name"},
		{launcher.Service{Name: "ok", Hooks: noopHooks}, "Key"},
		{launcher.Service{Name: "ok", Key: "k"}, "OnFirstAcquire"},
		{launcher.Service{Name: "ok", Key: "k", Hooks: launcher.Hooks{OnFirstAcquire: noopHooks.OnFirstAcquire}}, "OnLastRelease"},
	} {
		_, err := tc.svc.Acquire(testCtx(t, 5*time.Second))
		if !errors.Is(err, launcher.ErrInvalidService) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Acquire(%+v) = %v, want ErrInvalidService naming %s", tc.svc, err, tc.want)
		}
	}
	if _, err := os.Stat(e.run); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an invalid service created the runtime dir: %v", err)
	}
}

// Issue 13 item 4: with Overlap, an acquirer arriving while the supervisor
// drains does not wait for the old service's (slow) stop: it gets a new
// instance at once, and the old one refuses new handshakes meanwhile.
func TestOverlapReopenAtOnce(t *testing.T) {
	e := newEnv(t)
	svc := toyService(toyOverName)
	h := acquire(t, svc)
	oldHost := h.Supervisor()
	h.Release()
	e.waitEvent("last", 30*time.Second) // the old service is stopping now
	// The old stop cannot finish before the gate opens, so a new acquirer
	// that returns at all did not wait for it.
	h2 := acquire(t, svc)
	if e.count("stopped") != 0 {
		t.Errorf("the old stop finished before the gate was opened")
	}
	if h2.Supervisor() == oldHost {
		t.Error("the new acquirer joined the draining supervisor")
	}
	if err := os.WriteFile(filepath.Join(e.run, stopGate), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	proctest.WaitGone(t, oldHost, 10*time.Second, "old supervisor")
	if err := h2.Err(); err != nil {
		t.Errorf("the new instance is not live after the old one stopped: %v", err)
	}
	host := h2.Supervisor()
	h2.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	if files := serviceFiles(t, e.run, svc.Name); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	e.waitAllGone(5 * time.Second)
}

// Issue 14: the app's name picks the environment variables and the
// directories: a service of App "toyapp" lives in $TOYAPP_RUNTIME_DIR and
// logs to $TOYAPP_STATE_DIR, its supervisor is started with
// TOYAPP_SUPERVISE, and procref's runtime dir never sees it.
func TestAppName(t *testing.T) {
	e := newEnv(t)
	appRun, appState := filepath.Join(t.TempDir(), "run"), filepath.Join(t.TempDir(), "state")
	t.Setenv("TOYAPP_RUNTIME_DIR", appRun)
	t.Setenv("TOYAPP_STATE_DIR", appState)
	if err := os.MkdirAll(e.run, 0o700); err != nil { // the toy's own files live there
		t.Fatal(err)
	}
	svc := toyService(toyAppName)
	h := acquire(t, svc)
	sup := h.Supervisor()
	if _, err := discovery.Read(dirOf(appRun), svc.Name); err != nil {
		t.Errorf("no hint in the app's runtime dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(appState, svc.Name+".log")); err != nil {
		t.Errorf("no log in the app's state dir: %v", err)
	}
	if names, _ := discovery.List(dirOf(e.run)); len(names) != 0 {
		t.Errorf("procref's runtime dir holds hints %v", names)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", sup.PID))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(env, []byte("\x00TOYAPP_SUPERVISE="+svc.Name+"\x00")) || bytes.Contains(env, []byte("PROCREF_SUPERVISE=")) {
		t.Errorf("the supervisor was not started with TOYAPP_SUPERVISE alone")
	}
	h.Release()
	proctest.WaitGone(t, sup, 10*time.Second, "supervisor")
	if files := serviceFiles(t, appRun, svc.Name); len(files) != 0 {
		t.Errorf("files left in the app's runtime dir: %v", files)
	}
}

// Issue 22 item 1: where the runtime dir's path is too long for a unix
// socket, the supervisor falls back to loopback TCP and says so (log, hint,
// status); the token handshake still guards it.
func TestTCPFallbackForLongRuntimeDir(t *testing.T) {
	e := newEnv(t)
	e.run = filepath.Join(filepath.Dir(e.run), strings.Repeat("r", 120))
	t.Setenv("PROCREF_RUNTIME_DIR", e.run)
	svc := toyService(toyName)
	h := acquire(t, svc)
	hint := liveHint(t, svc)
	if hint.Socket != "" || hint.Port <= 0 {
		t.Fatalf("hint socket %q port %d; want the TCP fallback", hint.Socket, hint.Port)
	}
	ctx := testCtx(t, 30*time.Second)
	st, err := svc.QueryStatus(ctx)
	if err != nil || !strings.HasPrefix(st.Transport, "tcp 127.0.0.1:") || !strings.Contains(st.Transport, "fallback") {
		t.Errorf("status transport %q, %v; want the tcp fallback", st.Transport, err)
	}
	bad := *hint
	bad.Token = handshake.NewSecret()
	if conn, err := discovery.Verify(ctx, &bad, handshake.VerbPing, 5*time.Second); err == nil {
		conn.Close()
		t.Error("a wrong token was let in on the TCP fallback")
	}
	host := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	b, _ := os.ReadFile(svc.LogPath())
	if !strings.Contains(string(b), "falling back to loopback TCP") || !strings.Contains(string(b), `transport="tcp 127.0.0.1:`) {
		t.Errorf("the log does not say it fell back to TCP:\n%s", b)
	}
	e.waitAllGone(5 * time.Second)
}
