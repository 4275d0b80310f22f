//go:build netbsd

package platform

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// localPeerEID is LOCAL_PEEREID (sys/un.h), at level 0 (SOL_LOCAL); x/sys
// does not define it.
const localPeerEID = 3

// peerCred reads LOCAL_PEEREID: struct unpcbid {pid, euid, egid}, three
// 32-bit fields. x/sys has no typed getter for it, so it is read with
// GetsockoptIPv6Mreq, a plain getsockopt into a larger (20-byte) buffer of
// which the kernel fills the first 12 bytes.
func peerCred(fd uintptr) (Peer, error) {
	m, err := unix.GetsockoptIPv6Mreq(int(fd), 0, localPeerEID)
	if err != nil {
		return Peer{}, err
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(m)), unix.SizeofIPv6Mreq)
	ne := binary.NativeEndian
	return Peer{PID: int(int32(ne.Uint32(b[0:]))), UID: int(ne.Uint32(b[4:]))}, nil
}
