package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/ratelimit/redistest"
	"github.com/mcpgw/mcpgw/internal/telemetry"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

const pingBody = `{"jsonrpc":"2.0","id":1,"method":"ping"}`

func batchOf(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i+1)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// rateLimited checks a 429 answer: Retry-After in whole seconds and a
// JSON-RPC -32029 error naming the limit.
func rateLimited(t *testing.T, resp *http.Response, limit string) {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d (%s), want 429 for %s", resp.StatusCode, body, limit)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 120 {
		t.Fatalf("Retry-After %q, want 1 to 120 seconds", resp.Header.Get("Retry-After"))
	}
	var m struct {
		Error struct {
			Code    int
			Message string
			Data    map[string]any
		}
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("429 body %s: %v", body, err)
	}
	if m.Error.Code != CodeRateLimited || !strings.Contains(m.Error.Message, "ratelimit."+limit) || m.Error.Data["limit"] != limit {
		t.Fatalf("429 body %s, want -32029 naming ratelimit.%s", body, limit)
	}
}

// notLimited checks that the gateway let the request through its limits
// (what the backend then answers does not matter here).
func notLimited(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		t.Fatalf("%s: %d %s, want it through the rate limits", what, resp.StatusCode, body)
	}
}

// Per-caller budgets on one replica (in memory): requests count JSON-RPC
// messages (a batch counts each member), initialize requests count as
// sessions too, and each issuer+subject has a budget of its own whatever
// agent it comes through.
func TestRateLimitsInMemory(t *testing.T) {
	type step struct {
		who, agent, body string
		headers          map[string]string
		limited          string // "" or the limit that refuses
	}
	alice := "alice"
	for _, tc := range []struct {
		name     string
		requests int
		sessions int
		steps    []step
	}{
		{name: "requests per caller", requests: 3, steps: []step{
			{who: alice, body: pingBody}, {who: alice, body: pingBody}, {who: alice, body: pingBody},
			{who: alice, body: pingBody, limited: "requests_per_minute"},
			// The refusal cost nothing, and another caller is not affected.
			{who: "bob", body: pingBody},
			// Another agent (client) of the same user shares the user's budget.
			{who: alice, agent: "cursor", body: pingBody, limited: "requests_per_minute"},
		}},
		{name: "a batch counts its members", requests: 5, steps: []step{
			{who: alice, body: batchOf(5), headers: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}},
			{who: alice, body: pingBody, limited: "requests_per_minute"},
			// A batch bigger than the whole budget never fits.
			{who: "bob", body: batchOf(6), headers: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, limited: "requests_per_minute"},
			{who: "bob", body: pingBody},
		}},
		{name: "initialize counts as a session", requests: 100, sessions: 2, steps: []step{
			{who: alice, body: initBody}, {who: alice, body: initBody},
			{who: alice, body: initBody, limited: "sessions_per_minute"},
			{who: alice, body: pingBody},
		}},
		{name: "zero turns a limit off", requests: 0, sessions: 1, steps: []step{
			{who: alice, body: pingBody}, {who: alice, body: pingBody}, {who: alice, body: pingBody}, {who: alice, body: pingBody},
			{who: alice, body: initBody}, {who: alice, body: initBody, limited: "sessions_per_minute"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, logger := newLogBuffer()
			h := newHarness(t, harnessOptions{logger: logger, mutate: func(c *config.Config) {
				c.RateLimit = config.RateLimit{RequestsPerMinute: tc.requests, SessionsPerMinute: tc.sessions}
			}})
			refusals := 0
			for i, s := range tc.steps {
				agent, client := "claude-code", "claude-client"
				if s.agent == "cursor" {
					agent, client = "cursor", "cursor-client"
				}
				headers := map[string]string{"X-Request-ID": fmt.Sprintf("req-%d", i)}
				for k, v := range s.headers {
					headers[k] = v
				}
				resp := h.do(rawRequest{path: "/notes", token: h.token(s.who, []string{"mcp:read"}, nil, client), agent: agent, body: s.body, headers: headers})
				if s.limited == "" {
					notLimited(t, resp, fmt.Sprintf("step %d", i))
					continue
				}
				rateLimited(t, resp, s.limited)
				refusals++
			}
			// Each caller's first refusal is logged, with the request id;
			// more within the log interval are counted, not logged.
			logged := logs.lines("request over rate limit")
			if len(logged) == 0 || len(logged) > refusals || logged[0]["level"] != "WARN" || !strings.HasPrefix(fmt.Sprint(logged[0]["request_id"]), "req-") {
				t.Fatalf("refusals logged: %v", logged)
			}
		})
	}
}

// The refusal log is bounded per caller: a flood of refused requests is one
// line per caller and interval, not one per request.
func TestRateLimitRefusalLogIsBounded(t *testing.T) {
	logs, logger := newLogBuffer()
	h := newHarness(t, harnessOptions{logger: logger, mutate: func(c *config.Config) {
		c.RateLimit = config.RateLimit{RequestsPerMinute: 1}
	}})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
	notLimited(t, h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: pingBody}), "first")
	for range 50 {
		rateLimited(t, h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: pingBody}), "requests_per_minute")
	}
	if n := len(logs.lines("request over rate limit")); n != 1 {
		t.Fatalf("%d log lines for 50 refusals of one caller, want 1", n)
	}
}

// With ratelimit.redis_url the budget is the deployment's, not the
// replica's: requests through two replicas count against one budget.
func TestRateLimitSharedByReplicasThroughRedis(t *testing.T) {
	url, ok := redistest.URL(t)
	if !ok {
		return
	}
	prefix := redistest.Prefix(t, url)
	idp, notes := startWorld(t)
	limits := func(c *config.Config) {
		c.RateLimit = config.RateLimit{RequestsPerMinute: 6, SessionsPerMinute: 2, RedisURL: url, RedisKeyPrefix: prefix}
	}
	one, two := startGateway(t, idp, notes.URL, limits), startGateway(t, idp, notes.URL, limits)
	h1, h2 := &harness{t: t, idp: idp, url: one.URL}, &harness{t: t, idp: idp, url: two.URL}
	tok := h1.token("alice", []string{"mcp:read"}, nil, "claude-client")
	// Six requests, alternating replicas: each replica alone has seen only
	// three, so only a shared budget refuses the seventh.
	for i := range 6 {
		h := []*harness{h1, h2}[i%2]
		notLimited(t, h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: pingBody}), fmt.Sprintf("request %d", i+1))
	}
	rateLimited(t, h1.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: pingBody}), "requests_per_minute")
	rateLimited(t, h2.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: pingBody}), "requests_per_minute")
	// Sessions too, for another caller.
	bob := h1.token("bob", []string{"mcp:read"}, nil, "claude-client")
	notLimited(t, h1.do(rawRequest{path: "/notes", token: bob, agent: "claude-code", body: initBody}), "bob's first session")
	notLimited(t, h2.do(rawRequest{path: "/notes", token: bob, agent: "claude-code", body: initBody}), "bob's second session")
	rateLimited(t, h1.do(rawRequest{path: "/notes", token: bob, agent: "claude-code", body: initBody}), "sessions_per_minute")
}

// Redis unreachable: requests are refused with 503 (and the replica is not
// ready) unless ratelimit.fail_open lets them through.
func TestRateLimitRedisUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "redis://:hunter2@" + ln.Addr().String() + "/0"
	ln.Close()
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail_open=%v", failOpen), func(t *testing.T) {
			logs, logger := newLogBuffer()
			h := newHarness(t, harnessOptions{logger: logger, mutate: func(c *config.Config) {
				c.RateLimit = config.RateLimit{RequestsPerMinute: 5, RedisURL: dead, RedisTimeout: 500 * time.Millisecond, FailOpen: failOpen}
			}})
			tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
			resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: pingBody})
			ready := h.gw.rate.ready(context.Background())
			if failOpen {
				notLimited(t, resp, "with Redis down and fail_open")
				if ready != nil {
					t.Fatalf("fail_open: not ready: %v", ready)
				}
			} else {
				body := string(readAll(t, resp))
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "rate limiter unavailable") || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("Redis down: %d %s, want 503 naming the rate limiter", resp.StatusCode, body)
				}
				if ready == nil {
					t.Fatal("Redis down and requests refused for it, but the replica says it is ready")
				}
			}
			if l := logs.lines("rate limiter unavailable"); len(l) != 1 || strings.Contains(fmt.Sprint(l), "hunter2") {
				t.Fatalf("log: %v, want one line without the password", l)
			}
		})
	}
}

// startWorld starts an identity provider and a notes backend for
// gateways started with startGateway.
func startWorld(t *testing.T) (*testidp.Server, *demo.Backend) {
	t.Helper()
	return startIdP(t), startNotes(t, demo.Options{})
}

// startGateway runs a whole gateway (Start) with its own in-memory store
// and the permissive test policy; replicas share what mutate gives them.
func startGateway(t *testing.T, idp *testidp.Server, notesURL string, mutate func(*config.Config), opts ...func(*StartOptions)) *Server {
	t.Helper()
	ln := listenLoopback(t)
	cfg := baseConfig(ln, idp.Issuer())
	cfg.Server.MetricsListen = "127.0.0.1:0"
	cfg.Backends["notes"] = notesBackend(notesURL)
	cfg.Agents["claude-code"] = claudeCodeAgent([]string{"mcp:read"}, "notes")
	cfg.Policy = policyConfig(allowAllPolicy)
	cfg.Store = storeConfig(":memory:", time.Hour)
	if mutate != nil {
		mutate(cfg)
	}
	so := StartOptions{Listener: ln}
	for _, o := range opts {
		o(&so)
	}
	return startServer(t, cfg, so, 5*time.Second)
}

// stuckWriter is an audit destination that stops answering until released:
// a collector or disk that fell behind.
type stuckWriter struct {
	release chan struct{}
	once    sync.Once
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

func (w *stuckWriter) unblock() { w.once.Do(func() { close(w.release) }) }

// An audit sink that cannot keep up is visible: under audit.on_overflow
// drop the records of refused requests are dropped at once, under block
// the request waits (audit.block_timeout) before its record is dropped;
// either way the loss is counted in mcpgw_audit_records_dropped_total and
// /readyz fails its audit check for a minute.
func TestAuditLossIsVisible(t *testing.T) {
	for _, tc := range []struct {
		overflow string
		reason   string
	}{
		{config.AuditOverflowDrop, audit.DropQueueFull},
		{config.AuditOverflowBlock, audit.DropWaitTimeout},
	} {
		t.Run(tc.overflow, func(t *testing.T) {
			idp, notes := startWorld(t)
			stuck := &stuckWriter{release: make(chan struct{})}
			metrics, err := telemetry.NewMetrics(telemetry.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			auditCfg := config.Audit{OnOverflow: tc.overflow, BlockTimeout: 200 * time.Millisecond}
			srv := startGateway(t, idp, notes.URL, func(c *config.Config) { c.Audit = auditCfg }, func(o *StartOptions) {
				// The collector sink, made as Start makes the store's, with a
				// queue of one so that a handful of records overflow it.
				opts := AuditBatchOptions(&config.Config{Audit: auditCfg}, quietLogger(), metrics, "jsonlines")
				opts.Buffer, opts.MaxBatch = 1, 1
				o.AuditSinks = []audit.Sink{audit.NewJSONLinesSink(stuck, opts)}
				o.Metrics = metrics
			})
			// Unblock before the server's Close (cleanups run last first).
			t.Cleanup(stuck.unblock)
			h := &harness{t: t, idp: idp, url: srv.URL}
			if code, ready := mainReadyz(t, srv.URL); code != 200 || !ready {
				t.Fatalf("before any loss: /readyz %d %v", code, ready)
			}
			tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
			// Bodies that are not JSON: each is refused and audited as a
			// denial. The collector takes one, queues one, and loses the rest.
			for i := range 4 {
				done := make(chan *http.Response, 1)
				go func() { done <- h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: "{not json"}) }()
				select {
				case resp := <-done:
					testutil.WantStatus(t, resp, http.StatusBadRequest)
				case <-time.After(30 * time.Second):
					t.Fatalf("refusal %d did not return: a stuck audit sink holds the request past audit.block_timeout", i)
				}
			}
			code, body := readyz(t, srv.MetricsURL)
			checks, _ := body["checks"].(map[string]any)
			if code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(checks["audit"]), "audit records dropped in the last minute") {
				t.Fatalf("/readyz after audit loss = %d %v, want 503 with the audit check failing", code, body)
			}
			if code, ready := mainReadyz(t, srv.URL); code != http.StatusServiceUnavailable || ready {
				t.Fatalf("main /readyz after audit loss = %d %v", code, ready)
			}
			scraped := scrapeMetrics(t, srv.MetricsURL)
			want := fmt.Sprintf(`mcpgw_audit_records_dropped_total{reason="%s",sink="jsonlines"}`, tc.reason)
			if !strings.Contains(scraped, want) {
				t.Fatalf("/metrics lacks %s:\n%s", want, grepLines(scraped, "audit"))
			}
		})
	}
}

func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return string(readAll(t, resp))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
