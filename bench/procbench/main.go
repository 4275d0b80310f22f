// Command procbench measures procref against its baselines (issue 4, item 6)
// and prints the results as markdown tables. bench/run.sh builds procref and
// procbench, prints the machine, and runs it; bench/results.md records the
// results.
//
// Usage:
//
//	procbench -procref PATH [-gopls PATH] [-n N] [-only LIST] [-json FILE]
//	          [-reference-relays=false] [-relay-cmd 'CMD {addr}' ...]
//	          [-compare NAME=PROCREF ...] [-floor CMD ...]
//	procbench echo-server -listen ADDR [-stamp FILE]
//	procbench relay -connect ADDR [-threads] [-pipe-size N]
//	procbench relay -exec CMD ARGS...
//	procbench lsp-echo
//
// What it measures, all in one run, with private runtime, state, temp and
// XDG_RUNTIME_DIR directories (so nothing collides with other procref or
// gopls users on the machine), every process it starts cleaned up by pid:
//
//   - attach: exec → first byte at the backend, → first byte on the client's
//     stdout, → initialize answered, and the exit code after a clean quit
//     (shutdown, exit, stdin closed), for: procref warm (a backend already
//     up, held by another attached proxy) over an instant echo backend and
//     over gopls in tcp mode; `gopls -remote=auto` warm (its daemon already
//     up, held by another attached forwarder); gopls started directly on
//     stdio; procref cold (nothing up) over gopls and over the echo backend.
//     The scenarios are interleaved, one of each per repetition.
//   - latency: ping-pong round trips of a small LSP message through a proxy
//     (tcp mode) to the echo backend vs a direct TCP connection to the same
//     backend; p50 and p99 over interleaved blocks.
//   - throughput: 1 KiB, 64 KiB and 16 MiB messages streamed through the
//     proxy and echoed back vs direct.
//   - rss: the proxy's RSS while attached (idle and after the throughput
//     runs, plus its peak), next to the gopls forwarder's.
//
// The echo-server subcommand is the instant backend: it echoes every byte
// of every TCP connection and, with -stamp, appends the wall-clock time (Unix
// nanoseconds) at which each connection's first byte arrived to FILE.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "echo-server":
			os.Exit(echoServerMain(os.Args[2:]))
		case "relay":
			os.Exit(relayMain(os.Args[2:]))
		case "lsp-echo":
			os.Exit(lspEchoMain(os.Args[2:]))
		}
	}
	os.Exit(benchMain(os.Args[1:]))
}

func benchMain(args []string) int {
	fs := flag.NewFlagSet("procbench", flag.ContinueOnError)
	procref := fs.String("procref", "", "procref binary to measure (required)")
	gopls := fs.String("gopls", "", "gopls binary (default: gopls in PATH, else $(go env GOPATH)/bin/gopls)")
	n := fs.Int("n", 15, "repetitions of each attach scenario")
	only := fs.String("only", "attach,latency,throughput,rss", "comma-separated parts to run (held: keep one request pending in each proxy first)")
	jsonOut := fs.String("json", "", "also write raw samples to this file")
	var extra stringList
	fs.Var(&extra, "relay-cmd", "also measure this stdio⇄TCP relay command; {addr} is replaced by the echo backend's address (repeatable)")
	var muxRelays stringList
	fs.Var(&muxRelays, "mux-relay-cmd", "also measure this stdio relay command in front of the mux benchmark's server; the server's argv is appended (repeatable)")
	var compare, floors stringList
	fs.Var(&compare, "compare", "also measure this procref build (attach scenarios, and its proxy relaying to the same echo backend), as NAME=PATH (repeatable)")
	fs.Var(&floors, "floor", "also measure the exec time of this command run without arguments, e.g. /bin/true (repeatable)")
	refs := fs.Bool("reference-relays", true, "also measure the reference relays (procbench relay variants)")
	fs.IntVar(&tputReps, "reps", tputReps, "interleaved repetitions of each throughput case (more for a loaded machine)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *procref == "" {
		fmt.Fprintln(os.Stderr, "procbench: -procref is required")
		return 2
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		parts[strings.TrimSpace(p)] = true
	}
	gp := *gopls
	if gp == "" && parts["attach"] {
		gp = findGopls()
		if gp == "" {
			fmt.Fprintln(os.Stderr, "procbench: gopls not found; pass -gopls or run `go install golang.org/x/tools/gopls@v0.23.0`")
			return 2
		}
	}
	abs, err := filepath.Abs(*procref)
	if err != nil {
		fmt.Fprintf(os.Stderr, "procbench: %v\n", err)
		return 2
	}
	r, err := newRig(abs, gp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "procbench: %v\n", err)
		return 1
	}
	// Clean up on a signal as well as on return.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "procbench: interrupted, cleaning up")
		r.cleanup()
		os.Exit(130)
	}()
	defer r.cleanup()

	res := &results{}
	fail := func(part string, err error) int {
		fmt.Fprintf(os.Stderr, "procbench: %s: %v\n(logs kept in %s)\n", part, err, r.keepLogs())
		return 1
	}
	builds := []build{{"", abs}}
	for _, c := range compare {
		name, p, ok := strings.Cut(c, "=")
		if !ok || name == "" || p == "" {
			fmt.Fprintf(os.Stderr, "procbench: -compare %q: want NAME=PATH\n", c)
			return 2
		}
		if p, err = filepath.Abs(p); err != nil {
			return fail("compare", err)
		}
		builds = append(builds, build{name, p})
	}
	if parts["attach"] {
		if res.Attach, err = r.benchAttach(*n, builds, floors); err != nil {
			return fail("attach", err)
		}
	}
	if parts["latency"] || parts["throughput"] || parts["rss"] || parts["held"] {
		if err := r.benchRelay(res, parts, *refs, extra, builds); err != nil {
			return fail("relay", err)
		}
	}
	res.print(os.Stdout)
	if parts["mux"] {
		mr, err := r.benchMux(*refs, muxRelays)
		if err != nil {
			return fail("mux", err)
		}
		mr.print(os.Stdout)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return fail("json", err)
		}
	}
	return 0
}

// findGopls looks for gopls in PATH, then in $(go env GOPATH)/bin.
func findGopls() string {
	if p, err := exec.LookPath("gopls"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(dir, "bin", "gopls")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
