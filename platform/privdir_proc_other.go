//go:build unix && !linux

package platform

// procNamesFD is false here: sockets go by path after a device and inode
// comparison (see socketAddr). FreeBSD's bindat/connectat would do it
// through the handle, but x/sys (v0.50.0) does not offer them.
func procNamesFD(int) bool { return false }
