//go:build !linux

package refcount

import "errors"

var errNoSysV = errors.New("refcount: the SysV semaphore implementation is only available on Linux; use FileLock")

func openSysV(name, key, dir string) (backend, error) { return nil, errNoSysV }

func lookupSysV(name, key string) (backend, error) { return nil, errNoSysV }
