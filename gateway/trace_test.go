package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestRequestSpansAndTraceContextReachTheBackend(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	var mu sync.Mutex
	var seen, bodies []string
	record := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			mu.Lock()
			seen = append(seen, r.Header.Get("Traceparent"))
			bodies = append(bodies, string(body))
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}
	h := newHarness(t, harnessOptions{tracer: tp.Tracer("test"), wrapNotes: record})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: initBody,
		headers: map[string]string{"Traceparent": "00-" + clientTrace + "-00f067aa0ba902b7-01"}})
	testutil.WantStatus(t, resp, http.StatusOK)
	readAll(t, resp)

	spans := exporter.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	// The request span is named as the MCP conventions say: the method.
	root, ok := byName["initialize"]
	if !ok {
		t.Fatalf("no request span among %d spans", len(spans))
	}
	if root.SpanContext.TraceID().String() != clientTrace {
		t.Fatalf("request span trace %s, want the client's %s", root.SpanContext.TraceID(), clientTrace)
	}
	for _, child := range []string{"mcpgw.identity", "mcpgw.policy", "mcpgw.upstream"} {
		s, ok := byName[child]
		if !ok {
			t.Fatalf("no %s span", child)
		}
		if s.Parent.SpanID() != root.SpanContext.SpanID() {
			t.Fatalf("%s is not a child of the request span", child)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || !strings.Contains(seen[0], clientTrace) || strings.Contains(seen[0], "00f067aa0ba902b7") {
		t.Fatalf("backend traceparent %v: want the client's trace with the gateway's own span", seen)
	}
	// The same context in params._meta (the MCP conventions' per-message
	// propagation), written before the decision, so the message the policy
	// decided on is the one the backend got.
	// It names the gateway's request span; the header, the upstream call's.
	if want := `"_meta":{"traceparent":"00-` + clientTrace + `-` + root.SpanContext.SpanID().String() + `-01"}`; !strings.Contains(bodies[0], want) {
		t.Fatalf("backend got %s, want params holding %s", bodies[0], want)
	}
}

// The request span carries the OpenTelemetry MCP conventions' name and
// attributes, and never the sealed session id or the arguments.
func TestRequestSpanFollowsTheMCPConventions(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	h := newHarness(t, harnessOptions{tracer: tp.Tracer("test")})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
	session := h.openSession("/notes", tok, "claude-code")
	exporter.Reset()

	call := func(id int, tool string) tracetest.SpanStub {
		t.Helper()
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"message":"s3cret-arg"}}}`, id, tool)
		resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: session, body: body,
			headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"}})
		readAll(t, resp)
		for _, s := range exporter.GetSpans() {
			if s.Name == "tools/call "+tool {
				exporter.Reset()
				return s
			}
		}
		t.Fatalf("no span named %q among %v", "tools/call "+tool, exporter.GetSpans())
		return tracetest.SpanStub{}
	}
	attrs := func(s tracetest.SpanStub) map[string]string {
		m := map[string]string{}
		for _, kv := range s.Attributes {
			m[string(kv.Key)] = kv.Value.String()
		}
		return m
	}

	allowed := attrs(call(7, "echo"))
	for k, want := range map[string]string{
		"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "gen_ai.operation.name": "execute_tool",
		"jsonrpc.request.id": "7", "mcp.protocol.version": "2025-06-18", "network.transport": "tcp",
	} {
		if allowed[k] != want {
			t.Errorf("allowed call: %s = %q, want %q (all: %v)", k, allowed[k], want, allowed)
		}
	}
	if _, failed := allowed["error.type"]; failed {
		t.Errorf("allowed call has error.type: %v", allowed)
	}
	if sid := allowed["mcp.session.id"]; sid == "" || strings.Contains(session, sid) && len(sid) == len(session) {
		t.Errorf("mcp.session.id = %q: want the session's hash, never the sealed id", sid)
	}
	for k, v := range allowed {
		if strings.Contains(v, "s3cret-arg") || strings.Contains(v, tok) {
			t.Errorf("span attribute %s shows an argument or the token", k)
		}
	}

	// A tool the backend does not list is refused before the policy.
	refused := call(8, "no_such_tool")
	if a := attrs(refused); a["error.type"] != "invalid" || refused.Status.Code != codes.Error {
		t.Errorf("refused call: error.type %q, status %v", a["error.type"], refused.Status)
	}
}
