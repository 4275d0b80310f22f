//go:build unix

package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"github.com/adrg/xdg"
	"golang.org/x/sys/unix"
)

func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

func detach(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	// Setsid and Setpgid together make setpgid fail with EPERM in the child
	// (a session leader cannot change its group); the new session already
	// gives a new process group.
	cmd.SysProcAttr.Setpgid = false
}

// runUserBase is where systemd-logind creates per-user runtime dirs. A
// variable so tests can point it at a temporary directory.
var runUserBase = "/run/user"

func defaultRuntimeDir(app string) string {
	if runtime.GOOS == "darwin" {
		return filepath.Join(xdg.RuntimeDir, app)
	}
	uid := os.Getuid()
	base := filepath.Join(runUserBase, strconv.Itoa(uid))
	if fi, err := os.Lstat(base); err == nil && fi.IsDir() && fi.Mode().Perm()&0o077 == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			return filepath.Join(base, app)
		}
	}
	// Per-uid name: a shared /tmp/procref could be created first by another
	// user. If another user pre-creates /tmp/procref-<ouruid>, the ownership
	// check in EnsurePrivateDir refuses it with instructions (the sticky bit
	// on /tmp stops them replacing it after we own it).
	return filepath.Join(os.TempDir(), app+"-"+strconv.Itoa(uid))
}

func checkPrivateDir(path string) error {
	if err := checkParents(path); err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("check private dir: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(path)
		return fmt.Errorf("%w: %s is a symlink (to %q); remove it with `rm %s` so a private directory can be created", ErrInsecureDir, path, target, path)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory (%s); remove or rename it", ErrInsecureDir, path, fi.Mode().Type())
	}
	uid := os.Getuid()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		return fmt.Errorf("%w: %s is owned by uid %d, not by us (uid %d); remove it, it is owned by uid %d (`rm -r %s` as that user or root)", ErrInsecureDir, path, st.Uid, uid, st.Uid, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %#o, group/other may access it; run `chmod 700 %s`", ErrInsecureDir, path, perm, path)
	}
	return nil
}

// checkParents checks every directory above path, from the root down, both
// as named and, if a component is a symlink, as resolved: each must be owned
// by root or us, and not writable by group or other unless it is sticky.
// Otherwise another user could rename path (or a directory above it) away
// and put their own in its place after our checks.
//
// Race: callers use the dir by path after the check, so a swap after it
// would redirect them. The answer is this check itself: replacing an entry
// needs write access to its directory, and from "/" down every directory on
// the path (and every symlink, which lives in such a directory) is then
// writable only by root or us, or sticky, where another user cannot rename
// or remove what is ours. So once the check passes, only root or we can
// swap anything (TestOtherUserCannotSwapCheckedDir: under a sticky parent
// another uid's rename and RENAME_EXCHANGE fail; under a 0777 one, which is
// refused here, they succeed). Group/other write bits also cover ACLs: a
// POSIX ACL granting write shows as the group write bit (the ACL mask).
func checkParents(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("check private dir: %w", err)
	}
	parent := filepath.Dir(abs)
	if err := checkChain(parent, abs); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return fmt.Errorf("check private dir: %w", err)
	}
	if real != parent {
		return checkChain(real, abs)
	}
	return nil
}

// checkChain checks dir and each directory above it, root first.
func checkChain(dir, target string) error {
	var chain []string
	for d := dir; ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	uid := os.Getuid()
	for i := len(chain) - 1; i >= 0; i-- {
		if err := checkAncestor(chain[i], target, uid); err != nil {
			return err
		}
	}
	return nil
}

// checkAncestor checks one directory above target (see checkParents). A
// symlink is checked for its owner only (its mode means nothing); its
// target is checked by the resolved pass.
func checkAncestor(d, target string, uid int) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return fmt.Errorf("check private dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	owner := int(st.Uid)
	if owner != 0 && owner != uid {
		return fmt.Errorf("%w: %s, above %s, is owned by uid %d, not by root or us (uid %d), so that user could replace what is inside; use a directory whose parents are all owned by root or you",
			ErrInsecureDir, d, target, owner, uid)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		who := "run" // we own it
		if owner != uid {
			who = "have root run"
		}
		fix := fmt.Sprintf("%s `chmod go-w %s` (or `chmod +t %s`)", who, d, d)
		return fmt.Errorf("%w: %s, above %s, has mode %#o without the sticky bit: group/other may write it, so another user could replace what is inside; %s, or use another directory",
			ErrInsecureDir, d, target, fi.Mode().Perm(), fix)
	}
	return nil
}
