package lspmux

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"

	"github.com/procref/procref/internal/pipeio"
)

type procBackend struct {
	cmd    *exec.Cmd
	stdin  *pipeio.File // our write end of the server's stdin
	stdout *pipeio.File // our read end of the server's stdout

	closeOnce sync.Once
	waitOnce  sync.Once
	waited    chan struct{}
	waitErr   error
}

func execBackend(cmd *exec.Cmd) (Backend, error) {
	if cmd.Stdin != nil || cmd.Stdout != nil {
		return nil, errors.New("lspmux: ExecBackend needs cmd.Stdin and cmd.Stdout unset")
	}
	// Plain os.Pipe rather than cmd.StdoutPipe: exec closes its own pipes
	// in Wait, which would race with our reader draining the last output.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("lspmux: stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("lspmux: stdout pipe: %w", err)
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	err = cmd.Start()
	inR.Close() // the child has its copies
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("lspmux: start %s: %w", cmd.Path, err)
	}
	b := &procBackend{cmd: cmd, stdin: pipeio.New(inW), stdout: pipeio.New(outR), waited: make(chan struct{})}
	go b.wait() // reap promptly so Wait can be called by anyone, any time
	return b, nil
}

func (b *procBackend) wait() {
	b.waitOnce.Do(func() {
		b.waitErr = b.cmd.Wait()
		close(b.waited)
	})
}

func (b *procBackend) Read(p []byte) (int, error)  { return b.stdout.Read(p) }
func (b *procBackend) Write(p []byte) (int, error) { return b.stdin.Write(p) }

func (b *procBackend) Close() error {
	b.closeOnce.Do(func() {
		b.stdin.Close()
		b.stdout.Close()
	})
	return nil
}

func (b *procBackend) Kill() error {
	select {
	case <-b.waited:
		return nil
	default:
	}
	if err := b.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("lspmux: kill backend pid %d: %w", b.cmd.Process.Pid, err)
	}
	return nil
}

func (b *procBackend) Wait() error {
	<-b.waited
	return b.waitErr
}

// Pid returns the backend's process id (tests and logs use it).
func (b *procBackend) Pid() int { return b.cmd.Process.Pid }
