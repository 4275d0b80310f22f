//go:build !linux && !darwin && !freebsd

package platform

import "errors"

// peerCred: no peer credentials through x/sys here (openbsd's SO_PEERCRED
// and netbsd's LOCAL_PEEREID are not wrapped; Windows' AF_UNIX has none).
// CheckPeer treats this as the documented limitation.
func peerCred(fd uintptr) (Peer, error) { return Peer{}, errors.ErrUnsupported }
