// Package waiter shrinks a mux-mode proxy once the host has taken over
// its editor's pipes. From then on the proxy only holds its kernel
// reference and waits for the host to say its session is over ("bye\n" on
// the session connection) or to go away; a Go process doing that still
// costs about 1.9 MB (its heap, stacks and runtime, and its share of the
// binary's pages), which is most of procref's memory next to a shared
// language server when several windows are open.
//
// Exec replaces the proxy (execve, same pid, so the editor's child stays
// the same process) with a waiter of a few hundred bytes of machine code
// that does exactly that wait: "bye\n" -> exit 0; end of input or
// anything else -> the given message on stderr, exit 1; SIGHUP, SIGINT,
// SIGTERM -> exit 0, as the proxy does. The kernel reference survives:
// a System V semaphore's SEM_UNDO adjustment belongs to the process and is
// kept across execve(2) (semop(2), NOTES), so it is still given back when
// the waiter exits or is killed. A file-lock reference would not survive
// (its descriptor is close-on-exec); callers only Exec with a semaphore
// reference.
//
// The waiter is a static ELF file written to the caller's private runtime
// dir as procref-wait (0700, replaced atomically when its bytes differ) and
// executed from there, so `ps` shows it as procref-wait. Its source is
// testdata/wait_amd64.s. Only linux/amd64 has one; elsewhere Exec returns
// ErrUnsupported and the proxy keeps waiting itself.
package waiter

import (
	"errors"
	"syscall"
)

// FileName is the waiter's file name in the runtime dir.
const FileName = "procref-wait"

// ErrUnsupported is returned by Exec where there is no waiter (any system
// but linux/amd64).
var ErrUnsupported = errors.New("waiter: no waiter for this system")

// Exec replaces the calling process with the waiter, which waits on
// conn's descriptor (see the package doc) and prints message if the
// session ends without "bye\n". dir is the private runtime dir the waiter
// file is kept in; name (the service's) is only shown by ps, as in
// "procref-wait 5 clangd-1e44706c18c1". The environment is kept, with
// PROCREF_WAIT_MESSAGE=message put first (the waiter reads it there).
// Exec returns only if it failed; conn is then as it was and the caller
// carries on. conn must not be in use meanwhile.
func Exec(dir string, conn syscall.Conn, name, message string) error {
	return execWaiter(dir, conn, name, message)
}

// messageEnv is the environment variable that carries the message.
const messageEnv = "PROCREF_WAIT_MESSAGE"

// Available reports whether Exec can work on this system.
func Available() bool { return len(code) > 0 }

// Code returns the waiter's machine code (empty where there is none), for
// tests that compare it with its source.
func Code() []byte { return append([]byte(nil), code...) }
