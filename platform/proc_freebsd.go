//go:build freebsd

package platform

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kinfoProcHead mirrors the leading part of FreeBSD's struct kinfo_proc
// (sys/user.h, layout stable since FreeBSD 7) up to ki_stat. Pointers are
// uintptr; vm_size_t and segsz_t are pointer/long sized on every FreeBSD
// architecture; long is Go int. x/sys/unix has no KinfoProc for FreeBSD.
type kinfoProcHead struct {
	Structsize int32
	Layout     int32
	Args       uintptr
	Paddr      uintptr
	Addr       uintptr
	Tracep     uintptr
	Textvp     uintptr
	Fd         uintptr
	Vmspace    uintptr
	Wchan      uintptr
	Pid        int32
	Ppid       int32
	Pgid       int32
	Tpgid      int32
	Sid        int32
	Tsid       int32
	Jobc       int16
	Spare1     int16
	TdevOld    uint32
	Siglist    [4]uint32
	Sigmask    [4]uint32
	Sigignore  [4]uint32
	Sigcatch   [4]uint32
	UID        uint32
	Ruid       uint32
	Svuid      uint32
	Rgid       uint32
	Svgid      uint32
	Ngroups    int16
	Spare2     int16
	Groups     [16]uint32
	Size       uintptr
	Rssize     uintptr // pages
	Swrss      uintptr
	Tsize      uintptr
	Dsize      uintptr
	Ssize      uintptr
	Xstat      uint16
	Acflag     uint16
	Pctcpu     uint32
	Estcpu     uint32
	Slptime    uint32
	Swtime     uint32
	Cow        uint32
	Runtime    uint64
	Start      unix.Timeval
	Childtime  unix.Timeval
	Flag       int
	Kiflag     int
	Traceflag  int32
	Stat       int8
}

const freebsdSZOMB = 5 // ki_stat of a zombie (sys/proc.h)

func kinfo(pid int) (*kinfoProcHead, error) {
	buf, err := unix.SysctlRaw("kern.proc.pid", pid)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, ErrNoProcess
		}
		return nil, fmt.Errorf("sysctl kern.proc.pid: %w", err)
	}
	if len(buf) == 0 {
		return nil, ErrNoProcess
	}
	var k kinfoProcHead
	if len(buf) < int(unsafe.Sizeof(k)) {
		return nil, fmt.Errorf("sysctl kern.proc.pid: short kinfo_proc (%d bytes)", len(buf))
	}
	k = *(*kinfoProcHead)(unsafe.Pointer(&buf[0]))
	if int(k.Structsize) != len(buf) || int(k.Pid) != pid {
		return nil, fmt.Errorf("sysctl kern.proc.pid: unexpected kinfo_proc layout (size %d, pid %d)", k.Structsize, k.Pid)
	}
	return &k, nil
}

func procState(pid int) (start uint64, zombie bool, err error) {
	k, err := kinfo(pid)
	if err != nil {
		return 0, false, err
	}
	return uint64(k.Start.Sec)*1_000_000 + uint64(k.Start.Usec), k.Stat == freebsdSZOMB, nil
}

func rss(pid int) (uint64, error) {
	k, err := kinfo(pid)
	if err != nil {
		return 0, err
	}
	return uint64(k.Rssize) * uint64(os.Getpagesize()), nil
}
