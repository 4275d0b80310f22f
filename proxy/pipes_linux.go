//go:build linux

package proxy

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is what growPipes asks for at start: every pipe buffer counts
// against the user's pipe allowance (64 MiB by default), so 256 KiB leaves
// room for a hundred windows; the relay grows a proxy's pipes to 1 MiB only
// once it sees bulk traffic (proxy/relay_splice_linux.go).
const pipeSize = 256 << 10

// growPipes enlarges the editor's stdin and stdout pipes from the default
// 64 KiB so a large message crosses in fewer system calls and wake-ups. For
// anything that is not a pipe, or over the limit, the error is ignored.
func growPipes(stdin, stdout *os.File) {
	for _, f := range []*os.File{stdin, stdout} {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	}
}
