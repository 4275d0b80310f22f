//go:build linux

package platform

import "golang.org/x/sys/unix"

// peerCred reads SO_PEERCRED: the credentials the peer had when it called
// connect (or listen, for the listening side), kept by the kernel.
func peerCred(fd uintptr) (Peer, error) {
	cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return Peer{}, err
	}
	return Peer{UID: int(cred.Uid), PID: int(cred.Pid)}, nil
}
