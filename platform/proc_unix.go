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
