//go:build linux && !mips && !mipsle

package refcount

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
	"unsafe"

	"github.com/procref/procref/platform"
	"golang.org/x/sys/unix"
)

// System V IPC constants (linux/ipc.h, linux/sem.h). x/sys/unix has only the
// syscall numbers.
const (
	ipcCreat  = 0o1000
	ipcExcl   = 0o2000
	ipcNowait = 0o4000
	ipcRmid   = 0
	ipcSet    = 1
	ipcStat   = 2
	semGetVal = 12
	semUndo   = 0x1000

	// Note: no IPC_64 (0x100). The direct semctl syscall on amd64 and
	// arm64 always uses struct semid64_ds and rejects cmd|IPC_64 with
	// EINVAL (only architectures with the multiplexed ipc(2) call parse
	// it). Passing it would make every IPC_STAT look like a removed set.
)

// sembuf is struct sembuf from linux/sem.h.
type sembuf struct {
	num uint16
	op  int16
	flg int16
}

// semPerm is the part of struct ipc64_perm (the head of struct semid64_ds)
// that we read: key, uid, gid, cuid, cgid and mode are 32-bit fields at
// offsets 0..20 on every 64-bit Linux architecture (asm-generic/ipcbuf.h,
// which x86_64 and arm64 use).
type semPerm struct {
	key              int32
	uid, gid         uint32
	cuid, cgid, mode uint32
}

// semidDSSize is larger than struct semid64_ds on any architecture
// (104 bytes on amd64, 88 on arm64).
const semidDSSize = 256

func semget(key int32, nsems, flags int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func semctl(id, num, cmd int, arg unsafe.Pointer) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), uintptr(arg), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// sysvAvailable: this build has the SysV implementation (Auto picks it).
const sysvAvailable = true

// semop runs one operation, retrying on EINTR. timeout nil blocks.
func semop(id int, op sembuf, timeout *unix.Timespec) error {
	for {
		e := semtimedop(id, &op, timeout)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func semStat(id int) (semPerm, error) {
	var buf [semidDSSize]byte
	if _, err := semctl(id, 0, ipcStat, unsafe.Pointer(&buf[0])); err != nil {
		return semPerm{}, err
	}
	ne := binary.NativeEndian
	return semPerm{
		key:  int32(ne.Uint32(buf[0:])),
		uid:  ne.Uint32(buf[4:]),
		gid:  ne.Uint32(buf[8:]),
		cuid: ne.Uint32(buf[12:]),
		cgid: ne.Uint32(buf[16:]),
		mode: ne.Uint32(buf[20:]),
	}, nil
}

// removedErr maps the errors the kernel returns for a set that no longer
// exists (EIDRM while waiting on it, EINVAL for a stale semid) to ErrRemoved.
func removedErr(id int, err error) error {
	if errors.Is(err, unix.EIDRM) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("semaphore set %d: %w (%v)", id, ErrRemoved, err)
	}
	return fmt.Errorf("semaphore set %d: %w", id, err)
}

type sysvCounter struct {
	name   string
	ipcKey int32
	semid  int
}

// openSysV opens or creates the set.
//
// Creation race: every racer calls semget(key, 1, IPC_CREAT|0600). The
// kernel serialises semget on the IPC namespace, so exactly one set is
// created and every racer gets its id. Linux zero-fills a new set's values,
// which is the initial count we want, so there is no "created but not yet
// initialised" window and no SETVAL. SETVAL must never be used on a live set:
// besides racing with other processes' operations, it clears every process's
// SEM_UNDO adjustment for that semaphore, so the references of processes
// alive at that time would never be given back (or would be given back
// twice).
func openSysV(name, key string, d *platform.PrivateDir) (backend, error) {
	secret, err := loadSecret(d)
	if err != nil {
		return nil, err
	}
	uid := os.Geteuid()
	k := sysvKey(secret, uid, key)
	for attempt := 0; ; attempt++ {
		id, err := semget(k, 1, ipcCreat|0o600)
		if err != nil {
			return nil, semgetErr(name, k, uid, err)
		}
		c := &sysvCounter{name: name, ipcKey: k, semid: id}
		err = c.verify(uid)
		// Race: the set may be removed between semget and IPC_STAT (a
		// concurrent Remove); semget then creates a fresh one.
		if errors.Is(err, ErrRemoved) && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// lookupSysV opens an existing set without creating one; os.ErrNotExist if
// there is none.
func lookupSysV(name, key string, d *platform.PrivateDir) (backend, error) {
	secret, err := loadSecret(d)
	if err != nil {
		return nil, err
	}
	uid := os.Geteuid()
	k := sysvKey(secret, uid, key)
	id, err := semget(k, 0, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, os.ErrNotExist
	}
	if err != nil {
		return nil, semgetErr(name, k, uid, err)
	}
	c := &sysvCounter{name: name, ipcKey: k, semid: id}
	if err := c.verify(uid); err != nil {
		return nil, err
	}
	return c, nil
}

func semgetErr(name string, k int32, uid int, err error) error {
	if errors.Is(err, unix.EACCES) {
		return fmt.Errorf("semaphore set with key %#08x for %s belongs to another user: %w; %s",
			uint32(k), name, ErrNotPrivate, othersSet(uid, fmt.Sprintf("ipcrm -S %#08x", uint32(k))))
	}
	if errors.Is(err, unix.ENOSPC) {
		// Whoever holds them, `ipcs -s` lists them; only root can raise
		// the limit.
		return fmt.Errorf("semget key %#08x for %s: %w (%v); see who holds them with `ipcs -s`, or have root raise SEMMNI (4th field of `sysctl kernel.sem`)",
			uint32(k), name, ErrSetsExhausted, err)
	}
	return fmt.Errorf("semget key %#08x for %s: %w", uint32(k), name, err)
}

// verify refuses a set that is not owned (and created) by uid with mode
// 0600: another user could otherwise read or change our counts.
func (c *sysvCounter) verify(uid int) error {
	p, err := semStat(c.semid)
	if err != nil {
		return removedErr(c.semid, err)
	}
	if p.uid != uint32(uid) || p.cuid != uint32(uid) || p.mode&0o777 != 0o600 {
		// Only its owner, its creator or root may remove a set.
		fix := fmt.Sprintf("remove it with `ipcrm -s %d`", c.semid)
		if uid != 0 && p.uid != uint32(uid) && p.cuid != uint32(uid) {
			fix = "it is another user's; " + othersSet(uid, fmt.Sprintf("ipcrm -s %d", c.semid))
		}
		return fmt.Errorf("semaphore set %d (key %#08x) for %s is owned by uid %d (creator %d) with mode %#o, want uid %d and mode 0600: %w; %s",
			c.semid, uint32(c.ipcKey), c.name, p.uid, p.cuid, p.mode&0o777, uid, ErrNotPrivate, fix)
	}
	return nil
}

// othersSet says what to do about a set of another user, which we (uid)
// can neither use nor remove: procref's default (--refcount auto) already
// counts with file locks instead; only its owner or root can run ipcrm.
func othersSet(uid int, ipcrm string) string {
	if uid == 0 {
		return "remove it with `" + ipcrm + "`"
	}
	return "procref cannot use or remove it. With --refcount auto (the default) it counts with file locks instead; to get the semaphore back, ask that user or an administrator to run `" + ipcrm + "`"
}

func (c *sysvCounter) acquire() (func() error, error) {
	if err := semop(c.semid, sembuf{num: 0, op: 1, flg: semUndo}, nil); err != nil {
		return nil, removedErr(c.semid, err)
	}
	return func() error {
		// IPC_NOWAIT: the value cannot be below our own +1 unless someone
		// reset the set; never block in release.
		err := semop(c.semid, sembuf{num: 0, op: -1, flg: semUndo | ipcNowait}, nil)
		if errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("semaphore set %d: count already zero (was it reset with SETVAL?)", c.semid)
		}
		if err != nil {
			return removedErr(c.semid, err)
		}
		return nil
	}, nil
}

func (c *sysvCounter) count() (int, error) {
	n, err := semctl(c.semid, 0, semGetVal, nil)
	if err != nil {
		return 0, removedErr(c.semid, err)
	}
	return n, nil
}

// waitPeriod bounds each wait-for-zero sleep so that ctx is honoured.
const waitPeriod = 100 * time.Millisecond

// waitZero sleeps in the kernel with a wait-for-zero operation (sem_op 0),
// re-armed every waitPeriod (or until ctx's deadline, if sooner) to check
// ctx. The kernel wakes it as soon as the value reaches zero, and with EIDRM
// if the set is removed.
func (c *sysvCounter) waitZero(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := waitPeriod
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < d {
				d = max(left, time.Millisecond)
			}
		}
		ts := unix.NsecToTimespec(int64(d))
		err := semop(c.semid, sembuf{num: 0, op: 0}, &ts)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EAGAIN):
			continue
		default:
			return removedErr(c.semid, err)
		}
	}
}

func (c *sysvCounter) remove() error {
	_, err := semctl(c.semid, 0, ipcRmid, nil)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EIDRM) {
		return fmt.Errorf("semaphore set %d: %w", c.semid, err)
	}
	return nil
}

func (c *sysvCounter) close() error { return nil }

func (c *sysvCounter) id() string { return strconv.Itoa(c.semid) }
