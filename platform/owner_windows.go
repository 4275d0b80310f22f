//go:build windows

package platform

import "io/fs"

// ownedByUs is true on Windows: files there have no uid; the per-user
// profile directory's ACL is relied on (documented limitation).
func ownedByUs(fi fs.FileInfo) bool { return true }
