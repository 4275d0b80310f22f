package platform

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// procNamesFD reports whether /proc/self/fd/FD names the directory fd
// holds (procfs mounted and not faked): then sockets in it are bound and
// dialled through that path (see socketAddr).
func procNamesFD(fd int) bool {
	var viaProc, held unix.Stat_t
	if unix.Stat("/proc/self/fd/"+strconv.Itoa(fd), &viaProc) != nil || unix.Fstat(fd, &held) != nil {
		return false
	}
	return viaProc.Dev == held.Dev && viaProc.Ino == held.Ino
}
