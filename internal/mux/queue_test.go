package mux

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/procref/procref/internal/wire"
)

// lineFraming frames a body as one line (as MCP does), for these tests.
type lineFraming struct{}

func (lineFraming) AppendFrame(dst, body []byte, edits []wire.Edit) []byte {
	return wire.NDJSON.AppendFrame(dst, body, edits...)
}

func (f lineFraming) WriteFrame(w io.Writer, body []byte, edits []wire.Edit) error {
	_, err := w.Write(f.AppendFrame(nil, body, edits))
	return err
}

// A client that reads, only slowly, a message larger than one write piece
// counts as reading (TouchWriter): progress inside one message resets
// the frozen clock.
func TestTouchWriterCountsProgress(t *testing.T) {
	q := NewClientQueue(lineFraming{}, time.Hour)
	q.PushItem(Item{Body: []byte("x")}, 0, nil)
	q.since = time.Time{} // as if nothing had been taken for ages
	var sb strings.Builder
	w := q.TouchWriter(&sb)
	if _, err := w.Write(make([]byte, 3*touchChunk+1)); err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stuck() {
		t.Fatal("queue counted as stuck right after a write made progress")
	}
}

// A producer that finds the queue empty takes it over and writes itself,
// in order, with edits applied; a second producer meanwhile only appends;
// every item's release runs once.
func TestQueueDirectDrain(t *testing.T) {
	q := NewQueue(lineFraming{})
	released := 0
	rel := func() { released++ }
	body := []byte(`{"id":1}`)
	ok, claimed := q.PushItem(Item{Body: body, Edits: []wire.Edit{{At: wire.Span{Start: 6, End: 7}, With: []byte("42")}}, Release: rel}, 0, "a")
	if !ok || !claimed {
		t.Fatalf("PushItem on an empty queue = %v, %v; want the caller to take it over", ok, claimed)
	}
	if ok, claimed := q.PushItem(Item{Body: []byte(`"b"`), Release: rel}, 0, "b"); !ok || claimed {
		t.Fatalf("PushItem by another producer while taken = %v, %v; want queued, not taken", ok, claimed)
	}
	var out bytes.Buffer
	if err := q.DrainTo(&out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "{\"id\":42}\n\"b\"\n"; got != want {
		t.Fatalf("drained %q, want %q", got, want)
	}
	if released != 2 {
		t.Fatalf("%d releases, want 2", released)
	}
	if _, claimed := q.PushItem(Item{Body: []byte("c")}, 0, "b"); !claimed {
		t.Fatal("after the drain let go, the next producer could not take the queue over")
	}
}

// A failed write closes the queue for the writer goroutine, drops what is
// queued (releases run) and refuses later pushes, releasing them too.
func TestQueueRunWriteError(t *testing.T) {
	q := NewQueue(lineFraming{})
	released := 0
	q.Push([]byte("a"), 0, func() { released++ })
	if err := q.Run(failWriter{}, nil); err == nil {
		t.Fatal("Run on a failing writer returned nil")
	}
	if q.Push([]byte("b"), 0, func() { released++ }) {
		t.Fatal("Push after a failed write was queued")
	}
	if released != 2 {
		t.Fatalf("%d releases, want 2", released)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// A full bound holds its reader until a request ends, lets it through at
// once when pass says so, and gives up when the client is gone.
func TestBoundWait(t *testing.T) {
	b := NewBound(2)
	b.Add()
	b.Add()
	if !b.Full() {
		t.Fatal("bound of 2 with 2 in flight is not full")
	}
	passed := make(chan bool)
	go func() { passed <- b.Wait(nil, nil, nil) }()
	b.Done()
	if !<-passed {
		t.Fatal("Wait reported the client gone")
	}
	b.Add()
	if !b.Wait(nil, func() bool { return true }, nil) {
		t.Fatal("Wait with pass did not let the reader through")
	}
	gone := make(chan struct{})
	close(gone)
	if b.Wait(gone, nil, nil) {
		t.Fatal("Wait on a gone client reported room")
	}
}
