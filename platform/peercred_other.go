//go:build !linux && !darwin && !freebsd && !openbsd && !netbsd

package platform

import "errors"

// peerCred: no peer credentials here (Windows' AF_UNIX has no peer uid;
// dragonfly, solaris, illumos, aix are not wired). CheckPeer treats this as
// the documented limitation.
func peerCred(fd uintptr) (Peer, error) { return Peer{}, errors.ErrUnsupported }
