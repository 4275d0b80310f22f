//go:build linux

package launcher_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/refcount"
	"golang.org/x/sys/unix"
)

// Must show 8b: a process of another user (nobody, uid 65534) can neither
// read the hint, nor complete a handshake (it knows the port, not the
// token), nor change our reference count: it cannot touch our semaphore set
// at all, and refcount.Open with our name and key gives it a set of its own.
func TestOtherUserLockedOut(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper as uid 65534 (nobody) with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	e := newEnv(t)
	svc := toyService(toyName)
	h := acquire(t, svc)
	c, err := refcount.Open(svc.Name, svc.Key, refcount.Options{Dir: e.run})
	if err != nil {
		t.Fatal(err)
	}
	ourSet := c.ID()
	c.Close()
	before, err := svc.Count()
	if err != nil || before != 1 {
		t.Fatalf("Count = %d, %v", before, err)
	}

	// nobody must be able to run the test binary: copy it to a 0755 dir
	// (t.TempDir's parents are private).
	bindir, err := os.MkdirTemp("", "procref-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bindir) })
	os.Chmod(bindir, 0o755)
	exe, _ := os.Executable()
	bin := filepath.Join(bindir, "launcher.test")
	if err := copyFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	probeDir := filepath.Join(bindir, "probe")
	if err := os.Mkdir(probeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(probeDir, 65534, 65534); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin)
	cmd.Env = append(os.Environ(),
		helperEnv+"=nobody",
		"PROBE_HINT="+e.hintPath(toyName),
		"PROBE_RUN="+e.run,
		"PROBE_PORT="+strconv.Itoa(liveHint(t, svc).Port),
		"PROBE_NAME="+svc.Name,
		"PROBE_KEY="+svc.Key,
		"PROBE_SET="+ourSet,
		"PROBE_DIR="+probeDir,
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		for range lines {
		}
		cmd.Wait()
	})

	got := map[string]string{}
	ctx := testCtx(t, 30*time.Second)
	for got["holding"] == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("probe exited early: %v\nstdout so far: %v\nstderr: %s", cmd.Wait(), got, stderr.String())
			}
			k, v, _ := strings.Cut(line, " ")
			got[k] += v + ";"
			t.Logf("nobody: %s", line)
		case <-ctx.Done():
			t.Fatalf("probe did not finish: %v; stderr: %s", got, stderr.String())
		}
	}
	if got["uid"] != "65534;" {
		t.Errorf("probe ran as uid %q", got["uid"])
	}
	for k, want := range map[string]string{
		"hint":      "denied",   // read the hint file
		"list":      "denied",   // list the runtime dir
		"handshake": "refused",  // handshake with guessed tokens
		"semop":     "EACCES",   // add a reference to our set
		"getval":    "EACCES",   // even read our count
		"ourdir":    "denied",   // refcount.Open in our runtime dir
		"refcount":  "own set ", // refcount.Open with our name and key
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
	stdin.Close()
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("probe: %v\n%s", err, stderr.String())
	}
	if n, err := svc.Count(); err != nil || n != before {
		t.Errorf("our count is %d, %v after the other user left; want %d", n, err, before)
	}
	host := h.Supervisor()
	h.Release()
	waitExit(t, host, 10*time.Second, "supervisor")
	e.waitAllGone(5 * time.Second)
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
	if _, err := discovery.List(os.Getenv("PROBE_RUN")); errors.Is(err, os.ErrPermission) {
		say("list", "denied")
	} else if _, err := os.ReadDir(os.Getenv("PROBE_RUN")); errors.Is(err, os.ErrPermission) {
		say("list", "denied (%v)", err)
	} else {
		say("list", "UNEXPECTED: %v", err)
	}

	port, _ := strconv.Atoi(os.Getenv("PROBE_PORT"))
	for _, token := range []string{"", "0", handshake.NewSecret()} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := handshake.Dial(ctx, port, token, "", os.Getpid(), handshake.VerbSession)
		cancel()
		switch {
		case conn != nil:
			conn.Close()
			say("handshake", "UNEXPECTED: accepted")
		case errors.Is(err, handshake.ErrDenied):
			say("handshake", "refused")
		default:
			// ErrWrongNonce would mean the host said "ok".
			say("handshake", "UNEXPECTED: %v", err)
		}
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
	if c, err := refcount.Open(name, key, refcount.Options{Dir: os.Getenv("PROBE_RUN")}); err != nil {
		say("ourdir", "denied (%v)", err)
	} else {
		c.Close()
		say("ourdir", "UNEXPECTED: opened")
	}
	c, err := refcount.Open(name, key, refcount.Options{Dir: os.Getenv("PROBE_DIR")})
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
	io.Copy(io.Discard, os.Stdin)
	release()
	return 0
}
