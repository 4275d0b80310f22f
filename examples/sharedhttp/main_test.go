//go:build linux

package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
)

// Issue 14 must show: three copies at once share one service; kill -9 of
// all three stops it within 1 s and leaves nothing in ipcs -s or the
// runtime dir.
func TestThreeCopiesThenKill9(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "sharedhttp")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run, state := filepath.Join(dir, "run"), filepath.Join(dir, "state")
	env := append(os.Environ(), "PROCREF_RUNTIME_DIR="+run, "PROCREF_STATE_DIR="+state)
	var cmds []*exec.Cmd
	lines := make(chan string, 3)
	for range 3 {
		cmd := exec.Command(exe, "-hold")
		cmd.Env = env
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		go func() {
			line, _ := bufio.NewReader(out).ReadString('\n')
			lines <- strings.TrimSpace(line)
		}()
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	var first string
	for i := range 3 {
		select {
		case line := <-lines:
			if !strings.HasPrefix(line, "served by pid ") {
				t.Fatalf("copy %d printed %q", i, line)
			}
			if first == "" {
				first = line
			} else if line != first {
				t.Fatalf("two services: %q and %q", first, line)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a copy did not print within 20 s")
		}
	}
	servicePID, _ := strconv.Atoi(strings.Fields(first)[3])
	service, err := platform.Lookup(servicePID)
	if err != nil {
		t.Fatalf("service pid %d: %v", servicePID, err)
	}
	key := setKey(t, run)
	for _, c := range cmds {
		c.Process.Signal(syscall.SIGKILL)
	}
	killed := time.Now()
	proctest.WaitGone(t, service, time.Second, "the service 1 s after kill -9 of every user")
	t.Logf("service gone %v after kill -9", time.Since(killed))
	// The supervisor removes the set and its files right after the stop.
	proctest.WaitFor(t, 2*time.Second, "no files and no semaphore set left", func() error {
		entries, _ := os.ReadDir(run)
		var left []string
		for _, e := range entries {
			if e.Name() != "secret" {
				left = append(left, e.Name())
			}
		}
		if sets := semSets(t, key); len(left) != 0 || sets != 0 {
			return fmt.Errorf("left behind: files %v, %d semaphore sets", left, sets)
		}
		return nil
	})
}

// setKey is the IPC key of the example's counter (HMAC with the runtime
// dir's secret; computed here independently of package refcount).
func setKey(t *testing.T, run string) string {
	secret, err := os.ReadFile(filepath.Join(run, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("procref/refcount/sysv\x00" + strconv.Itoa(os.Geteuid()) + "\x00" + svc.Key))
	return strconv.Itoa(int(int32(binary.BigEndian.Uint32(m.Sum(nil)[:4]))))
}

func semSets(t *testing.T, key string) int {
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && f[0] == key {
			n++
		}
	}
	return n
}
