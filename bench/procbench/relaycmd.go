package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
)

// relayMain is `procbench relay -connect ADDR [-threads] [-pipe-size N]`: a
// minimal stdio⇄TCP relay with procref's architecture but none of its
// attach work, as a reference for the cost of the extra process hop itself.
// With -threads (Linux), each direction is a blocking read/write loop on a
// locked OS thread instead of io.Copy through Go's poller; with -pipe-size,
// stdin and stdout pipes are resized (F_SETPIPE_SZ, Linux). Both are
// candidate fixes for procref's relay, measured here.
func relayMain(args []string) int {
	fs := flag.NewFlagSet("procbench relay", flag.ContinueOnError)
	addr := fs.String("connect", "", "TCP address of the backend")
	threads := fs.Bool("threads", false, "blocking read/write loops on locked OS threads (Linux)")
	pipeSize := fs.Int("pipe-size", 0, "resize the stdin/stdout pipes to this many bytes (Linux)")
	execMode := fs.Bool("exec", false, "relay to the command given as the arguments, over its stdin and stdout, instead of TCP")
	pollMode := fs.Bool("poll", false, "with -exec: one poll(2) loop on raw descriptors instead of io.Copy (Linux)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *execMode && *pollMode {
		if err := relayExecPoll(fs.Args()); err != nil {
			fmt.Fprintf(os.Stderr, "relay: %v\n", err)
			return 1
		}
		return 0
	}
	if *execMode {
		return relayExec(fs.Args())
	}
	conn, err := net.Dial("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	defer conn.Close()
	if *pipeSize > 0 {
		if err := setPipeSize(*pipeSize); err != nil {
			fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		}
	}
	tc := conn.(*net.TCPConn)
	if *threads {
		if err := relayThreads(tc); err != nil {
			fmt.Fprintf(os.Stderr, "relay: %v\n", err)
			return 1
		}
		return 0
	}
	done := make(chan struct{})
	go func() {
		io.Copy(tc, os.Stdin)
		tc.CloseWrite()
	}()
	go func() {
		io.Copy(os.Stdout, tc)
		close(done)
	}()
	<-done
	return 0
}

// relayExec is `procbench relay -exec CMD ARGS...`: stdio relayed to CMD's
// stdin and stdout with io.Copy over Go's poller, one goroutine per
// direction. Next to mux mode it is the cost of a plain Go process hop
// between an editor and a stdio server, with no routing.
func relayExec(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "relay: -exec needs a command")
		return 2
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	go func() {
		io.Copy(in, os.Stdin)
		in.Close()
	}()
	io.Copy(os.Stdout, out)
	cmd.Wait()
	return 0
}
