package pipeio_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/procref/procref/internal/pipeio"
)

func pipe(t *testing.T) (*pipeio.File, *pipeio.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := pipeio.New(r), pipeio.New(w)
	t.Cleanup(func() { pr.Close(); pw.Close() })
	return pr, pw
}

// TestRoundTrip: what Write writes, Read reads, in order, including a
// write larger than the pipe (the writer waits in the poller while the
// reader drains); then EOF once the writer is closed.
func TestRoundTrip(t *testing.T) {
	r, w := pipe(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(want)
		w.Close()
		errc <- err
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
	}
}

// TestTryWriteNeverWaits: on a pipe nobody reads, TryWrite writes what
// fits and then returns 0 without an error, at once.
func TestTryWriteNeverWaits(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TryWrite is Linux-only")
	}
	r, w := pipe(t)
	chunk := make([]byte, 1<<20)
	total := 0
	for i := 0; ; i++ {
		n, err := w.TryWrite(chunk)
		if err != nil {
			t.Fatalf("TryWrite: %v", err)
		}
		total += n
		if n == 0 {
			break
		}
		if i > 64 {
			t.Fatalf("TryWrite took %d bytes and never reported a full pipe", total)
		}
	}
	if total == 0 {
		t.Fatal("TryWrite wrote nothing into an empty pipe")
	}
	// What it wrote is there, in full.
	buf := make([]byte, 1<<20)
	got := 0
	for got < total {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("Read after %d of %d bytes: %v", got, total, err)
		}
		got += n
	}
}

// TestDeadlineAndClose: a Write to a full pipe ends at the write
// deadline with os.ErrDeadlineExceeded; a Read blocked on an empty pipe
// ends with os.ErrClosed when the File is closed.
func TestDeadlineAndClose(t *testing.T) {
	_, w := pipe(t)
	if err := w.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := w.Write(make([]byte, 8<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a full pipe: %d, %v; want os.ErrDeadlineExceeded", n, err)
	}
	if n == 0 {
		t.Fatal("Write reported no progress before the deadline on an empty pipe")
	}
	// A Read on an empty pipe, closed under it (or before it starts:
	// the same error either way).
	r2, _ := pipe(t)
	errc := make(chan error, 1)
	go func() {
		_, err := r2.Read(make([]byte, 10))
		errc <- err
	}()
	time.AfterFunc(20*time.Millisecond, func() { r2.Close() })
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read on a closed File: %v; want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
}

// TestBlockingDescriptorFallsBack: a descriptor made blocking before New
// (os.File.Fd does that) is read and written the *os.File way, never with
// a raw call that could block a thread in the kernel.
func TestBlockingDescriptorFallsBack(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Fd() // blocking from now on
	pr, pw := pipeio.New(r), pipeio.New(w)
	defer pr.Close()
	defer pw.Close()
	if n, err := pw.TryWrite([]byte("x")); !errors.Is(err, pipeio.ErrWouldBlock) || n != 0 {
		t.Fatalf("TryWrite on a blocking descriptor: %d, %v; want 0, ErrWouldBlock", n, err)
	}
	if _, err := pw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(pr, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
}
