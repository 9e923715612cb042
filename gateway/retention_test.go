package gateway

import (
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// Fiber's strings (c.Path(), c.Method(), c.Get(...)) point into buffers the
// next request reuses. Anything kept past the handler (span attributes an
// exporter reads later, the call an SSE writer reads, the OPA decision-log
// input) must be a copy: here each request span must still name its own
// path and protocol version after other requests ran on the pooled context.
func TestRequestDataOutlivesTheHandler(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	h := newHarness(t, harnessOptions{tracer: tp.Tracer("test")})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
	tests := []struct {
		path, backend, version string
	}{
		{"/notes", "notes", "2025-06-18"},
		{"/employees", "employees", "2025-03-26"},
	}
	sessions := map[string]string{}
	for _, tc := range tests {
		sessions[tc.path] = h.openSession(tc.path, tok, "claude-code")
	}
	exporter.Reset()
	const rounds = 20
	for i := 0; i < rounds; i++ {
		for _, tc := range tests {
			resp := h.do(rawRequest{path: tc.path, token: tok, agent: "claude-code", session: sessions[tc.path], body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
				headers: map[string]string{"Mcp-Protocol-Version": tc.version}})
			testutil.WantStatus(t, resp, http.StatusOK)
			readAll(t, resp)
		}
	}
	want := map[string]struct{ path, version string }{}
	for _, tc := range tests {
		want[tc.backend] = struct{ path, version string }{tc.path, tc.version}
	}
	seen := 0
	for _, s := range exporter.GetSpans() {
		a := map[string]string{}
		for _, kv := range s.Attributes {
			a[string(kv.Key)] = kv.Value.String()
		}
		w, ok := want[a["mcpgw.backend"]]
		if !ok || s.Name != "ping" {
			continue
		}
		seen++
		if a["url.path"] != w.path || a["http.request.method"] != http.MethodPost || a["mcp.protocol.version"] != w.version {
			t.Fatalf("span of backend %s: url.path %q, method %q, version %q; want %q, POST, %q",
				a["mcpgw.backend"], a["url.path"], a["http.request.method"], a["mcp.protocol.version"], w.path, w.version)
		}
	}
	if seen != rounds*len(tests) {
		t.Fatalf("%d request spans, want %d", seen, rounds*len(tests))
	}
}
