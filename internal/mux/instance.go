package mux

import (
	"errors"
	"io"
	"log/slog"
	"sync"

	"github.com/procref/procref/internal/wire"
)

// Instance is one run of the shared server process: its process, the
// queue toward its stdin with the writer goroutine, the reader goroutine
// that hands its messages to the policy, and the reaper. The Core starts
// and ends instances; a policy sends to one and keeps it in its routing
// tables to tell a message of the current run from one of an earlier run.
type Instance struct {
	n   int
	srv Server
	q   *Queue
	log *slog.Logger

	direct     Direct // clients the reader took over (Client.SendFrom); reader only
	readerDone chan struct{}
	writerDone chan struct{}
	exited     chan struct{}
	ended      chan struct{} // readerDone or exited, whichever first
	exitErr    error         // valid once exited is closed
	downOnce   sync.Once
	endOnce    sync.Once
}

// N is the instance's start number: 1 for the first server the Core
// started, one more for each restart.
func (i *Instance) N() int { return i.n }

// Server returns the instance's server process.
func (i *Instance) Server() Server { return i.srv }

// Queue returns the queue toward the server's stdin (to wait for room).
func (i *Instance) Queue() *Queue { return i.q }

// Send queues it toward the server. It never blocks; it reports false if
// the instance's queue is closed (the instance is ending: its end is the
// crash the Core reports, which answers what was in flight).
func (i *Instance) Send(it Item) bool {
	ok, _ := i.q.PushItem(it, 0, nil)
	return ok
}

// Push is Send for a body without edits.
func (i *Instance) Push(body []byte) bool { return i.Send(Item{Body: body}) }

// Ended is closed when the instance's reader stopped or its process
// exited, whichever comes first.
func (i *Instance) Ended() <-chan struct{} { return i.ended }

// ExitErr returns the process's exit status; it blocks until it exited.
func (i *Instance) ExitErr() error {
	<-i.exited
	return i.exitErr
}

// drain writes what is queued for the server in the calling goroutine. A
// failed write ends the instance as the writer goroutine's does.
func (i *Instance) drain() {
	if err := i.q.drainTo(i.srv); err != nil {
		i.writeFailed(err)
	}
}

// writeFailed closes the server's pipes, so the reader sees the end and
// the Core reports the crash (a server that cannot be written to is of no
// use, whether or not it still runs).
func (i *Instance) writeFailed(err error) {
	i.log.Warn("writing to the server failed", "err", err)
	i.q.Close(true)
	i.srv.Close()
}

func (i *Instance) end() { i.endOnce.Do(func() { close(i.ended) }) }

// run starts the writer, the reader and the reaper. fromServer is the
// policy's; newReader frames the server's stdout.
func (i *Instance) run(wg *sync.WaitGroup, newReader func(io.Reader) wire.MessageReader, fromServer func(*Instance, []byte)) {
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(i.writerDone)
		if err := i.q.Run(i.srv, nil); err != nil {
			i.writeFailed(err)
		}
	}()
	go func() {
		defer wg.Done()
		defer i.end()
		defer close(i.readerDone)
		i.read(newReader(i.srv), fromServer)
	}()
	go func() {
		defer wg.Done()
		i.exitErr = i.srv.Wait()
		close(i.exited)
		i.end()
	}()
}

// read hands every message of the server to fromServer, flushing the
// direct writes before a Read that may block: never wait for the server
// while holding clients.
func (i *Instance) read(r wire.MessageReader, fromServer func(*Instance, []byte)) {
	ready, _ := r.(interface{ Ready() bool })
	defer i.direct.Flush()
	for {
		if ready == nil || !ready.Ready() {
			i.direct.Flush()
		}
		body, err := r.Read()
		if errors.Is(err, wire.ErrTooLarge) {
			i.log.Error("the server sent a message over the size limit; dropped it (raise the limit)", "err", err)
			continue
		}
		if err != nil {
			return
		}
		fromServer(i, body)
	}
}

// teardown stops the instance for good and waits for its goroutines.
func (i *Instance) teardown() {
	i.downOnce.Do(func() {
		i.q.Close(true)
		i.srv.Close()
		i.srv.Kill()
	})
	<-i.exited
	<-i.readerDone
	<-i.writerDone
}

// Claim is a client reader's hold on an instance's queue: when the queue
// is empty and idle, the reader becomes its writer and writes what it
// gathered before it next blocks (Flush), with no hand-off to the writer
// goroutine on the round trip and a burst of small messages in one write.
// A client embeds one; it is used by that client's reader only.
type Claim struct{ inst *Instance }

// Send queues it toward inst, claiming inst's queue if it is free. Large
// items always go to the writer goroutine. Callers hold the policy's lock.
func (c *Claim) Send(inst *Instance, it Item) {
	if inst == nil {
		it.release()
		return
	}
	if len(it.Body) > directMax || (c.inst != nil && c.inst != inst) {
		inst.Send(it)
		return
	}
	if _, claimed := inst.q.PushItem(it, 0, c); claimed {
		c.inst = inst
	}
}

// Flush writes what was claimed (see Send). The client's reader calls it
// before anything that may block. Called without the policy's lock.
func (c *Claim) Flush() {
	if i := c.inst; i != nil {
		c.inst = nil
		i.drain()
	}
}
