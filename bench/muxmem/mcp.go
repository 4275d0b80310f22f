//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"
)

// readMCP is read for MCP sessions: one JSON message per line. Answers to
// ids 1 and 2 close init and hover (the echo call); ids from 100 on are
// -rtt calls; server requests (sampling, roots, ping) get an empty result.
func (w *window) readMCP(r io.Reader) {
	defer close(w.closed)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 64<<20)
	for sc.Scan() {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		id, _ := strconv.Atoi(string(m.ID))
		switch {
		case m.Method == "" && id == 1:
			close(w.init)
		case m.Method == "" && id == 2:
			close(w.hover)
		case m.Method == "" && id >= 100:
			w.replies <- struct{}{}
		case m.Method != "" && len(m.ID) > 0:
			w.send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{}})
		}
	}
}

// echoCall is a tools/call of the echo tool (server-everything and
// procref's sample server both have one).
func echoCall(id int) map[string]any {
	return map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
		"params": map[string]any{"name": "echo", "arguments": map[string]any{"message": "hello"}}}
}

// runMCP starts n MCP sessions one after another (each: initialize,
// notifications/initialized, one echo call), then with rtt > 0 times rtt
// sequential echo calls on the first, then reports memory as run does.
func runMCP(n, rtt int, settle, timeout time.Duration, argv []string) error {
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	var wins []*window
	defer func() { cleanup(wins, tag) }()
	for i := range n {
		w, err := startWindow(argv, dir, tag, "")
		if err != nil {
			return err
		}
		wins = append(wins, w)
		start := time.Now()
		w.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
			"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "muxmem", "version": "1"}}})
		if err := w.await(w.init, timeout, "initialize result"); err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		w.send(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
		w.send(echoCall(2))
		if err := w.await(w.hover, timeout, "echo answer"); err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		slog.Info("session ready", "i", i, "pid", w.cmd.Process.Pid, "took", time.Since(start).Round(time.Millisecond))
	}
	if rtt > 0 {
		if err := measureRTT(wins[0], rtt, timeout, echoCall); err != nil {
			return err
		}
	}
	time.Sleep(settle) // let the processes reach a steady state; nothing to wait on
	report(tag)
	return nil
}

// await waits for ch, failing if the window's output closes or timeout
// passes first.
func (w *window) await(ch chan struct{}, timeout time.Duration, what string) error {
	select {
	case <-ch:
		return nil
	case <-w.closed:
		return fmt.Errorf("output closed before the %s", what)
	case <-time.After(timeout):
		return fmt.Errorf("no %s within %v", what, timeout)
	}
}

// measureRTT times n sequential requests call(id) on w (after a warm-up)
// and prints "rtt n=N p50_us=X p90_us=Y p99_us=Z".
func measureRTT(w *window, n int, timeout time.Duration, call func(id int) map[string]any) error {
	d := make([]time.Duration, 0, n)
	// The first calls are not measured: a fresh server (node's JIT) is
	// slower for a while, whatever is in front of it.
	const warmup = 200
	for i := range warmup + n {
		t0 := time.Now()
		w.send(call(100 + i))
		select {
		case <-w.replies:
		case <-w.closed:
			return fmt.Errorf("rtt: output closed at call %d", i)
		case <-time.After(timeout):
			return fmt.Errorf("rtt: call %d not answered within %v", i, timeout)
		}
		if i >= warmup {
			d = append(d, time.Since(t0))
		}
	}
	slices.Sort(d)
	pct := func(p int) int64 { return d[min(len(d)-1, len(d)*p/100)].Microseconds() }
	fmt.Printf("rtt n=%d p50_us=%d p90_us=%d p99_us=%d\n", n, pct(50), pct(90), pct(99))
	return nil
}
