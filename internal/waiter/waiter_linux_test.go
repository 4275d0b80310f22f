//go:build linux

package waiter_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/internal/waiter"
	"github.com/procref/procref/refcount"
)

// The helper process: takes a System V reference on service
// WAITER_TEST_SERVICE in WAITER_TEST_DIR, says "ready PID" on stdout, and
// execs the waiter on the socket it got as descriptor 3.
func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "waiter" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

func helper() int {
	dir := os.Getenv("WAITER_TEST_DIR")
	c, err := refcount.Open(os.Getenv("WAITER_TEST_SERVICE"), "waiter-test-key", refcount.Options{Dir: dir, Impl: refcount.SysV})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if _, err := c.Acquire(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	f := os.NewFile(3, "session")
	conn, err := net.FileConn(f) // a dup, non-blocking, in the poller
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Printf("ready %d\n", os.Getpid())
	err = waiter.Exec(dir, conn.(syscall.Conn), "waiter-test", "procref: test message: the host went away\n")
	fmt.Fprintln(os.Stderr, "exec failed:", err)
	return 4
}

type waiting struct {
	cmd    *exec.Cmd
	conn   net.Conn // the host's end of the session
	stderr *bytes.Buffer
	count  func() int
}

// start runs the helper and returns once it has become the waiter (its
// executable is dir/procref-wait), with the kernel reference still held.
func start(t *testing.T) *waiting {
	t.Helper()
	if !waiter.Available() {
		t.Skipf("no waiter on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	service := fmt.Sprintf("waitertest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=waiter", "WAITER_TEST_DIR="+dir, "WAITER_TEST_SERVICE="+service)
	cmd.ExtraFiles = []*os.File{theirs}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	w := &waiting{cmd: cmd, conn: conn, stderr: &stderr}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		conn.Close()
	})
	counter, err := refcount.Open(service, "waiter-test-key", refcount.Options{Dir: dir, Impl: refcount.SysV})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { counter.Remove(); counter.Close() })
	w.count = func() int {
		n, err := counter.Count()
		if err != nil {
			t.Fatalf("count: %v", err)
		}
		return n
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("helper: %q, %v; stderr: %s", line, err, stderr.String())
	}
	// Wait for the exec: the executable becomes the waiter (the helper
	// printed "ready" just before it execs).
	want := filepath.Join(dir, waiter.FileName)
	exe := fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := os.Readlink(exe); got == want {
			break
		}
		if time.Now().After(deadline) {
			got, _ := os.Readlink(exe)
			t.Fatalf("executable is %q, want %q; stderr: %s", got, want, stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if n := w.count(); n != 1 {
		t.Fatalf("kernel references after exec: %d, want 1 (SEM_UNDO must survive execve)", n)
	}
	// And for its signal handlers.
	for {
		if proctest.CaughtSignals(cmd.Process.Pid)&proctest.WaiterSignals == proctest.WaiterSignals {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiter did not install its signal handlers; SigCgt %x", proctest.CaughtSignals(cmd.Process.Pid))
		}
		time.Sleep(time.Millisecond)
	}
	return w
}

// exit waits (bounded) for the waiter and returns its exit code, or -signal.
func (w *waiting) exit(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not exit")
	}
	ws := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -int(ws.Signal())
	}
	return ws.ExitStatus()
}

// TestByeExitsZero: "bye\n", even a byte at a time, ends the waiter with
// 0 and gives the kernel reference back; it is tiny while it waits.
func TestByeExitsZero(t *testing.T) {
	w := start(t)
	var st struct{ rss int }
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				st.rss, _ = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			}
		}
	}
	if st.rss == 0 || st.rss > 256 {
		t.Errorf("waiter VmRSS %d kB, want a few kB (at most 256)", st.rss)
	}
	for _, b := range []byte("bye\n") {
		if _, err := w.conn.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	if code := w.exit(t); code != 0 {
		t.Fatalf("exit %d after bye, want 0; stderr: %s", code, w.stderr.String())
	}
	if w.stderr.Len() != 0 {
		t.Errorf("stderr after bye: %q, want nothing", w.stderr.String())
	}
	if n := w.count(); n != 0 {
		t.Fatalf("kernel references after the waiter exited: %d, want 0", n)
	}
}

// TestHostGoneExitsOne: the session closing without "bye" (the host died)
// and a wrong word both end the waiter with 1 and the message.
func TestHostGoneExitsOne(t *testing.T) {
	for _, send := range []string{"", "by", "nope"} {
		t.Run(fmt.Sprintf("%q", send), func(t *testing.T) {
			w := start(t)
			w.conn.Write([]byte(send))
			w.conn.Close()
			if code := w.exit(t); code != 1 {
				t.Fatalf("exit %d, want 1; stderr: %s", code, w.stderr.String())
			}
			if got := w.stderr.String(); got != "procref: test message: the host went away\n" {
				t.Fatalf("stderr %q, want the message", got)
			}
			if n := w.count(); n != 0 {
				t.Fatalf("kernel references after exit: %d, want 0", n)
			}
		})
	}
}

// TestSignalsExitZero: SIGTERM, SIGINT and SIGHUP end the waiter with 0,
// as they end the proxy; SIGKILL ends it too, and the kernel gives the
// reference back in every case.
func TestSignalsExitZero(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			w := start(t)
			if err := w.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			want := 0
			if sig == syscall.SIGKILL {
				want = -int(syscall.SIGKILL)
			}
			if code := w.exit(t); code != want {
				t.Fatalf("exit %d after %v, want %d", code, sig, want)
			}
			if n := w.count(); n != 0 {
				t.Fatalf("kernel references after %v: %d, want 0", sig, n)
			}
		})
	}
}

// TestExecFailsCleanly: where the waiter cannot be written, Exec returns
// an error and the caller's connection still works.
func TestExecFailsCleanly(t *testing.T) {
	if !waiter.Available() {
		t.Skipf("no waiter on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = waiter.Exec(filepath.Join(t.TempDir(), "missing"), c.(syscall.Conn), "x", "")
	if err == nil {
		t.Fatal("Exec into a missing dir returned nil")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go s.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil || ctx.Err() != nil {
		t.Fatalf("connection after a failed Exec: %v", err)
	}
}

// TestCodeMatchesSource reassembles testdata/wait_amd64.s with GNU as and
// objcopy (when present) and compares it with the embedded code.
func TestCodeMatchesSource(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the embedded code is linux/amd64")
	}
	as, err1 := exec.LookPath("as")
	objcopy, err2 := exec.LookPath("objcopy")
	if err1 != nil || err2 != nil {
		t.Skip("GNU as or objcopy not installed")
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "w.o"), filepath.Join(dir, "w.bin")
	if out, err := exec.Command(as, "--64", "-o", obj, "testdata/wait_amd64.s").CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", obj, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if got := waiter.Code(); !bytes.Equal(got, want) {
		t.Fatalf("embedded code (%d bytes) differs from testdata/wait_amd64.s assembled (%d bytes)", len(got), len(want))
	}
}
