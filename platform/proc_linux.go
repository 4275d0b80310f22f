//go:build linux

package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procState parses /proc/PID/stat. The comm field (2) may contain spaces and
// ')' so fields are counted after the LAST ')': state is field 3, starttime
// field 22 (clock ticks since boot).
func procState(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return 0, false, ErrNoProcess
		}
		return 0, false, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat: %d fields after comm", pid, len(f))
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	// 'Z' zombie, 'X' dead (only briefly visible).
	return start, f[0][0] == 'Z' || f[0][0] == 'X', nil
}

// openIdentity returns a pidfd that refers to exactly the process id names.
// Race argument: the pidfd is opened first, then the start time is read. If
// the start time matches, the process holding the PID at read time is ours;
// ours existed before the pidfd was opened and two processes never hold one
// PID at once, so the pidfd refers to ours. After that, signals and polls on
// the pidfd can never reach a process that reuses the PID.
// It returns fd -1 (and nil error) when pidfds are unavailable (kernel < 5.3,
// seccomp), after performing the plain start-time check.
func openIdentity(id Identity) (int, error) {
	fd, err := unix.PidfdOpen(id.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, ErrNoProcess
		}
		fd = -1 // ENOSYS, EPERM (seccomp), EMFILE...: fall back to the racy check
	}
	st, zombie, err := procState(id.PID)
	if err == nil && zombie {
		err = ErrNoProcess
	}
	if err == nil && st != id.StartTime {
		err = ErrIdentityChanged
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, err
	}
	return fd, nil
}

func signalIdentity(id Identity, s sigKind) error {
	sig := unix.SIGTERM
	if s == sigKill {
		sig = unix.SIGKILL
	}
	fd, err := openIdentity(id)
	if err != nil {
		return err
	}
	if fd >= 0 {
		defer unix.Close(fd)
		err = unix.PidfdSendSignal(fd, sig, nil, 0)
	} else {
		// No pidfd: the PID could be reused between the check above and
		// this kill; that needs the PID space to wrap within microseconds.
		err = unix.Kill(id.PID, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return ErrNoProcess
	}
	return err
}

// waitGone polls the pidfd (readable once the process has exited, zombie
// included), waking at least every 100 ms to notice ctx cancellation.
func waitGone(ctx context.Context, id Identity) error {
	fd, err := openIdentity(id)
	if err != nil {
		if errors.Is(err, ErrNoProcess) || errors.Is(err, ErrIdentityChanged) {
			return nil
		}
		return pollGone(ctx, id)
	}
	if fd < 0 {
		return pollGone(ctx, id)
	}
	defer unix.Close(fd)
	for {
		ms := 100
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl)
			if left <= 0 {
				// The clock can pass the deadline before the context's
				// timer fires, when ctx.Err() is still nil.
				return context.DeadlineExceeded
			}
			if left < 100*time.Millisecond {
				ms = int(left/time.Millisecond) + 1
			}
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return pollGone(ctx, id)
		}
		if n > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func bindToParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// startBound forks from a goroutine locked to its OS thread and keeps the
// thread locked until the child exits, so the Pdeathsig "parent" (the
// forking thread) lives exactly as long as our process or the child. The
// goroutine waits with waitid(WNOWAIT), which leaves the child for the
// caller's cmd.Wait to reap. If the caller reaps first, waitid fails with
// ECHILD and the goroutine ends. (Go's own forkExec also re-checks getppid
// after prctl, closing the race where we die before the child sets it.)
func startBound(cmd *exec.Cmd) error {
	bindToParent(cmd)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			errc <- err
			return
		}
		pid := cmd.Process.Pid
		errc <- nil
		for {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	return <-errc
}

func rss(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return 0, ErrNoProcess
		}
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/statm: %q", pid, b)
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/statm: %w", pid, err)
	}
	return pages * uint64(os.Getpagesize()), nil
}
