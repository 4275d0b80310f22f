//go:build !linux || mips || mipsle

package refcount

import (
	"testing"

	"github.com/procref/procref/platform"
)

// kernelObjects returns -1: there is no listing of kernel objects to check.
func kernelObjects(t testing.TB, impl Impl, dir *platform.PrivateDir, key string) int { return -1 }

func forceRemoveSysV(t testing.TB, dir *platform.PrivateDir, key string) error { return nil }
