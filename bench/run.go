package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/internal/load"
)

// target is one way to reach a backend: directly, through the plain proxy
// or through the gateway. pid is the process whose CPU is charged to it
// (the proxy's or the gateway's; the backend's when direct).
type target struct {
	name  string
	url   string
	pid   int
	fresh bool
	auth  bool
}

// record is one measurement.
type record struct {
	Phase  string         `json:"phase"`
	Target string         `json:"target"`
	Conns  int            `json:"conns"`
	Round  int            `json:"round"`
	Sum    *load.Summary  `json:"summary"`
	Extra  map[string]any `json:"extra,omitempty"`
}

func (e *env) measure(ctx context.Context, t target, method string, conns, count int, d time.Duration) (*load.Summary, error) {
	cfg := load.Config{
		URL: t.url, Conns: conns, Method: method, Tool: "echo",
		Arguments: map[string]any{"message": "bench"}, Duration: d, Count: count, PID: t.pid,
		Timeout: 60 * time.Second,
	}
	if t.fresh {
		cfg.FreshKey = "message"
	}
	if t.auth {
		cfg.Tokens, cfg.Agents = e.tokens, e.agents
	}
	return load.Run(ctx, cfg)
}

func (e *env) run(ctx context.Context, o options, only string) error {
	want := func(phase string) bool {
		return only == "" || slices.Contains(strings.Split(only, ","), phase)
	}
	var recs []record
	printMachine()
	fmt.Printf("gateway idle RSS: %.1f MB\n", mb(e.idleRSS))
	if want("calls") {
		targets := []target{
			{name: "direct", url: e.b50.url, pid: e.b50.pid()},
			{name: "plain proxy", url: e.proxy.url, pid: e.proxy.pid()},
			{name: "mcpgw repeated", url: e.gw.url + "/b50", pid: e.gw.pid(), auth: true},
			{name: "mcpgw fresh", url: e.gw.url + "/b50", pid: e.gw.pid(), auth: true, fresh: true},
			{name: "mcpgw fresh read", url: e.gw.url + "/" + argsReadBackend, pid: e.gw.pid(), auth: true, fresh: true},
			{name: xaaTarget, url: e.gw.url + "/" + xaaBackend, pid: e.gw.pid(), auth: true},
		}
		before := e.xaaGrants()
		if err := e.warmXAA(ctx); err != nil {
			return err
		}
		warm := e.xaaGrants()
		r, err := e.rounds(ctx, o, "tools/call", targets, o.conns)
		if err != nil {
			return err
		}
		during := e.xaaGrants().minus(warm)
		recs = append(recs, r...)
		report(os.Stdout, "tools/call echo (CPU: the proxy's or gateway's process; direct: the backend's)", r, o.conns)
		recs = append(recs, reportXAA(os.Stdout, len(e.tokens), warm.minus(before), during, callsTo(r, xaaTarget)))
	}
	if want("lists") {
		p1000, err := startSelf("proxy-1000", "proxy", "-target", e.b1000.url)
		if err != nil {
			return err
		}
		defer p1000.stop()
		for _, l := range []struct {
			n      string
			direct *child
			proxy  *child
			path   string
		}{{"50", e.b50, e.proxy, "/b50"}, {"1000", e.b1000, p1000, "/b1000"}} {
			targets := []target{
				{name: "direct", url: l.direct.url, pid: l.direct.pid()},
				{name: "plain proxy", url: l.proxy.url, pid: l.proxy.pid()},
				{name: "mcpgw warm", url: e.gw.url + l.path, pid: e.gw.pid(), auth: true},
			}
			r, err := e.rounds(ctx, o, "tools/list", targets, []int{1, 16})
			if err != nil {
				return err
			}
			for i := range r {
				r[i].Phase = "tools/list " + l.n
			}
			recs = append(recs, r...)
			report(os.Stdout, "tools/list of "+l.n+" tools (+ echo)", r, []int{1, 16})
		}
		r, err := e.coldLists(ctx)
		if err != nil {
			return err
		}
		recs = append(recs, r...)
	}
	if want("profile") && o.profile != "" {
		if err := e.profile(ctx, o); err != nil {
			return err
		}
	}
	if want("memory") {
		r, err := e.memory(ctx, o)
		if err != nil {
			return err
		}
		recs = append(recs, r...)
	}
	if want("huge") && e.huge != nil {
		r, err := e.hugeList(ctx, o)
		if err != nil {
			return err
		}
		recs = append(recs, r...)
	}
	if o.jsonOut != "" {
		if err := os.MkdirAll(filepath.Dir(o.jsonOut), 0o755); err != nil {
			return err
		}
		b, err := json.MarshalIndent(recs, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(o.jsonOut, b, 0o644)
	}
	return nil
}

// xaaTarget calls xaaBackend with repeated decisions, as "mcpgw repeated"
// calls /b50: the difference is the okta-cross-app credential, served
// from the gateway's token cache (warmXAA fills it first).
const xaaTarget = "mcpgw xaa"

// xaaGrants counts the requests of the okta-cross-app exchange's two steps:
// token exchanges at the identity provider, jwt-bearer grants at the
// resource authorization server.
type xaaGrants struct{ exchanges, jwtBearer int64 }

func (e *env) xaaGrants() xaaGrants {
	return xaaGrants{e.idp.TokenRequests(grantTokenExchange), e.ras.TokenRequests(grantJWTBearer)}
}

func (g xaaGrants) minus(h xaaGrants) xaaGrants {
	return xaaGrants{g.exchanges - h.exchanges, g.jwtBearer - h.jwtBearer}
}

// warmXAA calls xaaBackend once as every subject, so the gateway's token
// cache holds each subject's backend token before the measured rounds: a
// busy gateway serves a caller's calls from it, and a round that happened
// to be the first for a subject would otherwise include two token requests
// in its figures. The call must succeed, or the target measures failures.
func (e *env) warmXAA(ctx context.Context) error {
	hc := load.NewHTTPClient(1, time.Minute)
	defer hc.CloseIdleConnections()
	for i, tok := range e.tokens {
		c := load.NewClient(hc, e.gw.url+"/"+xaaBackend, tok, e.agents[i%len(e.agents)], nil)
		if err := c.Initialize(ctx); err != nil {
			return fmt.Errorf("warm %s as subject %d: %w", xaaBackend, i, err)
		}
		res, err := c.Call(ctx, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "bench"}})
		if err != nil {
			return fmt.Errorf("warm %s as subject %d: %w", xaaBackend, i, err)
		}
		var out struct {
			IsError bool `json:"isError"`
		}
		if err := json.Unmarshal(res, &out); err != nil || out.IsError {
			return fmt.Errorf("warm %s as subject %d: the call failed: %s", xaaBackend, i, res)
		}
	}
	return nil
}

// callsTo is the number of requests the records of target made.
func callsTo(recs []record, target string) int {
	n := 0
	for _, r := range recs {
		if r.Target == target && r.Sum != nil {
			n += r.Sum.Requests
		}
	}
	return n
}

// reportXAA prints what the okta-cross-app exchanges cost the servers
// around the gateway: warm-up, at most one exchange per subject (each
// subject has one agent); during the measured calls, none, the cache
// answering. Any exchange there means the figures include token requests.
func reportXAA(w io.Writer, subjects int, warmup, during xaaGrants, calls int) record {
	fmt.Fprintf(w, "\nokta-cross-app (%s): warm-up of %d subjects: %d token exchanges at the IdP, %d jwt-bearer grants at the resource AS\n",
		xaaTarget, subjects, warmup.exchanges, warmup.jwtBearer)
	fmt.Fprintf(w, "okta-cross-app: %d token exchanges at the IdP, %d jwt-bearer grants at the resource AS during %d calls\n",
		during.exchanges, during.jwtBearer, calls)
	return record{Phase: "okta-cross-app cache", Target: xaaTarget, Extra: map[string]any{
		"subjects": subjects, "warmup_token_exchanges": warmup.exchanges, "warmup_jwt_bearer_grants": warmup.jwtBearer,
		"calls": calls, "token_exchanges": during.exchanges, "jwt_bearer_grants": during.jwtBearer,
	}}
}

// rounds measures every target at every connection count, interleaved:
// round after round, so the neighbours' load falls on all of them alike.
func (e *env) rounds(ctx context.Context, o options, method string, targets []target, conns []int) ([]record, error) {
	var recs []record
	for round := range o.rounds {
		for _, n := range conns {
			for _, t := range targets {
				s, err := e.measure(ctx, t, method, n, 0, o.duration)
				if err != nil {
					return nil, fmt.Errorf("%s %s, %d conns: %w", method, t.name, n, err)
				}
				recs = append(recs, record{Phase: method, Target: t.name, Conns: n, Round: round, Sum: s})
			}
		}
	}
	return recs, nil
}

// coldLists lists 1,000 tools once each as callers the gateway has not
// seen: no cached visibility, a signature check of a new token.
func (e *env) coldLists(ctx context.Context) ([]record, error) {
	var recs []record
	var p50s []float64
	for i := range 7 {
		tok, err := e.idp.MintUser(fmt.Sprintf("cold%d-%d", i, time.Now().UnixNano()), []string{"mcp:read"}, []string{"mcp-viewers"}, map[string]any{"cid": benchAgents[0].client})
		if err != nil {
			return nil, err
		}
		s, err := load.Run(ctx, load.Config{URL: e.gw.url + "/b1000", Conns: 1, Method: "tools/list", Count: 1, Duration: time.Minute,
			Tokens: []string{tok}, Agents: []string{benchAgents[0].id}, Timeout: time.Minute})
		if err != nil {
			return nil, err
		}
		if s.OK == 1 {
			p50s = append(p50s, s.Latency.P50)
		}
		recs = append(recs, record{Phase: "tools/list 1000 cold", Target: "mcpgw cold", Conns: 1, Round: i, Sum: s})
	}
	fmt.Printf("\ntools/list of 1000 tools, cold (a caller never seen: new token, no cached visibility): median %.2f ms of %d\n", load.Median(p50s)/1e3, len(p50s))
	return recs, nil
}

func (e *env) hugeList(ctx context.Context, o options) ([]record, error) {
	var recs []record
	fmt.Printf("\ntools/list of %d tools, one caller, 3 lists each:\n", o.huge)
	for _, t := range []target{
		{name: "direct", url: e.huge.url, pid: e.huge.pid()},
		{name: "mcpgw", url: e.gw.url + "/huge", pid: e.gw.pid(), auth: true},
	} {
		s, err := e.measure(ctx, t, "tools/list", 1, 3, 3*time.Minute)
		if err != nil {
			return nil, err
		}
		listed, err := e.countTools(ctx, t)
		if err != nil {
			return nil, err
		}
		fmt.Printf("  %-8s ok %d/%d, %d tools listed to a super-admin  p50 %.0f ms  max %.0f ms  CPU %.0f ms/list  errors %v %v\n", t.name, s.OK, s.Requests,
			listed, s.Latency.P50/1e3, s.Latency.Max/1e3, cpuUS(s)/1e3, s.Errors, s.ErrorSample)
		recs = append(recs, record{Phase: "tools/list huge", Target: t.name, Conns: 1, Sum: s, Extra: map[string]any{"listed": listed}})
	}
	return recs, nil
}

// memory opens idle sessions through the gateway, then GET streams on some
// of them, reading the gateway's RSS after each.
func (e *env) memory(ctx context.Context, o options) ([]record, error) {
	hc := load.NewHTTPClient(64, 0)
	defer hc.CloseIdleConnections()
	before, err := rss(e.gw.pid())
	if err != nil {
		return nil, err
	}
	cfg := load.Config{URL: e.gw.url + "/b50", Tokens: e.tokens, Agents: e.agents, Timeout: time.Minute}
	clients, err := load.Connect(ctx, cfg, hc, o.sessions, 32)
	if err != nil {
		return nil, err
	}
	time.Sleep(time.Second)
	withSessions, err := rss(e.gw.pid())
	if err != nil {
		return nil, err
	}
	fmt.Printf("\ngateway RSS: idle %.1f MB; before sessions %.1f MB; with %d open sessions %.1f MB (%+.0f bytes per session)\n",
		mb(e.idleRSS), mb(before), o.sessions, mb(withSessions), float64(withSessions-before)/float64(o.sessions))
	recs := []record{{Phase: "memory", Target: "mcpgw", Extra: map[string]any{
		"idle_rss": e.idleRSS, "before_sessions_rss": before, "sessions": o.sessions, "sessions_rss": withSessions}}}
	if o.streams <= 0 {
		return recs, nil
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var bodies []io.ReadCloser
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, c := range clients[:min(o.streams, len(clients))] {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			b, err := c.OpenStream(sctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			bodies = append(bodies, b)
		})
	}
	wg.Wait()
	time.Sleep(time.Second)
	withStreams, err := rss(e.gw.pid())
	if err != nil {
		return nil, err
	}
	fmt.Printf("gateway RSS with %d open GET streams: %.1f MB (%+.0f KB per stream; %d failed to open)\n",
		len(bodies), mb(withStreams), float64(withStreams-withSessions)/1024/float64(max(len(bodies), 1)), len(errs))
	if len(errs) > 0 {
		fmt.Printf("  first stream error: %v\n", errs[0])
	}
	for _, b := range bodies {
		b.Close()
	}
	recs[0].Extra["streams"] = len(bodies)
	recs[0].Extra["streams_rss"] = withStreams
	return recs, nil
}

// profile takes CPU profiles of the gateway under fresh-decision calls and
// under 1,000-tool lists, and its allocation profile, and prints the tops.
func (e *env) profile(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.profile, 0o755); err != nil {
		return err
	}
	for _, p := range []struct {
		name, method string
		t            target
	}{
		{"call-fresh", "tools/call", target{url: e.gw.url + "/b50", pid: e.gw.pid(), auth: true, fresh: true}},
		{"call-fresh-read", "tools/call", target{url: e.gw.url + "/" + argsReadBackend, pid: e.gw.pid(), auth: true, fresh: true}},
		{"call-repeated", "tools/call", target{url: e.gw.url + "/b50", pid: e.gw.pid(), auth: true}},
		{"list-1000", "tools/list", target{url: e.gw.url + "/b1000", pid: e.gw.pid(), auth: true}},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := e.measure(ctx, p.t, p.method, 16, 0, 12*time.Second)
			done <- err
		}()
		time.Sleep(time.Second)
		cpu := filepath.Join(o.profile, "cpu-"+p.name+".pprof")
		if err := fetch("http://"+e.metrics+"/debug/pprof/profile?seconds=10", cpu); err != nil {
			return err
		}
		allocs := filepath.Join(o.profile, "allocs-"+p.name+".pprof")
		if err := fetch("http://"+e.metrics+"/debug/pprof/allocs", allocs); err != nil {
			return err
		}
		if err := <-done; err != nil {
			return err
		}
		fmt.Printf("\nCPU profile of the gateway, %s, 16 conns (%s):\n", p.name, cpu)
		top := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", cpu)
		top.Stdout, top.Stderr = os.Stdout, os.Stderr
		if err := top.Run(); err != nil {
			return fmt.Errorf("pprof: %w", err)
		}
	}
	return nil
}

func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return f.Close()
}

// countTools lists t's tools once as the first subject (a super-admin, who
// may see them all) and counts them: a gateway that failed closed answers
// an empty list, which a latency alone would not show.
func (e *env) countTools(ctx context.Context, t target) (int, error) {
	hc := load.NewHTTPClient(1, 3*time.Minute)
	defer hc.CloseIdleConnections()
	var tok, agent string
	if t.auth {
		tok, agent = e.tokens[0], e.agents[0]
	}
	c := load.NewClient(hc, t.url, tok, agent, nil)
	if err := c.Initialize(ctx); err != nil {
		return 0, fmt.Errorf("count tools of %s: %w", t.name, err)
	}
	res, err := c.Call(ctx, "tools/list", map[string]any{})
	if err != nil {
		return 0, fmt.Errorf("count tools of %s: %w", t.name, err)
	}
	var list struct {
		Tools []json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(res, &list); err != nil {
		return 0, fmt.Errorf("count tools of %s: %w", t.name, err)
	}
	return len(list.Tools), nil
}
