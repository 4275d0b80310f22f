package mux

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
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
	q := newQueue(lineFraming{})
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
	if err := q.drainTo(&out); err != nil {
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
	q := newQueue(lineFraming{})
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
	if !b.full() {
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

// pushTurn queues body in turn's turn (nil: in push order).
func pushTurn(t *testing.T, q *Queue, turn any, body string) {
	t.Helper()
	if ok, _ := q.PushItem(Item{Body: []byte(body), Turn: turn}, 0, nil); !ok {
		t.Fatalf("push %s refused", body)
	}
}

// runAll closes q and returns what its writer goroutine writes, a line
// per message.
func runAll(t *testing.T, q *Queue) []string {
	t.Helper()
	q.Close(false)
	var out bytes.Buffer
	if err := q.Run(&out, nil); err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out.String())
}

// Clients' items are written one client at a time in turn, each client's
// in order; a client with nothing left is skipped; an item without a
// Turn (the host's) keeps its place in push order: after everything
// pushed before it, before everything pushed after it.
func TestQueueTurns(t *testing.T) {
	q := newQueue(lineFraming{})
	for _, m := range []struct{ turn, body string }{
		{"a", "a1"}, {"a", "a2"}, {"a", "a3"}, {"b", "b1"}, {"c", "c1"}, {"c", "c2"},
		{"", "host"}, {"a", "a4"}, {"b", "b2"},
	} {
		var turn any
		if m.turn != "" {
			turn = m.turn
		}
		pushTurn(t, q, turn, m.body)
	}
	got := strings.Join(runAll(t, q), " ")
	if want := "a1 b1 c1 a2 c2 a3 host a4 b2"; got != want {
		t.Fatalf("written %q, want %q", got, want)
	}
}

// Three clients push bursts at once while the writer is busy; then the
// writer's output goes in strict rounds: every client's k-th message
// before any client's k+1-th, each client's in its order.
func TestQueueTurnsConcurrentBursts(t *testing.T) {
	const clients, burst = 3, 50
	q := newQueue(lineFraming{})
	w := &gateWriter{entered: make(chan struct{}), open: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- q.Run(w, nil) }()
	pushTurn(t, q, nil, "first")
	<-w.entered // the writer is busy writing "first"
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range burst {
				q.PushItem(Item{Body: []byte(fmt.Sprintf("%c%d", 'a'+c, i)), Turn: c}, 0, nil)
			}
		}()
	}
	wg.Wait()
	close(w.open)
	q.Close(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(w.out.String())
	if len(got) != 1+clients*burst || got[0] != "first" {
		t.Fatalf("written %d messages starting %q, want %d starting \"first\"", len(got), got[:1], 1+clients*burst)
	}
	for k := range burst {
		round := got[1+k*clients : 1+(k+1)*clients]
		seen := map[byte]bool{}
		for _, m := range round {
			if seen[m[0]] || m[1:] != strconv.Itoa(k) {
				t.Fatalf("round %d is %v: want one message of each client, each its #%d (all: %v)", k, round, k, got)
			}
			seen[m[0]] = true
		}
	}
}

// gateWriter blocks its first Write (after closing entered) until open
// closes, then writes to out.
type gateWriter struct {
	entered, open chan struct{}
	once          sync.Once
	out           bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.open
	})
	return g.out.Write(p)
}

// The direct-write path keeps the turns: a producer that took the empty
// queue over writes the others' items in their turns between its own.
func TestQueueDirectDrainTurns(t *testing.T) {
	q := newQueue(lineFraming{})
	for i, body := range []string{"a1", "a2", "a3"} {
		ok, claimed := q.PushItem(Item{Body: []byte(body), Turn: "a"}, 0, "a")
		if !ok || claimed != (i == 0) {
			t.Fatalf("push %s by the producer = %v, %v; want it to take the empty queue over, then append", body, ok, claimed)
		}
	}
	for _, body := range []string{"b1", "b2"} {
		if _, claimed := q.PushItem(Item{Body: []byte(body), Turn: "b"}, 0, "b"); claimed {
			t.Fatal("another producer took over a queue held by the first")
		}
	}
	var out bytes.Buffer
	if err := q.drainTo(&out); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(strings.Fields(out.String()), " "), "a1 b1 a2 b2 a3"; got != want {
		t.Fatalf("drained %q, want %q", got, want)
	}
}

// What a drainer could not write goes back to the front, in its order,
// ahead of every turn.
func TestQueueDrainRestFirst(t *testing.T) {
	q := newQueue(lineFraming{})
	q.PushItem(Item{Body: []byte("a1"), Turn: "a"}, 0, "a")
	pushTurn(t, q, "b", "b1")
	pushTurn(t, q, "a", "a2")
	err := q.drainWith(func(items []Item) ([]Item, error) {
		return items, nil // wrote nothing: all of it is the rest
	})
	if err != nil {
		t.Fatal(err)
	}
	pushTurn(t, q, "c", "c1")
	if got, want := strings.Join(runAll(t, q), " "), "a1 b1 a2 c1"; got != want {
		t.Fatalf("written %q, want %q", got, want)
	}
}

// BenchmarkQueueDirect: the round-trip path, a producer that finds the
// queue empty takes it over and writes its message itself.
func BenchmarkQueueDirect(b *testing.B) {
	q := newQueue(lineFraming{})
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`)
	b.ReportAllocs()
	for b.Loop() {
		q.PushItem(Item{Body: body, Turn: "a"}, 0, "a")
		if err := q.drainTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// A drainer writes what was queued when it began and lets go: what
// another client pushes meanwhile is the writer goroutine's (else a
// client's reader could be kept writing another's flood).
func TestQueueDrainWritesOnlyWhatWasQueued(t *testing.T) {
	q := newQueue(lineFraming{})
	q.PushItem(Item{Body: []byte("a1"), Turn: "a"}, 0, "a")
	pushTurn(t, q, "b", "b1")
	var drained []string
	err := q.drainWith(func(items []Item) ([]Item, error) {
		for _, it := range items {
			drained = append(drained, string(it.Body))
		}
		if len(drained) < 10 { // the flood goes on (bounded: a failing Drain returns)
			pushTurn(t, q, "b", fmt.Sprintf("b%d", len(drained)+1))
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(drained, " "), "a1 b1"; got != want {
		t.Fatalf("drained %q, want %q", got, want)
	}
	if got, want := strings.Join(runAll(t, q), " "), "b3"; got != want {
		t.Fatalf("the writer goroutine wrote %q, want %q", got, want)
	}
}
