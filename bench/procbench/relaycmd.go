package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
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
	if err := fs.Parse(args); err != nil {
		return 2
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
