package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"
)

// ErrNotOurPeer reports that the process at the other end of a unix socket
// is not ours: another uid, or not the process we expected. The wrapped text
// names both.
var ErrNotOurPeer = errors.New("peer is not ours")

// Peer is what the kernel says about the other end of a unix socket
// connection. PID is 0 where the OS does not report it (PID of the process
// that called listen or connect; see PeerCred).
type Peer struct {
	UID int
	PID int
}

// PeerCred returns the kernel's credentials of the peer of c, a unix socket
// connection (*net.UnixConn). Linux: SO_PEERCRED (uid and pid). darwin:
// LOCAL_PEERCRED (uid) and LOCAL_PEERPID (pid). freebsd: LOCAL_PEERCRED
// (uid; no pid). openbsd: SO_PEERCRED (uid and pid). netbsd: LOCAL_PEEREID
// (uid and pid). Windows (AF_UNIX has no peer uid): the peer's pid from
// SIO_AF_UNIX_GETPEERPID, and an error unless that process's token has our
// user SID; UID is then our os.Getuid (-1). Others (dragonfly, solaris,
// illumos): an error wrapping errors.ErrUnsupported. It does not block.
func PeerCred(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("peer credentials of a %T: %w", c, errors.ErrUnsupported)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var p Peer
	var perr error
	if err := rc.Control(func(fd uintptr) { p, perr = peerCred(fd) }); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if perr != nil {
		return Peer{}, fmt.Errorf("peer credentials on %s: %w", runtime.GOOS, perr)
	}
	return p, nil
}

// CheckPeer returns nil if the kernel says the peer of c runs with our uid
// and, when wantPID > 0 and the OS reports the peer's pid, that the pid is
// wantPID. Otherwise it returns an error wrapping ErrNotOurPeer. Where the
// OS gives no peer credentials (PeerCred's ErrUnsupported) it returns nil:
// that is the documented limitation of those systems, where the private
// directory and the token are the only checks.
func CheckPeer(c net.Conn, wantPID int) error {
	p, err := PeerCred(c)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotOurPeer, err)
	}
	if uid := os.Getuid(); p.UID != uid {
		return fmt.Errorf("%w: the peer runs as uid %d, we are uid %d", ErrNotOurPeer, p.UID, uid)
	}
	if wantPID > 0 && p.PID > 0 && p.PID != wantPID {
		return fmt.Errorf("%w: the peer is pid %d, expected pid %d", ErrNotOurPeer, p.PID, wantPID)
	}
	return nil
}

// OwnedByUs reports whether the kernel says fi (from Stat of an open file,
// not a path) is owned by our uid. On Windows it is always true: files have
// no uid there, and the per-user profile ACL is relied on.
func OwnedByUs(fi fs.FileInfo) bool { return ownedByUs(fi) }

// MaxSocketPath returns the longest unix socket path the OS takes: sun_path
// holds 108 bytes on Linux and Windows, 104 on macOS and the BSDs, the NUL
// included.
func MaxSocketPath() int {
	if runtime.GOOS == "linux" || runtime.GOOS == "windows" {
		return 107
	}
	return 103
}
