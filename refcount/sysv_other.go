//go:build !linux || mips || mipsle

package refcount

import (
	"errors"

	"github.com/procref/procref/platform"
)

// sysvAvailable: this build has no SysV implementation (not Linux, or a
// 32-bit MIPS Linux, whose semid64_ds layout is not handled); Auto picks
// FileLock.
const sysvAvailable = false

var errNoSysV = errors.New("refcount: the SysV semaphore implementation is not available on this system; use FileLock")

func openSysV(name, key string, d *platform.PrivateDir) (backend, error) { return nil, errNoSysV }

func lookupSysV(name, key string, d *platform.PrivateDir) (backend, error) { return nil, errNoSysV }
