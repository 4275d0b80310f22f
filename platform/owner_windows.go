//go:build windows

package platform

import (
	"io/fs"
	"os"
)

// ownedByUs is true on Windows: files there have no uid; the per-user
// profile directory's ACL is relied on (documented limitation).
func ownedByUs(fi fs.FileInfo) bool { return true }

// SameFile reports whether a and b describe the same file (os.SameFile).
func SameFile(a, b fs.FileInfo) bool { return os.SameFile(a, b) }
