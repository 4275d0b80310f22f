//go:build unix

package platform

import (
	"io/fs"
	"os"
	"syscall"
)

// fileOwner returns the uid that owns fi, or -1 if fi has no unix stat.
func fileOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// ownedByUs reports whether fi is owned by our uid.
func ownedByUs(fi fs.FileInfo) bool { return fileOwner(fi) == os.Getuid() }
