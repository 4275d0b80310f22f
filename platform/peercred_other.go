//go:build !linux && !darwin && !freebsd && !openbsd && !netbsd && !windows

package platform

import "errors"

// peerCred: no peer credentials wired here (dragonfly, solaris, illumos,
// aix). CheckPeer treats this as the documented limitation.
func peerCred(fd uintptr) (Peer, error) { return Peer{}, errors.ErrUnsupported }
