//go:build unix && !linux

package platform

import (
	"context"
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

func bindToParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if !cmd.SysProcAttr.Setsid {
		cmd.SysProcAttr.Setpgid = true
	}
}

func startBound(cmd *exec.Cmd) error {
	bindToParent(cmd)
	return cmd.Start()
}

// signalIdentity checks the start time, then signals with kill(2). Known
// race: if the process exits and its PID is reused by a new process in the
// microseconds between the check and kill, the new process gets the signal.
// PID reuse needs the whole PID space to wrap in that window, and these
// kernels have no pidfd to close it, so we accept it.
func signalIdentity(id Identity, s sigKind) error {
	st, zombie, err := procState(id.PID)
	if err != nil {
		return err
	}
	if zombie {
		return ErrNoProcess
	}
	if st != id.StartTime {
		return ErrIdentityChanged
	}
	sig := unix.SIGTERM
	if s == sigKill {
		sig = unix.SIGKILL
	}
	if err := unix.Kill(id.PID, sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrNoProcess
		}
		return err
	}
	return nil
}

func waitGone(ctx context.Context, id Identity) error { return pollGone(ctx, id) }
