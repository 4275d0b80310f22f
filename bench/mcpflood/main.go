// Command mcpflood measures MCP fairness (issue 22 item 5): one session
// pipelines a flood of tools/call requests through procref while another
// session on the same shared server makes sequential calls; it prints the
// other session's p50, p99 and worst call. With -separate the two sessions
// get their own servers (--share-key), the baseline.
//
// With -kb N each flood request carries an N KiB message (echoed back),
// so the flood's requests fill the server's stdin pipe and wait in the
// host's queue, where the sessions take turns.
//
// Usage: mcpflood -procref BIN [-flood 100000] [-calls 200] [-kb 0] [-separate] -- SERVER ARGS...
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("procref", "procref", "the procref binary")
	flood := flag.Int("flood", 100000, "requests the flooding session pipelines")
	calls := flag.Int("calls", 200, "sequential calls the other session makes")
	separate := flag.Bool("separate", false, "give each session its own server (baseline)")
	kb := flag.Int("kb", 0, "KiB of message in each flood request (0: one letter)")
	flag.Parse()
	server := flag.Args()
	if len(server) == 0 {
		fmt.Fprintln(os.Stderr, "usage: mcpflood -procref BIN -- SERVER ARGS...")
		os.Exit(2)
	}
	start := func(key string) (io.WriteCloser, *bufio.Reader, *exec.Cmd) {
		args := []string{}
		if *separate {
			args = append(args, "--share-key", key)
		}
		cmd := exec.Command(*bin, append(append(args, "--"), server...)...)
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		r := bufio.NewReaderSize(out, 1<<20)
		io.WriteString(in, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpflood","version":"1"}}}`+"\n")
		if _, err := r.ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "initialize:", err)
			os.Exit(1)
		}
		io.WriteString(in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
		return in, r, cmd
	}
	fin, fr, fcmd := start("flood")
	oin, or, ocmd := start("other")
	message := "f"
	if *kb > 0 {
		message = strings.Repeat("f", *kb<<10)
	}
	go func() {
		w := bufio.NewWriterSize(fin, 1<<20)
		for i := 0; i < *flood; i++ {
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"%s"}}}`+"\n", i+1, message)
		}
		w.Flush()
	}()
	var answered atomic.Int64       // the flood's answers read
	flooding := make(chan struct{}) // closed at the flood's first answer
	go func() {
		for {
			if _, err := fr.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
				return
			} else if err == nil && answered.Add(1) == 1 {
				close(flooding)
			}
		}
	}()
	<-flooding // measure under the flood, not before it starts
	var lat []time.Duration
	for i := 0; i < *calls; i++ {
		t0 := time.Now()
		fmt.Fprintf(oin, `{"jsonrpc":"2.0","id":"o%d","method":"tools/call","params":{"name":"echo","arguments":{"message":"o"}}}`+"\n", i)
		for {
			line, err := or.ReadString('\n')
			if err != nil {
				fmt.Fprintln(os.Stderr, "other session:", err)
				os.Exit(1)
			}
			if strings.Contains(line, fmt.Sprintf(`"id":"o%d"`, i)) {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	left := int64(*flood) - answered.Load() // still unanswered when the calls ended
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	mode := "shared"
	if *separate {
		mode = "separate"
	}
	fmt.Printf("%s: other session %d calls during a %d-request flood (%d KiB each; %d unanswered when the calls ended): p50 %v p99 %v worst %v\n",
		mode, len(lat), *flood, *kb, left, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	fin.Close()
	oin.Close()
	fcmd.Wait()
	ocmd.Wait()
}
