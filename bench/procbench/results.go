package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// results is everything one run measured.
type results struct {
	Attach *attachResults `json:"attach,omitempty"`
	Relay  *relayResults  `json:"relay,omitempty"`
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

func medianF(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := slices.Clone(fs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	default:
		return fmt.Sprintf("%.1f ms", v)
	}
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func mbps(bps float64) string {
	if bps >= 1e9 {
		return fmt.Sprintf("%.2f GB/s", bps/1e9)
	}
	return fmt.Sprintf("%.0f MB/s", bps/1e6)
}

// spread formats "median (min–max)" of one field over samples.
func spread(ss []attachSample, f func(attachSample) time.Duration) string {
	var ds []time.Duration
	for _, s := range ss {
		if v := f(s); v > 0 {
			ds = append(ds, v)
		}
	}
	if len(ds) == 0 {
		return "–"
	}
	return fmt.Sprintf("**%s** (%s–%s)", ms(median(ds)), ms(percentile(ds, 0.0001)), ms(percentile(ds, 100)))
}

func field(ss []attachSample, f func(attachSample) time.Duration) []time.Duration {
	var ds []time.Duration
	for _, s := range ss {
		ds = append(ds, f(s))
	}
	return ds
}

func exitCodes(ss []attachSample) string {
	n := map[int]int{}
	for _, s := range ss {
		n[s.Exit]++
	}
	var codes []int
	for c := range n {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d ×%d", c, n[c]))
	}
	return strings.Join(parts, ", ")
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (res *results) print(w io.Writer) {
	type goal struct{ goal, measured, met string }
	var goals []goal
	atBackend := func(s attachSample) time.Duration { return s.AtBackend }
	firstOut := func(s attachSample) time.Duration { return s.FirstOut }
	initDone := func(s attachSample) time.Duration { return s.Init }

	if a := res.Attach; a != nil {
		fmt.Fprintf(w, "### Attach\n\nMedian of %d interleaved repetitions, (min–max) in brackets. Times from just before exec of the client-facing process.\n\n", a.Reps)
		table := func(keep func(*scenario) bool) {
			fmt.Fprintln(w, "| scenario | → first byte at backend | → first byte on stdout | → `initialize` answered | exit code after clean quit |")
			fmt.Fprintln(w, "|---|---|---|---|---|")
			for _, s := range a.Scenarios {
				if keep(s) {
					fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", s.Label,
						spread(s.Samples, atBackend), spread(s.Samples, firstOut), spread(s.Samples, initDone), exitCodes(s.Samples))
				}
			}
			fmt.Fprintln(w)
		}
		table(func(s *scenario) bool { return !s.plain && s.Build == "" })
		if len(a.KeeperRC) > 0 {
			var parts []string
			for _, s := range a.Scenarios {
				if rc, ok := a.KeeperRC[s.Key]; ok && s.Build == "" {
					parts = append(parts, fmt.Sprintf("%s: %d", s.Label, rc))
				}
			}
			fmt.Fprintf(w, "Exit codes of the long-lived attached clients (\"keepers\") after their clean quit: %s.\n\n", strings.Join(parts, "; "))
		}
		compared := false
		for _, s := range a.Scenarios {
			compared = compared || s.Build != ""
		}
		if compared {
			fmt.Fprintln(w, "Other procref builds, interleaved with the above in the same run:")
			fmt.Fprintln(w)
			table(func(s *scenario) bool { return !s.plain && s.Build != "" })
		}
		fmt.Fprintln(w, "Exec floors, same run (exec → exit, nothing else; what any process start costs here):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| command | → exit |")
		fmt.Fprintln(w, "|---|---|")
		for _, s := range a.Scenarios {
			if s.plain {
				fmt.Fprintf(w, "| %s | %s |\n", s.Label, spread(s.Samples, func(s attachSample) time.Duration { return s.Exited }))
			}
		}
		fmt.Fprintln(w)

		warmEcho, warmGopls, auto, direct, coldGopls := a.get(scWarmEcho), a.get(scWarmGopls), a.get(scAutoWarm), a.get(scDirect), a.get(scColdGopls)
		fb := median(field(warmEcho.Samples, atBackend))
		fo := median(field(warmEcho.Samples, firstOut))
		goals = append(goals, goal{"warm attach → first byte relayed ≤ 5 ms (median)",
			fmt.Sprintf("%s at the backend; %s back on stdout (echo backend)", ms(fb), ms(fo)), yes(fb <= 5*time.Millisecond)})
		wi, ai := median(field(warmGopls.Samples, initDone)), median(field(auto.Samples, initDone))
		goals = append(goals, goal{"warm attach → `initialize` answered ≤ ⅓ of `gopls -remote=auto`",
			fmt.Sprintf("%s vs %s / 3 = %s (%.1f× faster)", ms(wi), ms(ai), ms(ai/3), float64(ai)/float64(wi)), yes(wi <= ai/3)})
		ci, di := median(field(coldGopls.Samples, initDone)), median(field(direct.Samples, initDone))
		goals = append(goals, goal{"cold attach ≤ direct start + 20 ms",
			fmt.Sprintf("%s vs %s + 20 ms (%+.1f ms)", ms(ci), ms(di), float64(ci-di)/float64(time.Millisecond)), yes(ci <= di+20*time.Millisecond)})
		if cm := a.get(scColdMux); cm != nil {
			mi := median(field(cm.Samples, initDone))
			goals = append(goals, goal{"cold attach ≤ direct start + 20 ms, gopls on stdio behind the multiplexer",
				fmt.Sprintf("%s vs %s + 20 ms (%+.1f ms)", ms(mi), ms(di), float64(mi-di)/float64(time.Millisecond)), yes(mi <= di+20*time.Millisecond)})
			if ro := a.get(scReopenMux); ro != nil {
				ri := median(field(ro.Samples, initDone))
				floor := ""
				if ov := a.get(scDirectOver); ov != nil {
					oi := median(field(ov.Samples, initDone))
					floor = fmt.Sprintf("; floor, same run: gopls direct started while the previous one exits %s (%+.1f ms over direct)", ms(oi), float64(oi-di)/float64(time.Millisecond))
				}
				goals = append(goals, goal{"reopen right after the last window closed ≤ first start + 20 ms, gopls on stdio",
					fmt.Sprintf("%s vs %s + 20 ms (%+.1f ms)%s", ms(ri), ms(mi), float64(ri-mi)/float64(time.Millisecond), floor), yes(ri <= mi+20*time.Millisecond)})
			}
		}
		procrefZero := true
		for _, s := range a.Scenarios {
			if strings.HasPrefix(s.Key, "procref") && s.Build == "" {
				for _, smp := range s.Samples {
					procrefZero = procrefZero && smp.Exit == 0
				}
			}
		}
		goals = append(goals, goal{"clean quit exits 0",
			fmt.Sprintf("procref proxies: %s; gopls -remote=auto forwarder: %s; gopls direct: %s",
				exitCodesAll(a, "procref"), exitCodes(auto.Samples), exitCodes(direct.Samples)), yes(procrefZero)})
	}

	if rr := res.Relay; rr != nil {
		if d := rr.RTT[pathDirect]; len(d) > 0 {
			fmt.Fprintf(w, "### Round trip, small message (%d round trips per path in %d interleaved blocks)\n\n", len(d), rttRounds)
			fmt.Fprintln(w, "| path | p50 | p90 | p99 | added p50 | added p99 |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|")
			for _, name := range rr.Paths {
				ds := rr.RTT[name]
				added50, added99 := "", ""
				if name != pathDirect {
					added50 = us(percentile(ds, 50) - percentile(d, 50))
					added99 = us(percentile(ds, 99) - percentile(d, 99))
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", rr.Labels[name],
					us(percentile(ds, 50)), us(percentile(ds, 90)), us(percentile(ds, 99)), added50, added99)
			}
			fmt.Fprintln(w)
			p := rr.RTT[pathProxy]
			add50 := percentile(p, 50) - percentile(d, 50)
			goals = append(goals, goal{"added p50 round trip ≤ 30 µs",
				fmt.Sprintf("%s (p99: %s)", us(add50), us(percentile(p, 99)-percentile(d, 99))), yes(add50 <= 30*time.Microsecond)})
		}
		if len(rr.Tput) > 0 {
			fmt.Fprintf(w, "### Throughput (median of %d; framed bytes per second, every byte echoed back; GB = 10⁹ B)\n\n", tputReps)
			fmt.Fprint(w, "| path |")
			sep := "|---|"
			for _, tc := range tputCases {
				fmt.Fprintf(w, " %s × %d |", tc.Label, tc.Count)
				sep += "---|"
			}
			fmt.Fprintln(w)
			fmt.Fprintln(w, sep)
			for _, name := range rr.Paths {
				fmt.Fprintf(w, "| %s |", rr.Labels[name])
				for _, tc := range tputCases {
					fmt.Fprintf(w, " %s |", mbps(medianF(rr.Tput[tc.Label][name])))
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w)
			for _, tc := range tputCases {
				if tc.Size == 16<<20 {
					p := medianF(rr.Tput[tc.Label][pathProxy])
					goals = append(goals, goal{"≥ 1 GB/s for 16 MiB messages (tcp mode)",
						fmt.Sprintf("%s (direct: %s)", mbps(p), mbps(medianF(rr.Tput[tc.Label][pathDirect]))), yes(p >= 1e9)})
				}
			}
		}
	}

	rss := map[string]uint64{}
	if res.Attach != nil {
		for k, v := range res.Attach.RSS {
			rss[k] = v
		}
	}
	if res.Relay != nil {
		for k, v := range res.Relay.RSS {
			rss[k] = v
		}
	}
	if len(rss) > 0 {
		fmt.Fprintln(w, "### RSS")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| process | RSS |")
		fmt.Fprintln(w, "|---|---|")
		var keys []string
		for k := range rss {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var proxyMax uint64
		for _, k := range keys {
			fmt.Fprintf(w, "| %s | %s |\n", k, mib(rss[k]))
			if strings.HasPrefix(k, "procref proxy") && !strings.HasPrefix(k, "procref proxy [") { // not a -compare build's
				proxyMax = max(proxyMax, rss[k])
			}
		}
		fmt.Fprintln(w)
		if proxyMax > 0 {
			goals = append(goals, goal{"proxy RSS ≤ 12 MB", fmt.Sprintf("largest proxy figure above: %s (%.1f MB)", mib(proxyMax), float64(proxyMax)/1e6), yes(proxyMax <= 12e6)})
		}
	}

	if res.Relay != nil {
		printCPU(w, res.Relay.CPU)
	}

	if len(goals) > 0 {
		fmt.Fprintln(w, "### Goals")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| goal | measured | met |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, g := range goals {
			fmt.Fprintf(w, "| %s | %s | %s |\n", g.goal, g.measured, g.met)
		}
		fmt.Fprintln(w)
	}
}

func exitCodesAll(a *attachResults, prefix string) string {
	var all []attachSample
	for _, s := range a.Scenarios {
		if strings.HasPrefix(s.Key, prefix) && s.Build == "" {
			all = append(all, s.Samples...)
		}
	}
	return exitCodes(all)
}

// printCPU prints each proxy's CPU time, if measured.
func printCPU(w io.Writer, cpu map[string]float64) {
	if len(cpu) == 0 {
		return
	}
	fmt.Fprintln(w, "### CPU time of each proxy (user+system, after all the relay runs)")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| proxy | CPU |\n|---|---|\n")
	for _, k := range slices.Sorted(maps.Keys(cpu)) {
		fmt.Fprintf(w, "| %s | %.2f s |\n", k, cpu[k])
	}
	fmt.Fprintln(w)
}
