//go:build windows

package platform

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// sioAFUnixGetPeerPID is SIO_AF_UNIX_GETPEERPID (afunix.h):
// _WSAIOR(IOC_VENDOR, 256).
const sioAFUnixGetPeerPID = 0x58000100

// peerCred asks AF_UNIX for the peer's pid (SIO_AF_UNIX_GETPEERPID;
// Windows 10 1803+) and compares the user SID of that process's token with
// ours, since Windows has no peer uid. A peer of another user (or one whose
// process we may not query) is an error; ours is reported with our own
// os.Getuid (-1 on Windows), so CheckPeer's uid comparison holds.
func peerCred(fd uintptr) (Peer, error) {
	var pid, n uint32
	if err := windows.WSAIoctl(windows.Handle(fd), sioAFUnixGetPeerPID, nil, 0,
		(*byte)(unsafe.Pointer(&pid)), uint32(unsafe.Sizeof(pid)), &n, nil, 0); err != nil {
		// Older Windows lacks the ioctl: no kernel check there (the
		// token still is one), as on systems without peer credentials.
		return Peer{}, fmt.Errorf("SIO_AF_UNIX_GETPEERPID: %v: %w", err, errors.ErrUnsupported)
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return Peer{}, fmt.Errorf("peer pid %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return Peer{}, fmt.Errorf("peer pid %d: %w", pid, err)
	}
	defer tok.Close()
	theirs, err := tok.GetTokenUser()
	if err != nil {
		return Peer{}, fmt.Errorf("peer pid %d: %w", pid, err)
	}
	ours, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return Peer{}, err
	}
	if !theirs.User.Sid.Equals(ours.User.Sid) {
		return Peer{}, fmt.Errorf("peer pid %d runs as %s, we are %s", pid, theirs.User.Sid, ours.User.Sid)
	}
	return Peer{UID: os.Getuid(), PID: int(pid)}, nil
}
