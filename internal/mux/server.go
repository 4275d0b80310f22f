package mux

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/procref/procref/internal/pipeio"
	"github.com/procref/procref/platform"
)

// Server is a running server process: its stdout (Read), its stdin
// (Write), and its process. The multiplexers of every protocol run their
// one shared server through it.
type Server interface {
	io.Reader // server stdout
	io.Writer // server stdin
	// Close closes the server's stdin and releases the pipes; it must make a
	// blocked Read and a blocked Write return (the Core waits for its
	// reader and writer goroutines after it). It may be called more than
	// once.
	Close() error
	// Kill ends the server process at once (SIGKILL or equivalent).
	Kill() error
	// Wait blocks until the server process has exited and returns its exit
	// status. It may be called more than once and from several goroutines.
	Wait() error
}

type procServer struct {
	cmd    *exec.Cmd
	stdin  *pipeio.File // our write end of the server's stdin
	stdout *pipeio.File // our read end of the server's stdout

	closeOnce sync.Once
	waitOnce  sync.Once
	waited    chan struct{}
	waitErr   error
}

// Exec starts cmd with its stdin and stdout connected to fresh pipes and
// returns it as a Server. The caller sets everything else on cmd first
// (SysProcAttr, Stderr, Env, Dir); cmd.Stdin and cmd.Stdout must be nil.
// Wait may be called at any time (the pipes are not closed by it). The
// server leads its own process group; Kill ends the whole group, so
// nothing it started (npx, uvx, `sh -c` children) outlives it, and Wait
// does not wait on a pipe a leftover child holds open.
func Exec(cmd *exec.Cmd) (Server, error) {
	if cmd.Stdin != nil || cmd.Stdout != nil {
		return nil, errors.New("mux: Exec needs cmd.Stdin and cmd.Stdout unset")
	}
	platform.SetProcessGroup(cmd)
	if cmd.WaitDelay == 0 {
		// A stderr copy held open by a process that escaped the group
		// must not block Wait for ever.
		cmd.WaitDelay = 2 * time.Second
	}
	// Plain os.Pipe rather than cmd.StdoutPipe: exec closes its own pipes
	// in Wait, which would race with our reader draining the last output.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("mux: server stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("mux: server stdout pipe: %w", err)
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	err = cmd.Start()
	inR.Close() // the child has its copies
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("mux: start %s: %w", cmd.Path, err)
	}
	s := &procServer{cmd: cmd, stdin: pipeio.New(inW), stdout: pipeio.New(outR), waited: make(chan struct{})}
	go s.wait() // reap promptly so Wait can be called by anyone, any time
	return s, nil
}

func (s *procServer) wait() {
	s.waitOnce.Do(func() {
		s.waitErr = s.cmd.Wait()
		close(s.waited)
	})
}

func (s *procServer) Read(p []byte) (int, error)  { return s.stdout.Read(p) }
func (s *procServer) Write(p []byte) (int, error) { return s.stdin.Write(p) }

func (s *procServer) Close() error {
	s.closeOnce.Do(func() {
		s.stdin.Close()
		s.stdout.Close()
	})
	return nil
}

// Kill ends the server's whole process group, even after the server
// itself has exited (its children may not have).
func (s *procServer) Kill() error {
	gerr := platform.KillProcessGroup(s.cmd.Process.Pid)
	select {
	case <-s.waited:
		return gerr
	default:
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("mux: kill server pid %d: %w", s.cmd.Process.Pid, err)
	}
	return gerr
}

func (s *procServer) Wait() error {
	<-s.waited
	return s.waitErr
}

// Pid returns the server's process id (tests and logs use it).
func (s *procServer) Pid() int { return s.cmd.Process.Pid }
