package discovery

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procref/procref/internal/handshake"
	"github.com/procref/procref/internal/proctest"
	"github.com/procref/procref/platform"
	"golang.org/x/sys/unix"
)

func init() { helpers["swap"] = swapAttacker }

// attackerNonce marks the attacker's fake hint; a Read returning it is an
// attach to the attacker's host.
const attackerNonce = "attacker-nonce"

// swapAttacker is issue 22's attacker, run as another uid: it makes a
// real-looking private dir of its own next to SWAP_TARGET, holding a valid
// hint for service svc that names its own live process, and exchanges it
// with SWAP_TARGET (renameat2 RENAME_EXCHANGE) in a loop until stdin closes.
// It prints "ready" after its first try, then "swaps N refused M last ERR".
func swapAttacker() {
	target := os.Getenv("SWAP_TARGET")
	fake := filepath.Join(filepath.Dir(target), fmt.Sprintf("fake-%d", os.Getpid()))
	h := Hint{Version: handshake.Version, Name: "svc", Host: platform.Self(),
		Socket: filepath.Join(fake, "svc.sock"), Token: "attacker", Nonce: attackerNonce}
	b, _ := json.Marshal(h)
	if err := os.Mkdir(fake, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(Path(fake, "svc"), b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	swaps, refused, last := 0, 0, error(nil)
	for i := 0; ; i++ {
		if err := unix.Renameat2(unix.AT_FDCWD, fake, unix.AT_FDCWD, target, unix.RENAME_EXCHANGE); err != nil {
			refused, last = refused+1, err
		} else {
			swaps++
		}
		if i == 0 {
			fmt.Println("ready")
		}
		select {
		case <-stop:
			fmt.Printf("swaps %d refused %d last %v\n", swaps, refused, last)
			return
		default:
		}
	}
}

// startAttacker runs swapAttacker from bin as uid 65534 against target and
// returns once it has made its first swap attempt. stop closes its stdin
// and returns its final line; cleanup kills it by pid if it is still there.
func startAttacker(t *testing.T, bin, target string) (stop func() string) {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "DISCOVERY_TEST_HELPER=swap", "SWAP_TARGET="+target)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr proctest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // by pid; harmless if it has exited
		<-exited
	})
	select {
	case l := <-lines:
		if l != "ready" {
			t.Fatalf("attacker (uid 65534): %q, stderr: %s", l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("attacker (uid 65534) not ready after 30s, stderr: %s", stderr.String())
	}
	return func() string {
		stdin.Close()
		select {
		case l := <-lines:
			return l
		case <-time.After(30 * time.Second):
			t.Fatalf("attacker (uid 65534) did not stop 30s after its stdin closed, stderr: %s", stderr.String())
			return ""
		}
	}
}

// raceReads runs n Reads of svc in dir while the attacker swaps, and counts
// attaches (the attacker's hint returned), the victim's own hint, refusals
// wrapping platform.ErrInsecureDir, and other errors (the first one kept).
// byPath counts how often a plain read by path saw the attacker's hint: the
// race a check by path alone loses.
type raceCounts struct {
	attaches, own, insecure, other, byPath int
	firstOther, firstInsecure              error
}

func raceReads(t *testing.T, dir string, n int) raceCounts {
	t.Helper()
	var c raceCounts
	deadline := time.Now().Add(2 * time.Minute)
	for range n {
		if time.Now().After(deadline) {
			t.Fatalf("%d Reads took more than 2 minutes: %+v", n, c)
		}
		// Each attempt is a new window: it opens (and so checks) the dir.
		var h *Hint
		d, err := platform.OpenPrivateDir(dir)
		if err == nil {
			h, err = Read(d, "svc")
			d.Close()
		}
		switch {
		case err == nil && h.Nonce == attackerNonce:
			c.attaches++
		case err == nil:
			c.own++
		case errors.Is(err, platform.ErrInsecureDir):
			c.insecure++
			if c.firstInsecure == nil {
				c.firstInsecure = err
			}
		default:
			c.other++
			if c.firstOther == nil {
				c.firstOther = err
			}
		}
		if b, err := os.ReadFile(Path(dir, "svc")); err == nil && strings.Contains(string(b), attackerNonce) {
			c.byPath++
		}
	}
	return c
}

// Issue 22 item 3's test: the directory-swap race repeated 1000 times, with
// 0 attaches to a fake host. A real second uid (65534) swaps directories
// with renameat2(RENAME_EXCHANGE) in a loop while we (root, the victim)
// Read the hint 1000 times.
//   - The attacker created the victim's XDG_RUNTIME_DIR first in a sticky
//     shared dir (/T/runtime-alice, owned by the attacker) and swaps the
//     victim's real procref dir inside it with its own: every Read is
//     refused with ErrInsecureDir (a parent owned by uid 65534), none
//     returns the attacker's hint, although the attacker's swaps succeed.
//   - The victim owns its dir in a sticky parent: every swap is refused
//     (EPERM) and every Read returns the victim's own hint.
func TestSwapRaceNoAttach(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the attacker as a real second uid (65534)")
	}
	const attempts = 1000
	base, bin := proctest.ForOtherUser(t, "discovery.test")
	shared := func(name string) string { // like /tmp: 01777, owned by root
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own := &Hint{Name: "svc", Host: platform.Self(), Socket: "/nonexistent/svc.sock", Token: "victim", Nonce: "victim-nonce"}

	t.Run("attacker owns the parent", func(t *testing.T) { swapRaceAttackerParent(t, bin, shared("T"), own, attempts) })
	t.Run("victim owns the dir in a sticky parent", func(t *testing.T) { swapRaceStickyParent(t, bin, shared("S"), own, attempts) })
}

// swapRaceAttackerParent is the attack of issue 22: XDG_RUNTIME_DIR made
// first by the attacker in the sticky dir shared.
func swapRaceAttackerParent(t *testing.T, bin, shared string, own *Hint, attempts int) {
	rt := filepath.Join(shared, "runtime-alice")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	// The attacker made it first, 0777 so that the victim can use it.
	if err := os.Chmod(rt, 0o777); err != nil || os.Chown(rt, 65534, 65534) != nil {
		t.Fatalf("giving %s to uid 65534: %v", rt, err)
	}
	dir := filepath.Join(rt, "procref")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// By path: Write itself refuses this dir (that is the point).
	own.Version = handshake.Version
	b, _ := json.Marshal(own)
	if err := os.WriteFile(Path(dir, "svc"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := startAttacker(t, bin, dir)
	start := time.Now()
	c := raceReads(t, dir, attempts)
	took := time.Since(start)
	final := stop()
	t.Logf("%d Reads in %v: %d attaches, %d own hint, %d ErrInsecureDir, %d other; a read by path saw the attacker's hint %d times; attacker: %s; first refusal: %v",
		attempts, took, c.attaches, c.own, c.insecure, c.other, c.byPath, final, c.firstInsecure)
	if c.attaches != 0 || c.insecure != attempts {
		t.Fatalf("%d of %d Reads returned the attacker's hint, %d were refused with ErrInsecureDir, want 0 and all; first other error: %v",
			c.attaches, attempts, c.insecure, c.firstOther)
	}
	if !strings.Contains(c.firstInsecure.Error(), "uid 65534") {
		t.Errorf("refusal does not name the attacker's uid: %v", c.firstInsecure)
	}
	var swaps, refused int
	if _, err := fmt.Sscanf(final, "swaps %d refused %d", &swaps, &refused); err != nil || swaps == 0 {
		t.Fatalf("the attacker did not swap (so nothing was tested): %q", final)
	}
}

// swapRaceStickyParent: the victim's own dir in the sticky dir shared.
func swapRaceStickyParent(t *testing.T, bin, shared string, own *Hint, attempts int) {
	dir := filepath.Join(shared, "rt")
	if err := platform.EnsurePrivateDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := Write(openDir(t, dir), own); err != nil {
		t.Fatal(err)
	}
	stop := startAttacker(t, bin, dir)
	start := time.Now()
	c := raceReads(t, dir, attempts)
	took := time.Since(start)
	final := stop()
	t.Logf("%d Reads in %v: %d attaches, %d own hint, %d ErrInsecureDir, %d other; attacker: %s",
		attempts, took, c.attaches, c.own, c.insecure, c.other, final)
	if c.attaches != 0 || c.own != attempts {
		t.Fatalf("%d of %d Reads returned the attacker's hint, %d our own, want 0 and all; first errors: %v, %v",
			c.attaches, attempts, c.own, c.firstInsecure, c.firstOther)
	}
	var swaps, refused int
	if _, err := fmt.Sscanf(final, "swaps %d refused %d", &swaps, &refused); err != nil || swaps != 0 || refused == 0 ||
		!strings.Contains(final, "operation not permitted") {
		t.Fatalf("want every swap refused with EPERM, attacker says %q", final)
	}
}
