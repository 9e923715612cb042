package gateway

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestRequestSpansAndTraceContextReachTheBackend(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	var mu sync.Mutex
	var seen []string
	record := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Traceparent"))
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
	root, ok := byName["mcpgw.request"]
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
}
