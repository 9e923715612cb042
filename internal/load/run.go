package load

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	URL string
	// Conns concurrent clients, each with its own session and connection.
	Conns int
	// Method is tools/call or tools/list.
	Method string
	// Tool and Arguments are the tools/call's.
	Tool      string
	Arguments map[string]any
	// FreshKey, when set, names the argument made distinct on every call
	// (so a decision cache misses); otherwise every call is the same.
	FreshKey string
	// Count bounds the requests of the run (all clients together) and
	// Duration its time; the run ends at whichever comes first. A zero
	// Count means no count bound; Duration must be positive.
	Count    int
	Duration time.Duration
	// Tokens and Agents are spread over the clients round-robin (client i
	// gets Tokens[i%len] and Agents[i%len]): several subjects and agents.
	Tokens []string
	Agents []string
	Header http.Header
	// Timeout bounds one request.
	Timeout time.Duration
	// PID, when positive, is a process whose CPU time per request and RSS
	// are reported (the server under test, on this machine).
	PID int
}

func (c *Config) check() error {
	switch {
	case c.URL == "":
		return errors.New("no URL")
	case c.Conns < 1:
		return fmt.Errorf("conns %d: need at least 1", c.Conns)
	case c.Method != "tools/call" && c.Method != "tools/list":
		return fmt.Errorf("method %q: tools/call or tools/list", c.Method)
	case c.Method == "tools/call" && c.Tool == "":
		return errors.New("tools/call needs a tool")
	case c.Duration <= 0:
		return errors.New("duration must be positive (it bounds every run)")
	case c.Count < 0:
		return fmt.Errorf("count %d is negative", c.Count)
	}
	return nil
}

func pick(xs []string, i int) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[i%len(xs)]
}

// Connect opens n sessions of cfg, at most par at a time.
func Connect(ctx context.Context, cfg Config, hc *http.Client, n, par int) ([]*Client, error) {
	clients := make([]*Client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, max(par, 1))
	var wg sync.WaitGroup
	for i := range n {
		clients[i] = NewClient(hc, cfg.URL, pick(cfg.Tokens, i), pick(cfg.Agents, i), cfg.Header)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ictx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			defer cancel()
			errs[i] = clients[i].Initialize(ictx)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("open %d sessions: %w", n, err)
	}
	return clients, nil
}

// Run opens the sessions, then sends requests until the count or the time
// is reached, and summarises them. Only the request loop is measured.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	hc := NewHTTPClient(cfg.Conns, cfg.Timeout)
	defer hc.CloseIdleConnections()
	clients, err := Connect(ctx, cfg, hc, cfg.Conns, 16)
	if err != nil {
		return nil, err
	}
	var cpu0 time.Duration
	if cfg.PID > 0 {
		if cpu0, err = CPUTime(cfg.PID); err != nil {
			return nil, err
		}
	}
	var issued atomic.Int64
	results := make([]workerResult, cfg.Conns)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { results[i] = work(runCtx, cfg, c, i, &issued) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	s := merge(results)
	s.Target, s.Method, s.Conns, s.Elapsed = cfg.URL, cfg.Method, cfg.Conns, elapsed
	s.Throughput = float64(s.OK) / elapsed.Seconds()
	if cfg.PID > 0 {
		cpu1, err := CPUTime(cfg.PID)
		if err != nil {
			return nil, err
		}
		rss, err := RSS(cfg.PID)
		if err != nil {
			return nil, err
		}
		s.CPU = &ProcessCPU{PID: cfg.PID, Total: cpu1 - cpu0, RSSBytes: rss}
		if s.Requests > 0 {
			s.CPU.PerRequest = s.CPU.Total / time.Duration(s.Requests)
		}
	}
	return s, nil
}

type workerResult struct {
	latencies []time.Duration
	errors    map[string]int
	sample    map[string]string
}

func work(ctx context.Context, cfg Config, c *Client, worker int, issued *atomic.Int64) workerResult {
	r := workerResult{errors: map[string]int{}, sample: map[string]string{}}
	args := maps.Clone(cfg.Arguments)
	if args == nil {
		args = map[string]any{}
	}
	for n := 0; ; n++ {
		if cfg.Count > 0 && issued.Add(1) > int64(cfg.Count) {
			return r
		}
		if ctx.Err() != nil {
			return r
		}
		var params any
		if cfg.Method == "tools/list" {
			params = map[string]any{}
		} else {
			if cfg.FreshKey != "" {
				args[cfg.FreshKey] = "load " + strconv.Itoa(worker) + "-" + strconv.Itoa(n)
			}
			params = map[string]any{"name": cfg.Tool, "arguments": args}
		}
		reqCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		t0 := time.Now()
		_, err := c.Call(reqCtx, cfg.Method, params)
		d := time.Since(t0)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				// The run's time ran out mid-request: not the server's error.
				return r
			}
			k := Kind(err)
			r.errors[k]++
			if _, ok := r.sample[k]; !ok {
				r.sample[k] = err.Error()
			}
			continue
		}
		r.latencies = append(r.latencies, d)
	}
}

func merge(rs []workerResult) *Summary {
	s := &Summary{Errors: map[string]int{}, ErrorSample: map[string]string{}}
	var all []time.Duration
	for _, r := range rs {
		all = append(all, r.latencies...)
		for k, n := range r.errors {
			s.Errors[k] += n
			s.Requests += n
		}
		for k, v := range r.sample {
			s.ErrorSample[k] = v
		}
	}
	s.OK = len(all)
	s.Requests += s.OK
	s.Latency = summarize(all)
	return s
}
