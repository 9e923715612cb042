// Package load drives MCP servers over Streamable HTTP with concurrent
// clients and summarises what it measured: the engine of cmd/mcpgw-load
// and of the `make bench` harness.
package load

import (
	"math"
	"slices"
	"time"
)

// Summary is what one run measured.
type Summary struct {
	Target      string            `json:"target,omitempty"`
	Method      string            `json:"method"`
	Conns       int               `json:"conns"`
	Requests    int               `json:"requests"`
	OK          int               `json:"ok"`
	Errors      map[string]int    `json:"errors,omitempty"`
	Elapsed     time.Duration     `json:"elapsed_ns"`
	Throughput  float64           `json:"throughput_rps"`
	Latency     LatencySummary    `json:"latency"`
	CPU         *ProcessCPU       `json:"cpu,omitempty"`
	ErrorSample map[string]string `json:"error_sample,omitempty"`
}

// LatencySummary are the percentiles of the successful requests' latency,
// in microseconds (the unit a gateway's overhead is discussed in).
type LatencySummary struct {
	P50 float64 `json:"p50_us"`
	P90 float64 `json:"p90_us"`
	P99 float64 `json:"p99_us"`
	Max float64 `json:"max_us"`
}

// ProcessCPU is the CPU a watched process spent during the run.
type ProcessCPU struct {
	PID int `json:"pid"`
	// Total is user plus system time over the run.
	Total time.Duration `json:"total_ns"`
	// PerRequest is Total over the requests sent (errors included: they
	// cost the process too).
	PerRequest time.Duration `json:"per_request_ns"`
	RSSBytes   int64         `json:"rss_bytes"`
}

// percentile is the nearest-rank percentile of sorted values: the
// smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// summarize sorts latencies in place and fills the latency figures.
func summarize(latencies []time.Duration) LatencySummary {
	slices.Sort(latencies)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return LatencySummary{
		P50: us(percentile(latencies, 50)),
		P90: us(percentile(latencies, 90)),
		P99: us(percentile(latencies, 99)),
		Max: us(percentile(latencies, 100)),
	}
}

// Median is the median of xs (the mean of the middle two for an even
// count), used to combine interleaved rounds on a noisy machine.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
