package platform

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/procref/procref/internal/proctest"
	"golang.org/x/sys/unix"
)

func init() { helperModes["swap"] = swapHelper }

// swapHelper tries, as another user, to move the dir SWAP_DIR away and to
// exchange it with one of its own (renameat2 RENAME_EXCHANGE, as in issue
// 22's attack), and prints one line per try: "rename ERR" / "exchange ERR"
// ("ok" when it worked).
func swapHelper() {
	dir := os.Getenv("SWAP_DIR")
	parent := filepath.Dir(dir)
	result := func(err error) string {
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	fake := filepath.Join(parent, fmt.Sprintf("fake-%d", os.Getpid()))
	if err := os.Mkdir(fake, 0o700); err != nil {
		fatalHelper(err)
	}
	err := unix.Renameat2(unix.AT_FDCWD, fake, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	fmt.Println("exchange", result(err))
	if err == nil { // undo, so the rename below tries our dir
		unix.Renameat2(unix.AT_FDCWD, fake, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	}
	os.Remove(fake)
	fmt.Println("rename", result(os.Rename(dir, dir+".moved")))
}

// Issue 22 item 3, the race left after the check: the runtime dir is used by
// path after EnsurePrivateDir, so it is safe only if no other user can swap
// it afterwards. A real second uid shows the answer: under a sticky parent
// (what the parent check accepts) the swap fails; under a 0777 non-sticky
// parent (what it refuses) it succeeds.
func TestOtherUserCannotSwapCheckedDir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper as uid 65534")
	}
	base, bin := proctest.ForOtherUser(t, "platform.test")
	try := func(parentMode os.FileMode) string {
		t.Helper()
		parent, err := os.MkdirTemp(base, "parent")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(parent, parentMode); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "rt")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=1", "HELPER_MODE=swap", "SWAP_DIR="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as uid 65534: %v\n%s", err, out)
		}
		return string(out)
	}
	sticky := try(0o777 | os.ModeSticky)
	t.Logf("sticky parent:\n%s", sticky)
	if !strings.Contains(sticky, "exchange operation not permitted") || !strings.Contains(sticky, "rename ") || strings.Contains(sticky, " ok") {
		t.Fatalf("another user swapped or moved our dir under a sticky parent:\n%s", sticky)
	}
	open := try(0o777)
	t.Logf("0777 parent:\n%s", open)
	if !strings.Contains(open, "exchange ok") {
		t.Fatalf("the 0777 parent did not allow the swap the parent check guards against:\n%s", open)
	}
}
