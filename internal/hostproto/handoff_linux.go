//go:build linux

package hostproto

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/procref/procref/platform"
	"golang.org/x/sys/unix"
)

// handoff is Handoff on Linux, for descriptors in and out (0 and 1 there).
func handoff(session net.Conn, d *platform.PrivateDir, socket string, hostPID, in, out int, pending []byte) error {
	for _, fd := range []int{in, out} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("%w: fd %d: %v", ErrNoHandoff, fd, err)
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
			return fmt.Errorf("%w: fd %d is not a pipe or socket", ErrNoHandoff, fd)
		}
	}
	if _, err := d.Stat(socket); err != nil {
		return fmt.Errorf("%w: %v", ErrNoHandoff, err)
	}
	key, err := requestHandoff(session)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), HandoffWait)
	defer cancel()
	c, err := d.DialUnix(ctx, socket) // through the dir handle, not the path
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	defer c.Close()
	// The editor's pipes go only to the host: the kernel must say the
	// listener is our uid and the hint's host pid (SO_PEERCRED).
	if err := platform.CheckPeer(c, hostPID); err != nil {
		return fmt.Errorf("handoff: %s: %w", d.SocketPath(socket), err)
	}
	c.SetDeadline(time.Now().Add(HandoffWait))
	header := []byte(key + " " + strconv.Itoa(len(pending)) + "\n")
	if _, _, err := c.WriteMsgUnix(header, unix.UnixRights(in, out), nil); err != nil {
		return fmt.Errorf("handoff: sending descriptors: %w", err)
	}
	if len(pending) > 0 {
		if _, err := c.Write(pending); err != nil {
			return fmt.Errorf("handoff: sending pending bytes: %w", err)
		}
	}
	return nil
}

// ListenHandoff listens on the socket name (HandoffName) in the runtime
// dir d, bound relative to d's handle, for proxies' descriptors; the socket
// is 0600 and removed (through the handle) when the listener closes. A
// stale socket there is replaced: the caller runs under the supervisor
// lock, and the name carries its pid, so no live host owns it.
func ListenHandoff(d *platform.PrivateDir, name string) (*platform.UnixListener, error) {
	d.Remove(name)
	ln, err := d.ListenUnix(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoHandoff, err)
	}
	return ln, nil
}

// ReceiveHandoff reads one proxy's descriptors and pending bytes from c,
// a connection accepted on ListenHandoff's listener, within HandoffWait.
// It refuses a peer of another uid. It closes c; the returned files are
// the caller's.
func ReceiveHandoff(c *net.UnixConn) (Handed, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(HandoffWait))
	if err := platform.CheckPeer(c, 0); err != nil {
		return Handed{}, fmt.Errorf("handoff refused: %w", err)
	}
	buf := make([]byte, 128)
	oob := make([]byte, unix.CmsgSpace(2*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	var fds []int
	if err == nil {
		fds = parseRights(oob[:oobn])
	}
	ok := false
	defer func() {
		if !ok {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}()
	if err != nil || len(fds) != 2 {
		return Handed{}, fmt.Errorf("handoff: %d descriptors, want 2 (%v)", len(fds), err)
	}
	line, rest, found := bytes.Cut(buf[:n], []byte("\n"))
	key, size, _ := strings.Cut(string(line), " ")
	want, err := strconv.Atoi(size)
	if !found || err != nil || want < 0 || want > maxPending || len(rest) > want {
		return Handed{}, fmt.Errorf("handoff: bad header %q", line)
	}
	pending := make([]byte, want)
	copy(pending, rest)
	if _, err := io.ReadFull(c, pending[len(rest):]); err != nil {
		return Handed{}, fmt.Errorf("handoff: pending bytes: %w", err)
	}
	// Non-blocking, so the Go poller serves them and Close interrupts a
	// blocked read (the description is shared with the proxy, which no
	// longer uses it, and the editor holds the other ends).
	for _, fd := range fds {
		unix.SetNonblock(fd, true)
	}
	ok = true // from here the files own the descriptors
	return Handed{
		Key:     key,
		In:      os.NewFile(uintptr(fds[0]), "editor-stdin"),
		Out:     os.NewFile(uintptr(fds[1]), "editor-stdout"),
		Pending: pending,
	}, nil
}

// parseRights returns the descriptors in a control message.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var all []int
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			all = append(all, fd)
		}
	}
	return all
}
