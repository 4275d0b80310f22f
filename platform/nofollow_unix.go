//go:build unix

package platform

import "syscall"

// ONoFollow is O_NOFOLLOW for os.OpenFile: opening a symbolic link fails
// (ELOOP) instead of following it.
const ONoFollow = syscall.O_NOFOLLOW
