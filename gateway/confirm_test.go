package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
)

// person answers the gateway's questions as told, and remembers them.
type person struct {
	mu        sync.Mutex
	answer    mcpgo.ElicitationResponseAction
	questions []string
}

func (p *person) Elicit(_ context.Context, req mcpgo.ElicitationRequest) (*mcpgo.ElicitationResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.questions = append(p.questions, req.Params.Message)
	return &mcpgo.ElicitationResult{ElicitationResponse: mcpgo.ElicitationResponse{Action: p.answer}}, nil
}

// TestConfirmObligation: the shipped policy asks the person before a
// delete_* call; the call reaches the backend only on accept, a decline or
// a client that cannot ask is refused, and the answer is audited.
func TestConfirmObligation(t *testing.T) {
	var records []audit.Record
	var mu sync.Mutex
	h := newHarness(t, harnessOptions{authorizer: engineFor(t, shippedPolicy), audit: func(_ context.Context, r audit.Record) {
		mu.Lock()
		records = append(records, r)
		mu.Unlock()
	}})
	token := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	open := func(p *person) *client.Client {
		headers := map[string]string{"Authorization": "Bearer " + token, "X-Agent-ID": "claude-code"}
		tr, err := transport.NewStreamableHTTP(h.url+"/employees", transport.WithHTTPHeaders(headers))
		if err != nil {
			t.Fatal(err)
		}
		var opts []client.ClientOption
		if p != nil {
			opts = append(opts, client.WithElicitationHandler(p))
		}
		c := client.NewClient(tr, opts...)
		t.Cleanup(func() { _ = c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		initialize(ctx, t, c)
		return c
	}
	deleteEmployee := func(c *client.Client, id string) (*mcpgo.CallToolResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req := mcpgo.CallToolRequest{}
		req.Params.Name = "delete_employee"
		req.Params.Arguments = map[string]any{"id": id}
		return c.CallTool(ctx, req)
	}
	count := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := open(nil)
		res, err := c.CallTool(ctx, mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "list_employees"}})
		if err != nil {
			t.Fatal(err)
		}
		return len(strings.Split(strings.TrimSpace(res.Content[0].(mcpgo.TextContent).Text), "\n"))
	}
	before := count()

	declines := &person{answer: mcpgo.ElicitationResponseActionDecline}
	if _, err := deleteEmployee(open(declines), "e1"); err == nil || !strings.Contains(err.Error(), "did not confirm") {
		t.Fatalf("declined delete: %v", err)
	}
	if len(declines.questions) != 1 || !strings.Contains(declines.questions[0], `Allow delete_employee on employees with {"id":"e1"}?`) {
		t.Fatalf("questions asked: %q", declines.questions)
	}
	if count() != before {
		t.Fatal("a declined delete reached the backend")
	}

	if _, err := deleteEmployee(open(nil), "e1"); err == nil || !strings.Contains(err.Error(), "elicitation") {
		t.Fatalf("delete from a client that cannot ask: %v", err)
	}

	accepts := &person{answer: mcpgo.ElicitationResponseActionAccept}
	res, err := deleteEmployee(open(accepts), "e1")
	if err != nil || res.IsError {
		t.Fatalf("accepted delete: %+v %v", res, err)
	}
	if count() != before-1 {
		t.Fatal("the accepted delete did not reach the backend")
	}

	mu.Lock()
	defer mu.Unlock()
	var answers []string
	for _, r := range records {
		if r.Outcome == "confirm_accept" || r.Outcome == "confirm_decline" {
			answers = append(answers, r.Outcome)
		}
	}
	if strings.Join(answers, ",") != "confirm_decline,confirm_accept" {
		t.Fatalf("audited answers: %v", answers)
	}
}

// TestConfirmAnsweredAtAnotherReplica: the person's answer lands on another
// replica than the one holding the call's stream; it meets the question in
// the store, and the call goes on.
func TestConfirmAnsweredAtAnotherReplica(t *testing.T) {
	dsn, idp, notes, ok := replicaWorld(t)
	if !ok {
		return
	}
	employees := startEmployees(t, demo.Options{})
	withEmployees := func(cfg *config.Config) {
		cfg.Backends["employees"] = config.Backend{URL: employees.URL, Paths: []string{"/employees"}, AuthMethod: "none", TimeoutSeconds: 5}
		cfg.Agents["claude-code"] = config.Agent{AgentID: "claude-code", ClientID: "claude-client", Scopes: []string{"mcp:read", "mcp:write"}, BackendAccess: []string{"employees"}}
	}
	one, two := startReplica(t, dsn, idp, notes.URL, withEmployees), startReplica(t, dsn, idp, notes.URL, withEmployees)
	// The load balancer: answers to the gateway's questions go to the
	// second replica, everything else to the first.
	to := func(raw string) *httputil.ReverseProxy {
		u, _ := url.Parse(raw)
		p := httputil.NewSingleHostReverseProxy(u)
		p.FlushInterval = -1
		return p
	}
	first, second := to(one.URL), to(two.URL)
	var toSecond atomic.Int32
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"mcpgw-confirm-`)) {
			toSecond.Add(1)
			second.ServeHTTP(w, r)
			return
		}
		first.ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)

	token := mintToken(t, idp, "carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	tr, err := transport.NewStreamableHTTP(lb.URL+"/employees", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token, "X-Agent-ID": "claude-code"}))
	if err != nil {
		t.Fatal(err)
	}
	accepts := &person{answer: mcpgo.ElicitationResponseActionAccept}
	c := client.NewClient(tr, client.WithElicitationHandler(accepts))
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	initialize(ctx, t, c)
	req := mcpgo.CallToolRequest{}
	req.Params.Name = "delete_employee"
	req.Params.Arguments = map[string]any{"id": "e2"}
	res, err := c.CallTool(ctx, req)
	if err != nil || res.IsError || len(accepts.questions) != 1 || toSecond.Load() != 1 {
		t.Fatalf("delete confirmed through the other replica: %+v %v (questions %q, answers at the second replica %d)", res, err, accepts.questions, toSecond.Load())
	}
}
