//go:build windows

package refcount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/procref/procref/platform"
	"golang.org/x/sys/windows"
)

// On Windows the privacy of the files rests on the runtime directory's ACL
// (see package platform): the files inherit it. openPrivateHandle only
// refuses what is plainly wrong: a directory or a reparse point (symlink).

// fileID identifies a file: volume serial number and file index.
type fileID struct {
	vol    uint32
	hi, lo uint32
}

func openPrivateHandle(path string, create bool) (windows.Handle, fileID, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return windows.InvalidHandle, fileID{}, err
	}
	disp := uint32(windows.OPEN_EXISTING)
	if create {
		disp = windows.OPEN_ALWAYS
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, disp, windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_PATH_NOT_FOUND) {
			return windows.InvalidHandle, fileID{}, fmt.Errorf("%s: %w", path, os.ErrNotExist)
		}
		return windows.InvalidHandle, fileID{}, fmt.Errorf("open %s: %w", path, err)
	}
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &fi); err != nil {
		windows.CloseHandle(h)
		return windows.InvalidHandle, fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.FileAttributes&(windows.FILE_ATTRIBUTE_DIRECTORY|windows.FILE_ATTRIBUTE_REPARSE_POINT) != 0 {
		windows.CloseHandle(h)
		return windows.InvalidHandle, fileID{}, fmt.Errorf("%s is not a regular file: %w; remove %s", path, ErrNotPrivate, path)
	}
	return h, fileID{fi.VolumeSerialNumber, fi.FileIndexHigh, fi.FileIndexLow}, nil
}

// openPrivate opens name in d by path (Windows: no handle-relative open;
// the directory's ACL is relied on).
func openPrivate(d *platform.PrivateDir, name string, create bool) (*os.File, error) {
	path := filepath.Join(d.Path(), name)
	h, _, err := openPrivateHandle(path, create)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(h), path), nil
}

// pathID returns the identity of the file now at path; ErrRemoved if none.
func pathID(path string) (fileID, error) {
	h, id, err := openPrivateHandle(path, false)
	if errors.Is(err, os.ErrNotExist) {
		return fileID{}, fmt.Errorf("%s: %w", path, ErrRemoved)
	}
	if err != nil {
		return fileID{}, err
	}
	windows.CloseHandle(h)
	return id, nil
}

// checkCurrent returns ErrRemoved if path no longer names the file fid.
func checkCurrent(path string, fid fileID) error {
	id, err := pathID(path)
	if err != nil {
		return err
	}
	if id != fid {
		return fmt.Errorf("%s was replaced: %w", path, ErrRemoved)
	}
	return nil
}

// tryFlock takes an exclusive LockFileEx lock on f's first byte without
// blocking, the lock gofrs/flock takes on Windows: false, nil when another
// handle holds it.
func tryFlock(f *os.File) (bool, error) {
	err := lockRange(windows.Handle(f.Fd()), 0, 1)
	if isLockViolation(err) {
		return false, nil
	}
	return err == nil, err
}

func unflock(f *os.File) error { return unlockRange(windows.Handle(f.Fd()), 0, 1) }

func lockRange(h windows.Handle, start, length int64) error {
	ov := windows.Overlapped{Offset: uint32(start), OffsetHigh: uint32(start >> 32)}
	return windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0,
		uint32(length), uint32(length>>32), &ov)
}

func unlockRange(h windows.Handle, start, length int64) error {
	ov := windows.Overlapped{Offset: uint32(start), OffsetHigh: uint32(start >> 32)}
	return windows.UnlockFileEx(h, 0, uint32(length), uint32(length>>32), &ov)
}

func isLockViolation(err error) bool {
	return errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING)
}

// processAlive: the process exists and has not exited.
func processAlive(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return errors.Is(err, windows.ERROR_ACCESS_DENIED)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return false
	}
	return code == 259 // STILL_ACTIVE
}
