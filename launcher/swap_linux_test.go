package launcher_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/discovery"
	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/platform"
)

// attackerHost is the attacker of TestSwappedRuntimeDirAfterOpen, run as
// uid 65534 in its own directory FAKE_DIR, now at the victim's runtime dir
// path: it listens on the host's socket name there, plants a hint naming
// it and decoys where the victim's lock, counter and registry files
// belong, says "ready", and on stdin EOF says how many connections it got.
func attackerHost() int {
	dir, name, sock := os.Getenv("FAKE_DIR"), os.Getenv("FAKE_NAME"), os.Getenv("FAKE_SOCK")
	fail := func(err error) int { fmt.Println("error", err); return 1 }
	ln, err := net.Listen("unix", filepath.Join(dir, sock))
	if err != nil {
		return fail(err)
	}
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	h := discovery.Hint{Version: handshake.Version, Name: name, Key: os.Getenv("FAKE_KEY"), Host: platform.Self(),
		Socket: filepath.Join(dir, sock), Token: "attacker", Nonce: "attacker", StartedAt: time.Now()}
	b, _ := json.Marshal(h)
	for file, data := range map[string][]byte{name + ".json": b, name + ".lock": nil, name + ".ref": nil, name + ".counter": nil} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			return fail(err)
		}
	}
	fmt.Println("ready yes")
	io.Copy(io.Discard, os.Stdin)
	fmt.Println("conns", conns.Load())
	return 0
}

// Issue 22 item 3: the runtime dir is opened once per process and
// everything inside is reached through that handle. Here, after the
// acquirer (this process) and the host opened theirs, the checked dir is
// renamed away and a real other user's dir (uid 65534) put at its path,
// with a fake host listening on the host's socket name, a hint naming it,
// and decoy lock, counter and registry files. The swap is done by root:
// another uid cannot do it under the checked parents
// (platform.TestOtherUserCannotSwapCheckedDir); root or we are what the
// parent check cannot stop. Then:
//   - a second Acquire here reads the hint, dials the host and takes its
//     file-lock reference through the handle: it attaches to the real
//     host, the count is 2, the .ref file used is the checked dir's, and
//     nothing of ours appears in the attacker's dir;
//   - the fake host gets no connection;
//   - the host's drain removes its hint, socket, counter and locks in the
//     checked dir and leaves the attacker's same-named files alone.
func TestSwappedRuntimeDirAfterOpen(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the attacker as a real second uid (65534)")
	}
	e := newEnv(t)
	base := filepath.Dir(e.run)
	for _, p := range []string{filepath.Dir(base), base} { // the attacker must reach its dir
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	svc := toyService(toySwapName)
	h1 := acquire(t, svc)
	hint, err := discovery.Read(dirOf(e.run), svc.Name)
	if err != nil || hint.Socket == "" {
		t.Fatalf("hint: %+v, %v; want one with a unix socket", hint, err)
	}
	moved := e.run + ".checked"
	if err := os.Rename(e.run, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.run, 0o700); err != nil || os.Chown(e.run, 65534, 65534) != nil {
		t.Fatalf("the attacker's dir: %v", err)
	}
	bin, _ := nobodyBinary(t)
	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = append(os.Environ(), helperEnv+"=fakehost", "FAKE_DIR="+e.run, "FAKE_NAME="+svc.Name,
		"FAKE_SOCK="+filepath.Base(hint.Socket), "FAKE_KEY="+svc.Key)
	fake := startProbe(t, cmd)
	fake.until(t, "ready")
	attackers := listDir(t, e.run)

	h2 := acquire(t, svc)
	if h2.Supervisor() != h1.Supervisor() {
		t.Errorf("the second Acquire attached to %v, want the real host %v", h2.Supervisor(), h1.Supervisor())
	}
	if n, err := svc.Count(); err != nil || n != 2 {
		t.Errorf("count = %d, %v; want 2 (both references in the checked dir's .ref file)", n, err)
	}
	if _, err := os.Stat(filepath.Join(moved, svc.Name+".ref")); err != nil {
		t.Errorf("the checked dir has no .ref file: %v", err)
	}
	checkOnlyAttackers(t, e.run, attackers)

	h2.Release()
	h1.Release()
	ctx := testCtx(t, 30*time.Second)
	if err := h1.Supervisor().Wait(ctx); err != nil {
		t.Fatalf("the host did not exit after the last release: %v", err)
	}
	for _, f := range []string{svc.Name + ".json", filepath.Base(hint.Socket), svc.Name + ".ref", svc.Name + ".lock", svc.Name + ".counter"} {
		if _, err := os.Lstat(filepath.Join(moved, f)); err == nil {
			t.Errorf("the host's drain left %s in the checked dir", f)
		}
	}
	checkOnlyAttackers(t, e.run, attackers)
	fake.stdin.Close()
	if got := fake.until(t, "conns"); got["conns"] != "0;" {
		t.Errorf("the fake host in the attacker's dir got %s connections, want 0", got["conns"])
	}
}

// listDir names the entries of dir.
func listDir(t *testing.T, dir string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range ents {
		m[e.Name()] = true
	}
	return m
}

// checkOnlyAttackers fails unless dir holds exactly the entries want
// (besides "events", the toy hooks' own log, which the test writes by path).
func checkOnlyAttackers(t *testing.T, dir string, want map[string]bool) {
	t.Helper()
	got := listDir(t, dir)
	for n := range got {
		if !want[n] && n != "events" {
			t.Errorf("%s appeared in the attacker's dir", n)
		}
	}
	for n := range want {
		if !got[n] {
			t.Errorf("the attacker's %s was removed", n)
		}
	}
}
