//go:build freebsd

package platform

import "golang.org/x/sys/unix"

// peerCred reads LOCAL_PEERCRED (the uid, as getpeereid does). x/sys's
// Xucred has no pid field, so the pid check is skipped here.
func peerCred(fd uintptr) (Peer, error) {
	cred, err := unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return Peer{}, err
	}
	return Peer{UID: int(cred.Uid)}, nil
}
