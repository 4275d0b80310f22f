//go:build windows

package platform

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"github.com/adrg/xdg"
	"golang.org/x/sys/windows"
)

const stillActive = 259 // STILL_ACTIVE exit code

// openProcess opens pid with access (plus query rights). A missing PID
// gives ERROR_INVALID_PARAMETER.
func openProcess(pid int, access uint32) (windows.Handle, error) {
	h, err := windows.OpenProcess(access|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
			return 0, ErrNoProcess
		}
		return 0, err
	}
	return h, nil
}

func handleState(h windows.Handle) (start uint64, exited bool, err error) {
	var c, e, k, u windows.Filetime
	if err := windows.GetProcessTimes(h, &c, &e, &k, &u); err != nil {
		return 0, false, fmt.Errorf("GetProcessTimes: %w", err)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return 0, false, fmt.Errorf("GetExitCodeProcess: %w", err)
	}
	return uint64(c.HighDateTime)<<32 | uint64(c.LowDateTime), code != stillActive, nil
}

// procState: "zombie" here means the process has exited but handles keep its
// object alive (a process that really exits with code 259 is misreported as
// running; Windows offers nothing better short of WaitForSingleObject).
func procState(pid int) (uint64, bool, error) {
	h, err := openProcess(pid, 0)
	if err != nil {
		return 0, false, err
	}
	defer windows.CloseHandle(h)
	return handleState(h)
}

func alive(pid int) bool {
	h, err := openProcess(pid, 0)
	if err != nil {
		return errors.Is(err, windows.ERROR_ACCESS_DENIED)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	return code == stillActive
}

// openIdentity opens a handle and checks the start time through it; the
// handle pins the process object, so what we later terminate or wait on is
// exactly the process we checked (no PID-reuse race).
func openIdentity(id Identity, access uint32) (windows.Handle, error) {
	h, err := openProcess(id.PID, access)
	if err != nil {
		return 0, err
	}
	st, exited, err := handleState(h)
	if err == nil && exited {
		err = ErrNoProcess
	}
	if err == nil && st != id.StartTime {
		err = ErrIdentityChanged
	}
	if err != nil {
		windows.CloseHandle(h)
		return 0, err
	}
	return h, nil
}

// signalIdentity: Windows has no SIGTERM for detached processes (they have no
// console for CTRL_BREAK), so both kinds use TerminateProcess.
func signalIdentity(id Identity, _ sigKind) error {
	h, err := openIdentity(id, windows.PROCESS_TERMINATE)
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	if err := windows.TerminateProcess(h, 1); err != nil {
		return fmt.Errorf("TerminateProcess: %w", err)
	}
	return nil
}

func waitGone(ctx context.Context, id Identity) error {
	h, err := openIdentity(id, windows.SYNCHRONIZE)
	if err != nil {
		if errors.Is(err, ErrNoProcess) || errors.Is(err, ErrIdentityChanged) {
			return nil
		}
		return pollGone(ctx, id)
	}
	defer windows.CloseHandle(h)
	for {
		ms := uint32(100)
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl)
			if left <= 0 {
				// The clock can pass the deadline before the context's
				// timer fires, when ctx.Err() is still nil.
				return context.DeadlineExceeded
			}
			if left < 100*time.Millisecond {
				ms = uint32(left/time.Millisecond) + 1
			}
		}
		ev, err := windows.WaitForSingleObject(h, ms)
		if err != nil {
			return pollGone(ctx, id)
		}
		if ev == windows.WAIT_OBJECT_0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func detach(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP
}

func bindToParent(*exec.Cmd) {}

// startBound starts cmd and assigns it to a new kill-on-close job object.
// We hold the only handle: when our process exits the kernel closes it and
// kills the job. A goroutine closes the handle once the child has exited.
func startBound(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return fmt.Errorf("bind child %d to parent: CreateJobObject: %w", cmd.Process.Pid, err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("bind child %d to parent: SetInformationJobObject: %w", cmd.Process.Pid, err)
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE|windows.SYNCHRONIZE, false, uint32(cmd.Process.Pid))
	if err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("bind child %d to parent: OpenProcess: %w", cmd.Process.Pid, err)
	}
	if err := windows.AssignProcessToJobObject(job, h); err != nil {
		windows.CloseHandle(h)
		windows.CloseHandle(job)
		return fmt.Errorf("bind child %d to parent: AssignProcessToJobObject: %w", cmd.Process.Pid, err)
	}
	go func() {
		windows.WaitForSingleObject(h, windows.INFINITE)
		windows.CloseHandle(h)
		windows.CloseHandle(job)
	}()
	return nil
}

func defaultRuntimeDir(app string) string { return filepath.Join(xdg.RuntimeDir, app) }

// checkPrivateDir on Windows: no uid/mode bits; refuse reparse points
// (symlinks, junctions) and non-directories, rely on the per-user profile
// ACLs of LocalAppData for privacy.
func checkPrivateDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("check private dir: %w", err)
	}
	if fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
		return fmt.Errorf("%w: %s is a symlink or junction; remove it with `rmdir %s`", ErrInsecureDir, path, path)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory; remove or rename it", ErrInsecureDir, path)
	}
	return nil
}

func rss(int) (uint64, error) {
	return 0, fmt.Errorf("rss on windows: %w", errors.ErrUnsupported)
}
