//go:build linux

// Command muxmem measures the memory of N LSP "editor windows" that each run
// one command (a procref proxy, or a language server started directly).
//
//	muxmem -n 8 -file DIR/fixture.c -- /tmp/mm/procref -- procref sample-server
//	muxmem -n 4 -file DIR/fixture.c -- clangd
//	muxmem -n 4 -diag -lang cpp -hover 395:7 -file DIR/inventory.cpp -- clangd
//
// Each window is a child process started in the file's directory (procref's
// root is the working directory). A window sends initialize, waits for its
// result, then sends initialized, didOpen for the file and a hover request at
// -hover (0-based line:character, default 0:0), and counts as ready when
// the hover is answered and, if -diag, a publishDiagnostics for the file has
// arrived (with -diag-wait as the bound for windows that share an
// already-open document, which the backend does not diagnose again).
// Windows start one after another. After -settle the program reads VmRSS
// (/proc/PID/status) and Pss (/proc/PID/smaps_rollup) of every process that
// is a child or descendant of muxmem or carries this run's MUXMEM_TAG
// environment variable (the procref host is detached from the proxy), prints
// one line per process and the totals per role, then shuts every window down
// and kills every remaining process it found, by pid.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// quiet discards the windows' stderr (clangd logs every request there).
var quiet bool

// mcpMode: the windows are MCP sessions (see mcp.go).
var mcpMode bool

func main() {
	n := flag.Int("n", 4, "number of windows")
	file := flag.String("file", "", "document to open (its directory is the workspace root)")
	lang := flag.String("lang", "c", "languageId of the document")
	hoverAt := flag.String("hover", "0:0", "hover position, 0-based `line:character`")
	diag := flag.Bool("diag", false, "wait for publishDiagnostics too")
	diagWait := flag.Duration("diag-wait", 3*time.Second, "bound on the diagnostics wait for windows after the first")
	settle := flag.Duration("settle", 2*time.Second, "wait before measuring")
	timeout := flag.Duration("timeout", 60*time.Second, "bound on each window's start")
	childErr := flag.Bool("stderr", false, "pass the windows' stderr through")
	flag.BoolVar(&mcpMode, "mcp", false, "the windows are MCP sessions (newline-delimited JSON): initialize, then a tools/call of the echo tool; no -file")
	rtt := flag.Int("rtt", 0, "then time this many sequential requests on window 0 (hovers at -hover; with -mcp echo tools/calls) and print their percentiles")
	flag.Parse()
	cmd := flag.Args()
	if mcpMode {
		if len(cmd) == 0 {
			fmt.Fprintln(os.Stderr, "usage: muxmem -mcp -n N [-rtt R] -- CMD ARGS...")
			os.Exit(2)
		}
		if err := runMCP(*n, *rtt, *settle, *timeout, cmd); err != nil {
			fmt.Fprintln(os.Stderr, "muxmem:", err)
			os.Exit(1)
		}
		return
	}
	if len(cmd) == 0 || *file == "" {
		fmt.Fprintln(os.Stderr, "usage: muxmem -n N -file F [-diag] -- CMD ARGS...")
		os.Exit(2)
	}
	if !*childErr {
		quiet = true
	}
	var pos [2]int
	if _, err := fmt.Sscanf(*hoverAt, "%d:%d", &pos[0], &pos[1]); err != nil {
		fmt.Fprintf(os.Stderr, "muxmem: -hover %q: want line:character: %v\n", *hoverAt, err)
		os.Exit(2)
	}
	if err := run(*n, *rtt, *file, *lang, pos, *diag, *diagWait, *settle, *timeout, cmd); err != nil {
		fmt.Fprintln(os.Stderr, "muxmem:", err)
		os.Exit(1)
	}
}

type window struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	init   chan struct{}
	hover  chan struct{}
	diag   chan struct{}
	closed chan struct{}
	uri    string
	// hoverN is the size of the hover result's JSON ("null" when the
	// server had nothing); written before hover is closed.
	hoverN int
	// diags are the messages of the first publishDiagnostics for the
	// file; written before diag is closed.
	diags []string
	// replies gets one value per answer to an -rtt request (ids ≥ 100).
	replies chan struct{}
}

func (w *window) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if mcpMode {
		_, err = fmt.Fprintf(w.stdin, "%s\n", b)
		return err
	}
	_, err = fmt.Fprintf(w.stdin, "Content-Length: %d\r\n\r\n%s", len(b), b)
	return err
}

// read parses server messages, signals hover/diagnostics and answers server
// requests with null so that no backend waits on this window.
func (w *window) read(r io.Reader) {
	defer close(w.closed)
	br := bufio.NewReaderSize(r, 1<<16)
	var initOnce, hoverOnce, diagOnce sync.Once
	for {
		n := -1
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				break
			}
			if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if n < 0 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Result json.RawMessage `json:"result"`
			Params struct {
				URI         string `json:"uri"`
				Diagnostics []struct {
					Range struct {
						Start struct {
							Line int `json:"line"`
						} `json:"start"`
					} `json:"range"`
					Message string `json:"message"`
				} `json:"diagnostics"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &m) != nil {
			continue
		}
		if os.Getenv("MUXMEM_DEBUG") != "" {
			slog.Info("recv", "pid", w.cmd.Process.Pid, "body", string(body[:min(len(body), 300)]))
		}
		switch {
		case m.Method == "" && bytes.Equal(m.ID, []byte("1")):
			initOnce.Do(func() { close(w.init) })
		case m.Method == "" && bytes.Equal(m.ID, []byte("2")):
			hoverOnce.Do(func() { w.hoverN = len(m.Result); close(w.hover) })
		case m.Method == "" && len(m.ID) >= 3: // ids from 100 on: -rtt
			w.replies <- struct{}{}
		case m.Method == "textDocument/publishDiagnostics" && m.Params.URI == w.uri:
			diagOnce.Do(func() {
				for _, d := range m.Params.Diagnostics {
					w.diags = append(w.diags, fmt.Sprintf("%d: %s", d.Range.Start.Line+1, d.Message))
				}
				close(w.diag)
			})
		case m.Method != "" && len(m.ID) > 0:
			w.send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": nil})
		}
	}
}

// startWindow starts one window's command in dir, tagged for find, and
// reads its output.
func startWindow(argv []string, dir, tag, uri string) (*window, error) {
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = dir
	c.Env = append(os.Environ(), "MUXMEM_TAG="+tag)
	if !quiet {
		c.Stderr = os.Stderr
	}
	in, err := c.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	w := &window{cmd: c, stdin: in, init: make(chan struct{}), hover: make(chan struct{}), diag: make(chan struct{}), closed: make(chan struct{}), uri: uri, replies: make(chan struct{}, 1)}
	if mcpMode {
		go w.readMCP(out)
	} else {
		go w.read(out)
	}
	return w, nil
}

func run(n, rtt int, file, lang string, hoverAt [2]int, diag bool, diagWait, settle, timeout time.Duration, argv []string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(abs)
	if err != nil {
		return err
	}
	root := filepath.Dir(abs)
	uri := "file://" + abs
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	var wins []*window
	defer func() { cleanup(wins, tag) }()
	for i := range n {
		w, err := startWindow(argv, root, tag, uri)
		if err != nil {
			return err
		}
		c := w.cmd
		wins = append(wins, w)
		start := time.Now()
		w.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
			"processId": os.Getpid(), "rootUri": "file://" + root, "capabilities": map[string]any{
				"textDocument": map[string]any{"publishDiagnostics": map[string]any{}}},
			"workspaceFolders": []any{map[string]any{"uri": "file://" + root, "name": filepath.Base(root)}}}})
		// The LSP spec forbids sending anything before the initialize
		// result; procref's host answers such requests "initialize first"
		// and drops such notifications, so wait for it.
		deadline := time.After(timeout)
		select {
		case <-w.init:
		case <-w.closed:
			return fmt.Errorf("window %d: output closed before the initialize result", i)
		case <-deadline:
			return fmt.Errorf("window %d: no initialize result within %v", i, timeout)
		}
		w.send(map[string]any{"jsonrpc": "2.0", "method": "initialized", "params": map[string]any{}})
		w.send(map[string]any{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": map[string]any{
			"textDocument": map[string]any{"uri": uri, "languageId": lang, "version": 1, "text": string(text)}}})
		w.send(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": map[string]any{
			"textDocument": map[string]any{"uri": uri}, "position": map[string]any{"line": hoverAt[0], "character": hoverAt[1]}}})
		select {
		case <-w.hover:
		case <-w.closed:
			return fmt.Errorf("window %d: output closed before the hover answer", i)
		case <-deadline:
			return fmt.Errorf("window %d: no hover answer within %v", i, timeout)
		}
		gotDiag := "no"
		var diags []string
		if diag {
			bound := deadline
			if i > 0 {
				bound = time.After(diagWait)
			}
			select {
			case <-w.diag:
				gotDiag = "yes"
				diags = w.diags
			case <-bound:
				if i == 0 {
					return fmt.Errorf("window 0: no diagnostics within %v", timeout)
				}
			}
		}
		slog.Info("window ready", "i", i, "pid", c.Process.Pid, "took", time.Since(start).Round(time.Millisecond), "diagnostics", gotDiag, "diag_messages", diags, "hover_bytes", w.hoverN)
	}
	if rtt > 0 {
		hover := func(id int) map[string]any {
			return map[string]any{"jsonrpc": "2.0", "id": id, "method": "textDocument/hover", "params": map[string]any{
				"textDocument": map[string]any{"uri": uri}, "position": map[string]any{"line": hoverAt[0], "character": hoverAt[1]}}}
		}
		if err := measureRTT(wins[0], rtt, timeout, hover); err != nil {
			return err
		}
	}
	time.Sleep(settle) // let the processes reach a steady state; nothing to wait on
	report(tag)
	return nil
}

// report prints every process of this run with its RSS and Pss, and the
// totals per role.
func report(tag string) {
	procs := find(tag)
	sort.Slice(procs, func(a, b int) bool {
		return procs[a].role+strconv.Itoa(procs[a].pid) < procs[b].role+strconv.Itoa(procs[b].pid)
	})
	type sum struct{ n, rss, pss int }
	tot := map[string]*sum{}
	fmt.Printf("%-8s %-12s %10s %10s  %s\n", "pid", "role", "rss_kib", "pss_kib", "cmdline")
	for _, p := range procs {
		fmt.Printf("%-8d %-12s %10d %10d  %s\n", p.pid, p.role, p.rss, p.pss, p.cmdline)
		for _, k := range []string{p.role, "TOTAL"} {
			if tot[k] == nil {
				tot[k] = &sum{}
			}
			tot[k].n++
			tot[k].rss += p.rss
			tot[k].pss += p.pss
		}
	}
	keys := make([]string, 0, len(tot))
	for k := range tot {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := tot[k]
		fmt.Printf("sum %-12s n=%-3d rss_kib=%-8d pss_kib=%d\n", k, s.n, s.rss, s.pss)
	}
}

type proc struct {
	pid, ppid, rss, pss int
	role, cmdline       string
}

// find returns this process's descendants and every process carrying the
// tag in its environment.
func find(tag string) []proc {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	tagged := map[int]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 {
				f := strings.Fields(string(st[i+1:]))
				if len(f) > 1 {
					parent[pid], _ = strconv.Atoi(f[1])
				}
			}
		}
		if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
			tagged[pid] = bytes.Contains(env, []byte("\x00MUXMEM_TAG="+tag+"\x00"))
		}
	}
	self := os.Getpid()
	var out []proc
	for pid := range parent {
		desc := false
		for p, hops := parent[pid], 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == self {
				desc = true
				break
			}
		}
		if pid == self || !(desc || tagged[pid]) {
			continue
		}
		out = append(out, measure(pid, parent[pid]))
	}
	return out
}

func measure(pid, ppid int) proc {
	p := proc{pid: pid, ppid: ppid}
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
	p.cmdline = strings.Join(args, " ")
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	base := filepath.Base(args[0])
	switch {
	case base == "procref" && len(args) > 1 && args[1] == "host":
		p.role = "host"
	case base == "procref" && len(args) > 1 && args[1] == "sample-server":
		p.role = "backend"
	case base == "procref" && bytes.Contains(env, []byte("\x00PROCREF_SUPERVISE=")):
		p.role = "supervisor"
	case base == "procref":
		p.role = "proxy"
	default:
		p.role = "backend"
	}
	p.rss = kib(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	p.pss = kib(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	return p
}

func kib(path, key string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

// cleanup sends shutdown+exit to every window, waits up to 5 s for each,
// then kills by pid whatever is left: windows, then tagged processes (host,
// backend) that outlived them.
func cleanup(wins []*window, tag string) {
	for _, w := range wins {
		w.send(map[string]any{"jsonrpc": "2.0", "id": 3, "method": "shutdown"})
		w.send(map[string]any{"jsonrpc": "2.0", "method": "exit"})
		w.stdin.Close()
	}
	for _, w := range wins {
		done := make(chan struct{})
		go func() { w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			w.cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := find(tag)
		if len(left) == 0 {
			return
		}
		sig := syscall.SIGTERM
		if time.Now().After(deadline) {
			sig = syscall.SIGKILL
		}
		for _, p := range left {
			syscall.Kill(p.pid, sig)
		}
		if sig == syscall.SIGKILL {
			slog.Warn("killed leftover processes", "n", len(left))
			return
		}
		time.Sleep(200 * time.Millisecond) // polling: a non-child's exit offers no event
	}
}
