//go:build linux

package host

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// startHandoff listens on path for proxies' descriptors. A stale socket
// from a killed host is replaced: the caller runs under the supervisor
// lock, so no live host of the same service owns it.
func startHandoff(path string, log *slog.Logger) (*handoffServer, error) {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("%w: socket path too long: %s", ErrNoHandoff, path)
	}
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	os.Chmod(path, 0o600)
	h := &handoffServer{log: log, ln: ln, waiting: map[string]chan delivery{}}
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go h.receive(c)
		}
	}()
	return h, nil
}

// receive takes one proxy's descriptors and pending bytes.
func (h *handoffServer) receive(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(handoffWait))
	if uid, err := peerUID(c); err != nil || uid != os.Getuid() {
		h.log.Warn("handoff refused: peer is not our user", "uid", uid, "err", err)
		return
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
		h.log.Warn("handoff: no descriptors", "err", err, "n", len(fds))
		return
	}
	line, rest, found := bytes.Cut(buf[:n], []byte("\n"))
	key, size, _ := strings.Cut(string(line), " ")
	want, err := strconv.Atoi(size)
	if !found || err != nil || want < 0 || want > 256<<20 || len(rest) > want {
		h.log.Warn("handoff: bad header", "header", string(line))
		return
	}
	pending := make([]byte, want)
	copy(pending, rest)
	if _, err := io.ReadFull(c, pending[len(rest):]); err != nil {
		h.log.Warn("handoff: pending bytes", "err", err)
		return
	}
	// Non-blocking, so the Go poller serves them and Close interrupts a
	// blocked read (the description is shared with the proxy, which no
	// longer uses it, and the editor holds the other ends).
	for _, fd := range fds {
		unix.SetNonblock(fd, true)
	}
	ok = true // from here the files own the descriptors
	d := delivery{in: os.NewFile(uintptr(fds[0]), "editor-stdin"), out: os.NewFile(uintptr(fds[1]), "editor-stdout"), pending: pending}
	if !h.deliver(key, d) {
		h.log.Warn("handoff: nobody expects this key")
		d.in.Close()
		d.out.Close()
	}
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

func peerUID(c *net.UnixConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	uid := -1
	var cerr error
	rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			cerr = err
			return
		}
		uid = int(cred.Uid)
	})
	return uid, cerr
}

// handoff is Handoff: see host.go.
func handoff(session net.Conn, socket string, pending []byte) error {
	for _, fd := range []int{0, 1} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("%w: fd %d: %v", ErrNoHandoff, fd, err)
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
			return fmt.Errorf("%w: fd %d is not a pipe or socket", ErrNoHandoff, fd)
		}
	}
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("%w: %v", ErrNoHandoff, err)
	}
	key := newHandoffKey()
	session.SetDeadline(time.Now().Add(handoffWait))
	defer session.SetDeadline(time.Time{})
	if _, err := io.WriteString(session, handoffLine+key+"\n"); err != nil {
		return fmt.Errorf("handoff request: %w", err)
	}
	var ok [3]byte
	if _, err := io.ReadFull(session, ok[:]); err != nil || string(ok[:]) != "ok\n" {
		return fmt.Errorf("handoff: the host did not accept: %q %v", ok, err)
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(handoffWait))
	header := []byte(key + " " + strconv.Itoa(len(pending)) + "\n")
	if _, _, err := c.WriteMsgUnix(header, unix.UnixRights(0, 1), nil); err != nil {
		return fmt.Errorf("handoff: sending descriptors: %w", err)
	}
	if len(pending) > 0 {
		if _, err := c.Write(pending); err != nil {
			return fmt.Errorf("handoff: sending pending bytes: %w", err)
		}
	}
	return nil
}
