//go:build linux

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is what growPipes asks for. 1 MiB measured fastest, but every
// pipe buffer counts against the user's pipe allowance (64 MiB by default,
// so ~30 proxies); 256 KiB keeps ~850 MB/s for 16 MiB messages and leaves
// room for a hundred windows (docs/benchmarks.md).
const pipeSize = 256 << 10

// growPipes enlarges the editor's stdin and stdout pipes from the default
// 64 KiB so a large message crosses in fewer system calls and wake-ups. For
// anything that is not a pipe, or over the limit, the error is ignored.
func growPipes(stdin, stdout *os.File) {
	for _, f := range []*os.File{stdin, stdout} {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	}
}
