//go:build darwin

package platform

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

const darwinSZOMB = 5 // p_stat of a zombie (sys/proc.h)

// procState reads kinfo_proc via sysctl kern.proc.pid.<pid>. For a missing
// PID the kernel returns no data, which x/sys reports as EIO.
func procState(pid int) (start uint64, zombie bool, err error) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		if errors.Is(err, unix.EIO) || errors.Is(err, unix.ESRCH) {
			return 0, false, ErrNoProcess
		}
		return 0, false, fmt.Errorf("sysctl kern.proc.pid: %w", err)
	}
	if int(k.Proc.P_pid) != pid {
		return 0, false, ErrNoProcess
	}
	tv := k.Proc.P_starttime
	return uint64(tv.Sec)*1_000_000 + uint64(tv.Usec), k.Proc.P_stat == darwinSZOMB, nil
}

func rss(int) (uint64, error) {
	return 0, fmt.Errorf("rss on darwin needs libproc: %w", errors.ErrUnsupported)
}
