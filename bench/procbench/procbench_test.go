package main

// Go benchmarks over the same machinery as the procbench command, for
// `go test -bench`. They build procref and procbench once per test binary
// (or use $PROCBENCH_PROCREF and $PROCBENCH_SELF), each in a private rig
// that is cleaned up afterwards. There are no tests here, so `go test ./...`
// builds this package and runs nothing.
//
//	go test -run '^$' -bench . -benchtime 2000x ./bench/procbench
//	go test -run '^$' -bench 'Attach' -benchtime 20x ./bench/procbench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var bins struct {
	once           sync.Once
	dir            string
	procref, self  string
	err            error
	buildOutput    []byte
	removeAfterRun bool
}

// binaries returns procref and procbench executables, building them once.
func binaries(b *testing.B) (procref, self string) {
	b.Helper()
	bins.once.Do(func() {
		bins.procref, bins.self = os.Getenv("PROCBENCH_PROCREF"), os.Getenv("PROCBENCH_SELF")
		if bins.procref != "" && bins.self != "" {
			return
		}
		bins.dir, bins.err = os.MkdirTemp("", "procbench-bin-")
		if bins.err != nil {
			return
		}
		bins.removeAfterRun = true
		bins.procref = filepath.Join(bins.dir, "procref")
		bins.self = filepath.Join(bins.dir, "procbench")
		for _, t := range [][2]string{{bins.procref, "github.com/procref/procref/cmd/procref"}, {bins.self, "."}} {
			cmd := exec.Command("go", "build", "-o", t[0], t[1])
			if bins.buildOutput, bins.err = cmd.CombinedOutput(); bins.err != nil {
				return
			}
		}
	})
	if bins.err != nil {
		b.Fatalf("building binaries: %v\n%s", bins.err, bins.buildOutput)
	}
	return bins.procref, bins.self
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.removeAfterRun {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// newBenchRig returns a rig cleaned up with b; gopls is optional.
func newBenchRig(b *testing.B, needGopls bool) *rig {
	b.Helper()
	procref, self := binaries(b)
	gopls := ""
	if needGopls {
		if gopls = findGopls(); gopls == "" {
			b.Skip("gopls not installed (go install golang.org/x/tools/gopls@v0.23.0)")
		}
	}
	r, err := newRig(procref, gopls)
	if err != nil {
		b.Fatal(err)
	}
	r.self = self
	b.Cleanup(r.cleanup)
	return r
}

// BenchmarkRoundTrip: one small LSP message echoed, direct TCP vs through
// the proxy. Reports p50 and p99 in µs besides ns/op.
func BenchmarkRoundTrip(b *testing.B) {
	r := newBenchRig(b, false)
	s, err := r.setupRelay()
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	msg := appendFrame(nil, []byte(`{"jsonrpc":"2.0","id":7,"method":"$/procbench/echo","params":{"text":"hello"}}`))
	for _, name := range []string{pathDirect, pathProxy} {
		p := s.path(name)
		b.Run(name, func(b *testing.B) {
			if _, err := pingPong(p, msg, rttWarmup); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			ds, err := pingPong(p, msg, b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(percentile(ds, 50))/1e3, "p50-µs")
			b.ReportMetric(float64(percentile(ds, 99))/1e3, "p99-µs")
		})
	}
}

// BenchmarkThroughput streams messages of each size through each path
// (every byte echoed back); MB/s counts framed bytes one way.
func BenchmarkThroughput(b *testing.B) {
	r := newBenchRig(b, false)
	s, err := r.setupRelay()
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	for _, tc := range tputCases {
		frame := benchFrame(tc.Size)
		b.Run(strings.ReplaceAll(tc.Label, " ", ""), func(b *testing.B) {
			for _, name := range []string{pathDirect, pathProxy} {
				p := s.path(name)
				b.Run(name, func(b *testing.B) {
					b.SetBytes(int64(len(frame)))
					if _, err := stream(p, frame, tc.Size, b.N); err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}

// attachBench runs s b.N times and reports medians.
func attachBench(b *testing.B, r *rig, s *scenario) {
	b.Helper()
	var smp []attachSample
	for i := 0; i < b.N; i++ {
		x, err := r.attachOnce(s, s.Key)
		if err != nil {
			b.Fatal(err)
		}
		smp = append(smp, x)
	}
	b.StopTimer()
	if s.stamp != "" {
		b.ReportMetric(float64(median(field(smp, func(a attachSample) time.Duration { return a.AtBackend })))/1e6, "ms-to-backend")
	}
	b.ReportMetric(float64(median(field(smp, func(a attachSample) time.Duration { return a.FirstOut })))/1e6, "ms-to-first-out")
	b.ReportMetric(float64(median(field(smp, func(a attachSample) time.Duration { return a.Init })))/1e6, "ms-to-init")
}

// BenchmarkAttachEcho: proxy exec → first byte at the echo backend, warm
// (another proxy keeps the service up) and cold (nothing up; the service
// is started and, after the quit, waited for until gone — outside the
// reported medians but inside ns/op).
func BenchmarkAttachEcho(b *testing.B) {
	r := newBenchRig(b, false)
	ws, err := r.fixture("echo")
	if err != nil {
		b.Fatal(err)
	}
	stamp := filepath.Join(r.dir, "stamps")
	argv := []string{r.procref, "--", r.self, "echo-server", "-listen=127.0.0.1:{port}", "-stamp=" + stamp}
	b.Run("cold", func(b *testing.B) {
		attachBench(b, r, &scenario{Key: scColdEcho, argv: argv, dir: ws, echo: true, stamp: stamp, cold: true})
	})
	b.Run("warm", func(b *testing.B) {
		keeper, err := r.startChild("keeper", ws, argv...)
		if err != nil {
			b.Fatal(err)
		}
		defer keeper.quit(true, quitTimeout)
		if err := keeper.send(initializeBody(ws)); err != nil {
			b.Fatal(err)
		}
		if _, err := keeper.await(1, true, attachTimout); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		attachBench(b, r, &scenario{Key: scWarmEcho, argv: argv, dir: ws, echo: true, stamp: stamp})
	})
}

// BenchmarkAttachGopls: exec → initialize answered for procref warm (tcp
// mode), gopls -remote=auto warm, and gopls started directly. Skipped
// without gopls.
func BenchmarkAttachGopls(b *testing.B) {
	r := newBenchRig(b, true)
	for _, tc := range []struct {
		name string
		argv []string
		warm bool
	}{
		{"procref-warm", []string{r.procref, "--", r.gopls, "serve", "-listen=127.0.0.1:{port}"}, true},
		{"remote-auto-warm", []string{r.gopls, "-remote=auto", "-remote.listen.timeout=20s"}, true},
		{"direct", []string{r.gopls}, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ws, err := r.fixture(tc.name)
			if err != nil {
				b.Fatal(err)
			}
			if tc.warm {
				keeper, err := r.startChild("keeper-"+tc.name, ws, tc.argv...)
				if err != nil {
					b.Fatal(err)
				}
				defer keeper.quit(false, quitTimeout)
				if err := keeper.send(initializeBody(ws)); err != nil {
					b.Fatal(err)
				}
				if _, err := keeper.await(1, false, attachTimout); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			attachBench(b, r, &scenario{Key: tc.name, argv: tc.argv, dir: ws})
		})
	}
}
