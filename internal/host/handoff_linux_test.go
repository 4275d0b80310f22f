package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/hostproto"
	"github.com/procref/procref/internal/proctest/privdir"
	"github.com/procref/procref/platform"
)

// TestMain lets the test binary play a proxy that hands its stdio off.
func TestMain(m *testing.M) {
	if os.Getenv("HOST_TEST_PROXY") == "1" {
		handoffProxy()
		return
	}
	os.Exit(m.Run())
}

// handoffProxy is the proxy's side: dial the session socket, hand stdin
// and stdout to the host (with "pending\n" already read), wait for the
// end and say it on stderr: exit 0 for "bye", 3 with the reason.
func handoffProxy() {
	conn, err := net.Dial("unix", os.Getenv("HOST_TEST_SESSION"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(2)
	}
	pid, _ := strconv.Atoi(os.Getenv("HOST_TEST_PID"))
	dir, err := platform.OpenPrivateDir(os.Getenv("HOST_TEST_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "runtime dir:", err)
		os.Exit(2)
	}
	if err := hostproto.Handoff(conn, dir, os.Getenv("HOST_TEST_SOCKET"), pid, []byte("pending\n")); err != nil {
		fmt.Fprintln(os.Stderr, "handoff:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "handed")
	if err := hostproto.WaitHandedOff(context.Background(), conn); err != nil {
		fmt.Fprintln(os.Stderr, "end:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// handoffRig is a host's handoff server and session listener in a
// private dir, and one proxy process whose stdin and stdout are ours.
type handoffRig struct {
	h      *handoffServer
	ln     net.Listener
	proxy  *exec.Cmd
	stdin  io.WriteCloser // the editor writing to the proxy's stdin
	stdout *bufio.Reader  // the editor reading the proxy's stdout
	stderr *bufio.Reader
}

func newHandoffRig(t *testing.T) *handoffRig {
	d := privdir.Dir(t)
	dir := d.Path()
	sock := hostproto.HandoffName("svc", os.Getpid())
	h, err := startHandoff(d, sock, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	sessPath := filepath.Join(dir, "session.sock")
	ln, err := net.Listen("unix", sessPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &handoffRig{h: h, ln: ln}
	r.proxy = exec.Command(os.Args[0], "-test.run=^$")
	r.proxy.Env = append(os.Environ(), "HOST_TEST_PROXY=1", "HOST_TEST_SESSION="+sessPath,
		"HOST_TEST_DIR="+dir, "HOST_TEST_SOCKET="+sock, "HOST_TEST_PID="+strconv.Itoa(os.Getpid()))
	r.stdin, _ = r.proxy.StdinPipe()
	out, _ := r.proxy.StdoutPipe()
	errp, _ := r.proxy.StderrPipe()
	// every read of the editor's side is bounded: a lost byte fails the
	// test instead of hanging it
	for _, f := range []io.ReadCloser{out, errp} {
		f.(*os.File).SetReadDeadline(time.Now().Add(time.Minute))
	}
	r.stdout, r.stderr = bufio.NewReader(out), bufio.NewReader(errp)
	if err := r.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.proxy.Process.Kill()
		r.proxy.Wait()
	})
	return r
}

// serve accepts the proxy's session and serves it with serve, as the
// host's Serve does; the result arrives on the returned channel.
func (r *handoffRig) serve(t *testing.T, serve func(context.Context, io.ReadWriteCloser) error) <-chan error {
	conn, err := r.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.h.serveSession(context.Background(), conn, serve) }()
	return done
}

func readLine(t *testing.T, r *bufio.Reader, what string) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %q, %v", what, line, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// echo serves a client by echoing its lines until "quit" (then it ends
// the session with an error) or EOF (a normal end).
func echo(_ context.Context, c io.ReadWriteCloser) error {
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil
		}
		if line == "quit\n" {
			return errors.New("told to quit")
		}
		if _, err := io.WriteString(c, "echo: "+line); err != nil {
			return err
		}
	}
}

// A proxy's stdio handed off is served by the host itself: the pending
// bytes first, then what the editor writes, answered on the editor's own
// pipe; the session's end reason reaches the proxy on its session.
func TestServeSessionHandoff(t *testing.T) {
	r := newHandoffRig(t)
	done := r.serve(t, echo)
	if got := readLine(t, r.stderr, "proxy"); got != "handed" {
		t.Fatalf("proxy said %q", got)
	}
	if got := readLine(t, r.stdout, "pending echo"); got != "echo: pending" {
		t.Fatalf("editor read %q, want the pending bytes echoed first", got)
	}
	io.WriteString(r.stdin, "hello\n")
	if got := readLine(t, r.stdout, "echo"); got != "echo: hello" {
		t.Fatalf("editor read %q", got)
	}
	io.WriteString(r.stdin, "quit\n")
	if err := <-done; err == nil || err.Error() != "told to quit" {
		t.Fatalf("serveSession = %v", err)
	}
	if got := readLine(t, r.stderr, "proxy end"); got != "end: procref dropped this window: told to quit" {
		t.Fatalf("proxy said %q", got)
	}
	if err := r.proxy.Wait(); err == nil || r.proxy.ProcessState.ExitCode() != 3 {
		t.Fatalf("proxy exit %v, want 3", err)
	}
}

// A proxy killed with -9 after the handoff ends its client: the host
// closes the editor's descriptors and the serve returns.
func TestServeSessionProxyKilled(t *testing.T) {
	r := newHandoffRig(t)
	ended := make(chan struct{})
	done := r.serve(t, func(ctx context.Context, c io.ReadWriteCloser) error {
		defer close(ended)
		return echo(ctx, c)
	})
	if got := readLine(t, r.stderr, "proxy"); got != "handed" {
		t.Fatalf("proxy said %q", got)
	}
	readLine(t, r.stdout, "pending echo")
	r.proxy.Process.Signal(syscall.SIGKILL)
	r.proxy.Wait()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the client was still served 30 s after its proxy was killed")
	}
	if err := <-done; err != nil {
		t.Fatalf("serveSession = %v, want nil (the editor's end)", err)
	}
}

// Without a handoff server the session itself carries the stream, and
// the byte peeked to look for a handoff request is not lost.
func TestServeSessionWithoutHandoff(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- (*handoffServer)(nil).serveSession(context.Background(), a, echo) }()
	io.WriteString(b, "xyz\n")
	if got := readLine(t, bufio.NewReader(b), "echo"); got != "echo: xyz" {
		t.Fatalf("read %q", got)
	}
	b.Close()
	if err := <-done; err != nil {
		t.Fatalf("serveSession = %v", err)
	}
}
