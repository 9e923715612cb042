package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/internal/load"
)

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func rss(pid int) (int64, error) { return load.RSS(pid) }

func cpuUS(s *load.Summary) float64 {
	if s.CPU == nil {
		return 0
	}
	return float64(s.CPU.PerRequest.Nanoseconds()) / 1e3
}

// medians are one target's figures at one connection count, each the
// median over the rounds.
type medians struct{ rps, p50, p99, cpu float64 }

func medianOf(recs []record, target string, conns int) (m medians, errs map[string]int) {
	var rps, p50, p99, cpu []float64
	errs = map[string]int{}
	for _, r := range recs {
		if r.Target != target || r.Conns != conns {
			continue
		}
		rps = append(rps, r.Sum.Throughput)
		p50 = append(p50, r.Sum.Latency.P50)
		p99 = append(p99, r.Sum.Latency.P99)
		cpu = append(cpu, cpuUS(r.Sum))
		for k, n := range r.Sum.Errors {
			errs[k] += n
		}
	}
	return medians{load.Median(rps), load.Median(p50), load.Median(p99), load.Median(cpu)}, errs
}

// report prints one table per connection count: medians, and throughput
// as a ratio of the direct and the plain proxy's.
func report(w io.Writer, title string, recs []record, conns []int) {
	var targets []string
	for _, r := range recs {
		if !slices.Contains(targets, r.Target) {
			targets = append(targets, r.Target)
		}
	}
	fmt.Fprintf(w, "\n%s\n", title)
	for _, n := range conns {
		direct, _ := medianOf(recs, "direct", n)
		proxy, _ := medianOf(recs, "plain proxy", n)
		fmt.Fprintf(w, "  %d conns  %-16s %9s %8s %8s %9s %9s %10s\n", n, "target", "req/s", "×direct", "×proxy", "p50 µs", "p99 µs", "CPU µs/req")
		for _, t := range targets {
			m, errs := medianOf(recs, t, n)
			line := fmt.Sprintf("           %-16s %9.0f %8.2f %8.2f %9.0f %9.0f %10.0f", t, m.rps, ratio(m.rps, direct.rps), ratio(m.rps, proxy.rps), m.p50, m.p99, m.cpu)
			if len(errs) > 0 {
				line += fmt.Sprintf("  errors %v", errs)
			}
			fmt.Fprintln(w, line)
		}
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// printMachine says what the figures were measured on.
func printMachine() {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	loadavg, _ := os.ReadFile("/proc/loadavg")
	goVersion, _ := exec.Command("go", "version").Output()
	fmt.Printf("machine: %d CPUs (%s), load %s, %s", runtime.NumCPU(), model, strings.TrimSpace(string(loadavg)), goVersion)
}
