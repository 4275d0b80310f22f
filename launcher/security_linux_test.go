//go:build linux

package launcher_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/refcount"
	"golang.org/x/sys/unix"
)

// Must show 8b and issue 22 items 1 and 2: a process of another user
// (nobody, uid 65534) can neither read the hint, nor connect to anything
// the host listens on (its unix socket in the 0700 runtime dir; it has no
// TCP port), nor change our reference count: it cannot touch our semaphore
// set at all, and refcount.Open with our name and key gives it a set of its
// own. Then, with the directory and socket opened up to everyone, the host
// still refuses the other uid before reading a byte, even with the right
// token: the kernel's peer uid (SO_PEERCRED) is checked first.
func TestOtherUserLockedOut(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper as uid 65534 (nobody) with SysProcAttr.Credential")
	}
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	c, err := refcount.Open(svc.Name, svc.Key, refcount.Options{Dir: dirOf(e.run)})
	if err != nil {
		t.Fatal(err)
	}
	ourSet := c.ID()
	c.Close()
	before, err := svc.Count()
	if err != nil || before != 1 {
		t.Fatalf("Count = %d, %v", before, err)
	}
	hint := liveHint(t, svc)
	if hint.Socket == "" {
		t.Fatalf("the host listens on %s, want its unix socket", hint.Transport())
	}
	if tcp := proctest.ListeningTCP(hint.Host.PID); len(tcp) > 0 {
		t.Errorf("the host listens on TCP %v; want only its unix socket", tcp)
	}
	socks := proctest.ListeningUnix(hint.Host.PID)
	if !slices.Contains(socks, hint.Socket) {
		t.Fatalf("the host listens on %v, not on its hint's socket %s", socks, hint.Socket)
	}
	var endpoints []string
	for _, p := range socks {
		endpoints = append(endpoints, "unix "+p)
	}

	bin, probeDir := nobodyBinary(t)
	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = append(os.Environ(),
		helperEnv+"=nobody",
		"PROBE_HINT="+e.hintPath(toyName),
		"PROBE_RUN="+e.run,
		"PROBE_ENDPOINTS="+strings.Join(endpoints, "\n"),
		"PROBE_TOKEN="+hint.Token,
		"PROBE_NAME="+svc.Name,
		"PROBE_KEY="+svc.Key,
		"PROBE_SET="+ourSet,
		"PROBE_DIR="+probeDir,
	)
	p := startProbe(t, cmd)
	got := p.until(t, "holding")
	if got["uid"] != "65534;" {
		t.Errorf("probe ran as uid %q", got["uid"])
	}
	for k, want := range map[string]string{
		"hint":     "denied",   // read the hint file
		"list":     "denied",   // list the runtime dir
		"reach":    "denied",   // connect to the host's sockets
		"semop":    "EACCES",   // add a reference to our set
		"getval":   "EACCES",   // even read our count
		"ourdir":   "denied",   // refcount.Open in our runtime dir
		"refcount": "own set ", // refcount.Open with our name and key
	} {
		if !strings.Contains(got[k], want) || strings.Contains(got[k], "UNEXPECTED") {
			t.Errorf("%s: probe says %q, want %q", k, got[k], want)
		}
	}
	if strings.Contains(got["refcount"], "own set "+ourSet+";") {
		t.Errorf("the other user's refcount.Open got our set %s", ourSet)
	}
	// The probe now holds a reference on whatever refcount gave it.
	if n, err := svc.Count(); err != nil || n != before {
		t.Errorf("our count is %d, %v while the other user holds a reference; want %d", n, err, before)
	}

	// Open the way up (as a careless chmod would) and let the probe try
	// again, with the real token: the host must still refuse it.
	restore := openUp(t, e.run, socks)
	got = p.next(t, "open\n", "peercheck")
	restore()
	if !strings.Contains(got["peercheck"], "refused") || strings.Contains(got["peercheck"], "UNEXPECTED") {
		t.Errorf("with the socket reachable and the right token, the other uid got %q; want refused", got["peercheck"])
	}
	p.finish(t)
	if n, err := svc.Count(); err != nil || n != before {
		t.Errorf("our count is %d, %v after the other user left; want %d", n, err, before)
	}
	// The refusals did not reach Serve, and the host still serves us.
	for _, ev := range e.events() {
		if ev.kind == "serve" {
			t.Errorf("Serve saw a connection of the other user: %v", ev.kv)
		}
	}
	if _, err := discovery.Verify(testCtx(t, 10*time.Second), hint, handshake.VerbPing, 5*time.Second); err != nil {
		t.Errorf("the host after the other user's attempts: %v", err)
	}
	host := h.Supervisor()
	h.Release()
	proctest.WaitGone(t, host, 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

// openUp lets every user reach the sockets: it makes dir and its parents
// up to the temp dir traversable (0711) and the sockets 0666. The returned
// func puts the modes back.
func openUp(t *testing.T, dir string, socks []string) (restore func()) {
	modes := map[string]os.FileMode{}
	for d := dir; d != filepath.Dir(d) && d != filepath.Clean(os.TempDir()); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		modes[d] = fi.Mode().Perm()
		os.Chmod(d, fi.Mode().Perm()|0o111)
	}
	for _, s := range socks {
		modes[s] = 0o600
		os.Chmod(s, 0o666)
	}
	return func() {
		for p, m := range modes {
			os.Chmod(p, m)
		}
	}
}

// nobodyBinary copies the test binary where nobody can run it (a 0755 dir:
// t.TempDir's parents are private) and makes a 0700 dir of nobody's for
// its own refcount. It returns both paths.
func nobodyBinary(t *testing.T) (bin, probeDir string) {
	bindir, bin := proctest.ForOtherUser(t, "launcher.test")
	probeDir = filepath.Join(bindir, "probe")
	if err := os.Mkdir(probeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(probeDir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return bin, probeDir
}

// probe is a running nobodyProbe: its "<what> <result>" lines arrive on
// lines.
type probe struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *proctest.SyncBuffer
}

func startProbe(t *testing.T, cmd *exec.Cmd) *probe {
	p := &probe{cmd: cmd, lines: make(chan string), stderr: &proctest.SyncBuffer{}}
	cmd.Stderr = p.stderr
	p.stdin, _ = cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			p.lines <- s.Text()
		}
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		cmd.Process.Kill()
		for range p.lines {
		}
		cmd.Wait()
	})
	return p
}

// until collects the probe's lines until one with key last.
func (p *probe) until(t *testing.T, last string) map[string]string {
	t.Helper()
	got := map[string]string{}
	ctx := testCtx(t, 30*time.Second)
	for got[last] == "" {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("probe exited early: %v\nstdout so far: %v\nstderr: %s", p.cmd.Wait(), got, p.stderr.String())
			}
			k, v, _ := strings.Cut(line, " ")
			got[k] += v + ";"
			t.Logf("nobody: %s", line)
		case <-ctx.Done():
			t.Fatalf("probe did not finish: %v; stderr: %s", got, p.stderr.String())
		}
	}
	return got
}

// next sends the probe line and collects its answers until key last.
func (p *probe) next(t *testing.T, line, last string) map[string]string {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line); err != nil {
		t.Fatal(err)
	}
	return p.until(t, last)
}

// finish closes the probe's stdin and waits for it to exit.
func (p *probe) finish(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	for range p.lines {
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("probe: %v\n%s", err, p.stderr.String())
	}
}

// nobodyProbe runs as another user and reports what it could do, one
// "<what> <result>" line each, then "holding ..." while it holds the
// reference refcount gave it, until stdin is closed.
func nobodyProbe() int {
	say := func(k, format string, args ...any) { fmt.Printf("%s %s\n", k, fmt.Sprintf(format, args...)) }
	say("uid", "%d", os.Getuid())

	if _, err := os.ReadFile(os.Getenv("PROBE_HINT")); errors.Is(err, os.ErrPermission) {
		say("hint", "denied (%v)", err)
	} else {
		say("hint", "UNEXPECTED: %v", err)
	}
	if d := dirOf(os.Getenv("PROBE_RUN")); d == nil {
		say("list", "denied")
	} else if _, err := discovery.List(d); errors.Is(err, os.ErrPermission) {
		say("list", "denied")
	} else if _, err := os.ReadDir(os.Getenv("PROBE_RUN")); errors.Is(err, os.ErrPermission) {
		say("list", "denied (%v)", err)
	} else {
		say("list", "UNEXPECTED: %v", err)
	}

	endpoints := strings.Split(os.Getenv("PROBE_ENDPOINTS"), "\n")
	for _, ep := range endpoints {
		say("reach", "%s", probeReach(ep))
	}

	semid, _ := strconv.Atoi(os.Getenv("PROBE_SET"))
	op := struct {
		num      uint16
		op, flag int16
	}{0, 1, 0x1000 | 0o4000} // +1, SEM_UNDO|IPC_NOWAIT
	_, _, errno := unix.Syscall6(sysSemtimedop, uintptr(semid), uintptr(unsafe.Pointer(&op)), 1, 0, 0, 0)
	if errno == unix.EACCES {
		say("semop", "EACCES")
	} else {
		say("semop", "UNEXPECTED: errno %v", errno)
	}
	_, _, errno = unix.Syscall6(unix.SYS_SEMCTL, uintptr(semid), 0, 12 /* GETVAL */, 0, 0, 0)
	if errno == unix.EACCES {
		say("getval", "EACCES")
	} else {
		say("getval", "UNEXPECTED: errno %v", errno)
	}

	name, key := os.Getenv("PROBE_NAME"), os.Getenv("PROBE_KEY")
	if c, err := refcount.Open(name, key, refcount.Options{Dir: dirOf(os.Getenv("PROBE_RUN"))}); err != nil {
		say("ourdir", "denied (%v)", err)
	} else {
		c.Close()
		say("ourdir", "UNEXPECTED: opened")
	}
	c, err := refcount.Open(name, key, refcount.Options{Dir: dirOf(os.Getenv("PROBE_DIR"))})
	if err != nil {
		say("refcount", "open failed (%v)", err)
		say("holding", "nothing")
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	defer c.Remove()
	release, err := c.Acquire()
	if err != nil {
		say("refcount", "acquire failed (%v)", err)
		say("holding", "nothing")
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	say("refcount", "own set %s", c.ID())
	say("holding", "a reference")
	in := bufio.NewScanner(os.Stdin)
	if in.Scan() && in.Text() == "open" {
		for _, ep := range endpoints {
			say("peercheck", "%s", probePeerCheck(ep, os.Getenv("PROBE_TOKEN")))
		}
	}
	io.Copy(io.Discard, os.Stdin)
	release()
	return 0
}

// probeReach tries to connect to ep ("unix PATH" or "tcp ADDR") and says
// what happened: "denied" when the kernel refuses the connect.
func probeReach(ep string) string {
	network, addr, _ := strings.Cut(ep, " ")
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err == nil {
		c.Close()
		return "UNEXPECTED: connected to " + ep
	}
	if errors.Is(err, os.ErrPermission) {
		return "denied (" + err.Error() + ")"
	}
	return "UNEXPECTED: " + err.Error()
}

// probePeerCheck connects to ep, now reachable, sends a handshake with the
// real token and says "refused" if the host closes without a byte.
func probePeerCheck(ep, token string) string {
	network, addr, _ := strings.Cut(ep, " ")
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return "UNEXPECTED: could not connect once opened up: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s %d %s\n", handshake.Protocol, token, os.Getpid(), handshake.VerbPing)
	b, err := io.ReadAll(c)
	var ne net.Error
	switch {
	case len(b) > 0:
		return fmt.Sprintf("UNEXPECTED: the host answered %q", b)
	case errors.As(err, &ne) && ne.Timeout():
		return "UNEXPECTED: the host kept the connection open"
	}
	return "refused (closed without a byte)"
}
