//go:build darwin

package platform

import "golang.org/x/sys/unix"

// peerCred reads LOCAL_PEERCRED (the uid, as getpeereid does) and
// LOCAL_PEERPID.
func peerCred(fd uintptr) (Peer, error) {
	cred, err := unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return Peer{}, err
	}
	pid, err := unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	if err != nil {
		pid = 0 // uid is what matters; the pid check is skipped
	}
	return Peer{UID: int(cred.Uid), PID: pid}, nil
}
