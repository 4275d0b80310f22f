//go:build openbsd

package platform

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCred reads SO_PEERCRED: struct sockpeercred {uid, gid, pid}, three
// 32-bit fields. x/sys has no typed getter for it on OpenBSD, so it is read
// with GetsockoptIPv6Mreq, a plain getsockopt into a larger (20-byte)
// buffer of which the kernel fills the first 12 bytes.
func peerCred(fd uintptr) (Peer, error) {
	m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return Peer{}, err
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(m)), unix.SizeofIPv6Mreq)
	ne := binary.NativeEndian
	return Peer{UID: int(ne.Uint32(b[0:])), PID: int(int32(ne.Uint32(b[8:])))}, nil
}
