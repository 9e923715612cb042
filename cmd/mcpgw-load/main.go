// Command mcpgw-load drives any MCP Streamable HTTP endpoint (the gateway,
// a backend, a peer gateway) with concurrent clients and reports
// throughput, latency percentiles, errors by kind and, with --pid, the CPU
// time per request of a process on this machine.
//
// It is its own binary rather than an `mcpgw bench` subcommand so that it
// links none of the gateway: its footprint is the same whichever server it
// measures, and it can be built and pointed at a peer on its own.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcpgw-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg load.Config
	var tokens, agents, headers listFlag
	fs.StringVar(&cfg.URL, "url", "", "MCP endpoint (required)")
	fs.IntVar(&cfg.Conns, "conns", 16, "concurrent clients, each with its own session")
	fs.StringVar(&cfg.Method, "method", "tools/call", "tools/call or tools/list")
	fs.StringVar(&cfg.Tool, "tool", "echo", "tool to call")
	argsJSON := fs.String("args", `{"message":"load"}`, "tool arguments (JSON object)")
	fs.StringVar(&cfg.FreshKey, "fresh", "", "argument made distinct on every call (defeats decision caches); empty: repeated calls")
	fs.IntVar(&cfg.Count, "n", 0, "requests in all (0: until -d)")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "run time bound")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.Var(&tokens, "token", "bearer token (repeatable: clients take them round-robin)")
	tokenFile := fs.String("token-file", "", "file of bearer tokens, one a line")
	fs.Var(&agents, "agent", "X-Agent-ID (repeatable, round-robin)")
	fs.Var(&headers, "H", "extra header 'Name: value' (repeatable)")
	fs.IntVar(&cfg.PID, "pid", 0, "report CPU per request and RSS of this process (from /proc)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := json.Unmarshal([]byte(*argsJSON), &cfg.Arguments); err != nil {
		fmt.Fprintf(stderr, "mcpgw-load: -args: %v\n", err)
		return 2
	}
	if *tokenFile != "" {
		more, err := readLines(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "mcpgw-load: %v\n", err)
			return 2
		}
		tokens = append(tokens, more...)
	}
	cfg.Tokens, cfg.Agents = tokens, agents
	if len(headers) > 0 {
		cfg.Header = map[string][]string{}
		for _, h := range headers {
			name, value, ok := strings.Cut(h, ":")
			if !ok {
				fmt.Fprintf(stderr, "mcpgw-load: -H %q: want 'Name: value'\n", h)
				return 2
			}
			cfg.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	s, err := load.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw-load: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
	} else {
		printSummary(stdout, s)
	}
	if s.OK == 0 {
		return 1
	}
	return 0
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return out, nil
}

func printSummary(w io.Writer, s *load.Summary) {
	fmt.Fprintf(w, "%s %s, %d conns: %d requests in %.2fs, %d ok, %.0f req/s\n",
		s.Method, s.Target, s.Conns, s.Requests, s.Elapsed.Seconds(), s.OK, s.Throughput)
	fmt.Fprintf(w, "latency µs: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n", s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.Max)
	for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
		fmt.Fprintf(w, "errors %s: %d (e.g. %s)\n", k, s.Errors[k], s.ErrorSample[k])
	}
	if s.CPU != nil {
		fmt.Fprintf(w, "process %d: %.0f µs CPU per request, RSS %.1f MB\n", s.CPU.PID, float64(s.CPU.PerRequest.Nanoseconds())/1e3, float64(s.CPU.RSSBytes)/(1<<20))
	}
}
