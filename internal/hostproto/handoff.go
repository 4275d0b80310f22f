package hostproto

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/platform"
)

// The handoff (mux mode): instead of relaying an editor's bytes through its
// proxy, the proxy passes its stdin and stdout to the host, which then reads
// and writes the editor's pipes itself — one process hop fewer on every
// message. The proxy stays as the editor's child: it holds the kernel
// reference and its session connection, whose end tells the host that the
// proxy is gone (kill -9 included), and it exits when the host says "bye"
// (the window's session ended: exit, EOF) or "end REASON".
//
//	proxy → host, on the authenticated session:   handoff KEY\n
//	host → proxy:                                 ok\n   (KEY is now expected)
//	proxy → host, on HandoffName (runtime dir):    KEY N\n + SCM_RIGHTS{stdin, stdout}, then N pending bytes
//	... the host serves the client on the passed descriptors ...
//	host → proxy, on the session:                 bye\n or end REASON\n (then closes)
//
// KEY is random and travels only on the session, which passed the token
// handshake; the socket lives in the private runtime dir, the host checks
// the peer's uid and the proxy checks the listener's uid and pid (the
// hint's host pid) with the kernel (SO_PEERCRED) before sending anything.

const (
	handoffLine = "handoff "
	// HandoffWait bounds each step of the handoff on either side.
	HandoffWait = 5 * time.Second
	maxPending  = 256 << 20
)

// ErrNoHandoff means the descriptor handoff is not possible here (not
// Linux, no handoff socket, an editor side that is not a pipe or socket);
// the proxy relays instead.
var ErrNoHandoff = errors.New("no descriptor handoff")

// ErrHostGone is WaitHandedOff's answer when the host closed the session
// without saying why (it crashed or was killed).
var ErrHostGone = errors.New("the host went away")

// HandoffName is the unix socket, in the private runtime dir, on which the
// mux-mode host of serviceName with process id hostPID takes editors'
// descriptors from their proxies; both ends reach it by this name relative
// to their runtime dir handle. One per host: a draining host and its
// successor run side by side (see the Overlap in Spec.Service).
func HandoffName(serviceName string, hostPID int) string {
	return serviceName + "." + strconv.Itoa(hostPID) + ".fd.sock"
}

// Handoff passes the proxy's stdin and stdout (descriptors 0 and 1) to the
// mux-mode host at the other end of session, an attached session
// connection, through the socket name (HandoffName) in the runtime dir d,
// dialled relative to d's handle; pending are editor bytes the proxy has
// already read (they are served first). The descriptors are sent only if the kernel says the
// socket's listener runs as our uid and, where the OS reports it, is
// hostPID (an error wrapping platform.ErrNotOurPeer otherwise). It blocks
// until the host has the descriptors. After a nil
// return the proxy must not read stdin or write stdout again; it waits with
// [WaitHandedOff]. An error wrapping [ErrNoHandoff] means nothing was sent
// and the proxy can relay instead; any other error leaves the session
// unusable.
func Handoff(session net.Conn, d *platform.PrivateDir, socket string, hostPID int, pending []byte) error {
	return handoff(session, d, socket, hostPID, 0, 1, pending)
}

// requestHandoff is the proxy's half on the session: it asks, with a new
// key, and waits for the host's "ok".
func requestHandoff(session net.Conn) (key string, err error) {
	b := make([]byte, 16)
	rand.Read(b)
	key = hex.EncodeToString(b)
	session.SetDeadline(time.Now().Add(HandoffWait))
	defer session.SetDeadline(time.Time{})
	if _, err := io.WriteString(session, handoffLine+key+"\n"); err != nil {
		return "", fmt.Errorf("handoff request: %w", err)
	}
	var ok [3]byte
	if _, err := io.ReadFull(session, ok[:]); err != nil || string(ok[:]) != "ok\n" {
		return "", fmt.Errorf("handoff: the host did not accept: %q %v", ok, err)
	}
	return key, nil
}

// IsHandoffRequest reports whether a session's first byte starts a
// handoff request rather than a client's stream (LSP frames start with
// "Content-Length", JSON lines with '{').
func IsHandoffRequest(first byte) bool { return first == handoffLine[0] }

// AcceptHandoff is the host's half on the session: it reads the proxy's
// request from br (the session's reader, within HandoffWait), registers
// its key with expect, and says "ok". The descriptors then arrive on the
// handoff socket ([ReceiveHandoff]) under that key.
func AcceptHandoff(conn net.Conn, br *bufio.Reader, expect func(key string)) error {
	conn.SetReadDeadline(time.Now().Add(HandoffWait))
	line, err := br.ReadString('\n')
	conn.SetReadDeadline(time.Time{})
	key, ok := strings.CutPrefix(strings.TrimSpace(line), handoffLine)
	if err != nil || !ok || len(key) != 32 {
		return fmt.Errorf("bad handoff request %q: %v", line, err)
	}
	expect(key)
	_, err = io.WriteString(conn, "ok\n")
	return err
}

// EndLine is the host's last line to a proxy whose window was handed off:
// "bye" for a normal end (reason ""), else "end REASON".
func EndLine(reason string) string {
	if reason != "" {
		return "end " + CleanLine(reason) + "\n"
	}
	return "bye\n"
}

// WaitHandedOff blocks until the window's session, handed off with
// [Handoff], ends. It returns nil when it ended normally (the host said
// "bye": the editor sent exit or closed its end) or ctx ended (a signal:
// the caller exits, which ends the session). Otherwise it returns why: the
// host's reason (its "end REASON" line), or ErrHostGone.
func WaitHandedOff(ctx context.Context, session net.Conn) error {
	done := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(io.LimitReader(session, 64<<10)).ReadString('\n')
		switch {
		case line == "bye\n":
			done <- nil
		case strings.HasPrefix(line, "end ") && err == nil:
			done <- errors.New(strings.TrimSpace(strings.TrimPrefix(line, "end ")))
		default:
			done <- ErrHostGone
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

// Handed is what a proxy handed over: the editor's stdin and stdout, and
// the bytes it had already read from stdin (to be served first), under the
// key of its request.
type Handed struct {
	Key     string
	In, Out *os.File
	Pending []byte
}
