package hostproto

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/procref/procref/internal/proctest/privdir"
	"github.com/procref/procref/platform"
)

// TestHandoffDescriptors: a proxy's two pipe ends and its pending bytes
// arrive at the host under the key of its request, and they are the same
// pipes (what the host writes, the editor reads); a file that is neither
// a pipe nor a socket is not handed off (ErrNoHandoff: relay instead).
func TestHandoffDescriptors(t *testing.T) {
	dir, sock := privdir.Dir(t), "svc.1.fd.sock"
	ln, err := ListenHandoff(dir, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	edIn, in, _ := os.Pipe()   // the editor writes edIn's other end
	out, edOut, _ := os.Pipe() // the editor reads out
	defer in.Close()
	defer edOut.Close()
	h, p := net.Pipe()
	defer h.Close()
	keys := make(chan string, 1)
	go AcceptHandoff(h, bufio.NewReader(h), func(k string) { keys <- k })
	handed := make(chan Handed, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		d, err := ReceiveHandoff(c)
		if err != nil {
			t.Error(err)
		}
		handed <- d
	}()
	if err := handoff(p, dir, sock, os.Getpid(), int(edIn.Fd()), int(edOut.Fd()), []byte("pending")); err != nil {
		t.Fatal(err)
	}
	d := <-handed
	defer d.In.Close()
	defer d.Out.Close()
	if key := <-keys; d.Key != key || string(d.Pending) != "pending" {
		t.Errorf("got key %q pending %q, want %q and \"pending\"", d.Key, d.Pending, key)
	}
	d.Out.Write([]byte("to the editor"))
	buf := make([]byte, 13)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "to the editor" {
		t.Errorf("editor read %q, %v", buf, err)
	}

	f, _ := os.Create(filepath.Join(t.TempDir(), "file"))
	defer f.Close()
	if err := handoff(p, dir, sock, os.Getpid(), int(f.Fd()), int(edOut.Fd()), nil); !errors.Is(err, ErrNoHandoff) {
		t.Errorf("handoff of a regular file = %v, want ErrNoHandoff", err)
	}
}

// TestHandoffOnlyToTheHost: the proxy sends its descriptors only to a
// listener the kernel says is the hint's host pid; another process's
// listener (here: ours, while the hint names pid 1) gets nothing.
func TestHandoffOnlyToTheHost(t *testing.T) {
	dir, sock := privdir.Dir(t), "svc.1.fd.sock"
	ln, err := ListenHandoff(dir, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	edIn, in, _ := os.Pipe()
	out, edOut, _ := os.Pipe()
	defer in.Close()
	defer out.Close()
	defer edIn.Close()
	defer edOut.Close()
	h, p := net.Pipe()
	defer h.Close()
	go AcceptHandoff(h, bufio.NewReader(h), func(string) {})
	got := make(chan error, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			got <- err
			return
		}
		d, err := ReceiveHandoff(c)
		if err == nil {
			d.In.Close()
			d.Out.Close()
		}
		got <- err
	}()
	err = handoff(p, dir, sock, 1, int(edIn.Fd()), int(edOut.Fd()), nil)
	if !errors.Is(err, platform.ErrNotOurPeer) {
		t.Fatalf("handoff to a listener that is not pid 1 = %v, want ErrNotOurPeer", err)
	}
	if err := <-got; err == nil {
		t.Error("the listener received the descriptors")
	}
}
