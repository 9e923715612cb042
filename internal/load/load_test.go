package load

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/demo"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"p50 of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of ten is the ninth", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p100 is the max", ms(1, 2, 3), 100, 3 * time.Millisecond},
		{"p0 is the min", ms(1, 2, 3), 0, 1 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.values, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.values, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	s := summarize([]time.Duration{3 * time.Microsecond, time.Microsecond, 2 * time.Microsecond})
	if s.P50 != 2 || s.Max != 3 {
		t.Errorf("summary = %+v, want p50 2 and max 3", s)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       time.Duration
		wantErr    bool
	}{
		{"plain", "42 (mcpgw) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1 1 1", 3 * time.Second, false},
		{"name with spaces and parens", "42 (a) b (c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond, false},
		{"truncated", "42 (x) S 1 2", 0, true},
		{"no name", "garbage", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.line))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStat = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseRSS(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		want         int64
		wantErr      bool
	}{
		{"present", "Name:\tx\nVmRSS:\t  2048 kB\nThreads: 3\n", 2048 << 10, false},
		{"absent", "Name:\tx\n", 0, true},
		{"bad unit", "VmRSS:\t2 MB\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRSS([]byte(tc.status))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseRSS = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestConfigBounds(t *testing.T) {
	base := Config{URL: "http://127.0.0.1:1/mcp", Conns: 1, Method: "tools/call", Tool: "echo", Duration: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no duration bound", func(c *Config) { c.Duration = 0 }},
		{"no conns", func(c *Config) { c.Conns = 0 }},
		{"unknown method", func(c *Config) { c.Method = "ping" }},
		{"call without tool", func(c *Config) { c.Tool = "" }},
		{"negative count", func(c *Config) { c.Count = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			if _, err := Run(context.Background(), c); err == nil {
				t.Error("Run accepted the config")
			}
		})
	}
}

// TestRunAgainstMCPGo drives a real mcp-go server (sessions, JSON or SSE
// replies) and checks the counts, not the timings.
func TestRunAgainstMCPGo(t *testing.T) {
	b, err := demo.StartNotes(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for _, tc := range []struct {
		name      string
		cfg       Config
		wantOK    int
		wantError string
	}{
		{"repeated calls", Config{Method: "tools/call", Tool: "echo", Arguments: map[string]any{"message": "hi"}}, 20, ""},
		{"fresh calls", Config{Method: "tools/call", Tool: "echo", FreshKey: "message"}, 20, ""},
		{"lists", Config{Method: "tools/list"}, 20, ""},
		{"unknown tool is an rpc error", Config{Method: "tools/call", Tool: "no_such_tool"}, 0, "rpc_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URL, cfg.Conns, cfg.Count, cfg.Duration = b.URL, 3, 20, time.Minute
			cfg.PID = os.Getpid()
			s, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.OK != tc.wantOK || s.Requests != 20 {
				t.Errorf("ok %d of %d requests, want %d of 20 (errors %v %v)", s.OK, s.Requests, tc.wantOK, s.Errors, s.ErrorSample)
			}
			if tc.wantError != "" {
				found := false
				for k := range s.Errors {
					found = found || strings.HasPrefix(k, tc.wantError)
				}
				if !found {
					t.Errorf("errors %v, want a %s kind", s.Errors, tc.wantError)
				}
			}
			if s.CPU == nil || s.CPU.RSSBytes == 0 {
				t.Errorf("no process figures: %+v", s.CPU)
			}
		})
	}
}

func TestStream(t *testing.T) {
	b, err := demo.StartNotes(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	hc := NewHTTPClient(1, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := Connect(ctx, Config{URL: b.URL, Timeout: 5 * time.Second}, hc, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	body, err := cs[0].OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
}
