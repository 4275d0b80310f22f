//go:build linux || darwin || openbsd || netbsd

package platform

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestPeerCred: both ends of a unix socket see our uid and our pid (these
// OSes report the pid); CheckPeer accepts our pid and refuses another.
func TestPeerCred(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	defer s.Close()
	for _, conn := range []net.Conn{c, s} {
		p, err := PeerCred(conn)
		if err != nil || p.UID != os.Getuid() || p.PID != os.Getpid() {
			t.Errorf("PeerCred = %+v, %v; want uid %d pid %d", p, err, os.Getuid(), os.Getpid())
		}
		if err := CheckPeer(conn, os.Getpid()); err != nil {
			t.Errorf("CheckPeer(our pid) = %v", err)
		}
		if err := CheckPeer(conn, os.Getpid()+1); !errors.Is(err, ErrNotOurPeer) {
			t.Errorf("CheckPeer(another pid) = %v, want ErrNotOurPeer", err)
		}
	}
	tc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	d, err := net.Dial("tcp", tc.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := PeerCred(d); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("PeerCred of TCP = %v, want ErrUnsupported", err)
	}
}
