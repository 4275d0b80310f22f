//go:build unix

package platform

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileOwner returns the uid that owns fi, or -1 if fi has no unix stat.
func fileOwner(fi fs.FileInfo) int {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return int(st.Uid)
	case *unix.Stat_t:
		return int(st.Uid)
	}
	return -1
}

// ownedByUs reports whether fi is owned by our uid.
func ownedByUs(fi fs.FileInfo) bool { return fileOwner(fi) == os.Getuid() }

// SameFile reports whether a and b, from PrivateDir.Stat, os.Stat or
// File.Stat, describe the same file (device and inode).
func SameFile(a, b fs.FileInfo) bool {
	ad, ai, ok1 := devIno(a)
	bd, bi, ok2 := devIno(b)
	return ok1 && ok2 && ad == bd && ai == bi
}

func devIno(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return uint64(st.Dev), uint64(st.Ino), true
	case *unix.Stat_t:
		return uint64(st.Dev), uint64(st.Ino), true
	}
	return 0, 0, false
}
