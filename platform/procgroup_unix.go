//go:build unix

package platform

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetProcessGroup makes cmd (not yet started) lead a process group of its
// own, so that [KillProcessGroup] ends everything it starts: a server
// behind npx, uvx or `sh -c` whose real process ignores stdin EOF. Other
// SysProcAttr fields are kept.
func SetProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// KillProcessGroup sends SIGKILL to the process group led by pid. A group
// already gone is not an error. (The group id outlives its leader while any
// member lives; once none does, a reused pid is not that group's leader
// unless it made itself one, so signalling late is safe in practice.)
func KillProcessGroup(pid int) error {
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// ProcessGroupAlive reports whether any process of the group led by pid
// still exists.
func ProcessGroupAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(-pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// LeadsProcessGroup reports whether this process leads its process group,
// as a process started with [Detach] does.
func LeadsProcessGroup() bool {
	pgid, err := unix.Getpgid(0)
	return err == nil && pgid == unix.Getpid()
}
