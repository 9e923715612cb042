package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgw/mcpgw/internal/config"
)

func newInMemoryTracing(t *testing.T, ratio float64) (*tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp, err := newTracerProvider(t.Context(), sdktrace.WithSyncer(exp), ratio, "v-test")
	if err != nil {
		t.Fatalf("newTracerProvider: %v", err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return exp, tp.Tracer(TracerName)
}

func TestSpansNestAndTraceparentIsInjected(t *testing.T) {
	exp, tracer := newInMemoryTracing(t, 1)

	ctx, root := StartSpan(t.Context(), tracer, SpanRequest, attribute.String("mcpgw.backend", "employees"))
	_, identitySpan := StartSpan(ctx, tracer, SpanIdentity)
	EndSpan(identitySpan, nil)
	upCtx, upstream := StartSpan(ctx, tracer, SpanUpstream)
	h := http.Header{}
	Inject(upCtx, h)
	EndSpan(upstream, errors.New("backend said 502"))
	EndSpan(root, nil)

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans exported, want 3", len(spans))
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	r := byName[SpanRequest]
	if r.Parent.IsValid() {
		t.Errorf("request span has a parent %v", r.Parent.SpanID())
	}
	for _, child := range []string{SpanIdentity, SpanUpstream} {
		c := byName[child]
		if c.Parent.SpanID() != r.SpanContext.SpanID() || c.SpanContext.TraceID() != r.SpanContext.TraceID() {
			t.Errorf("%s: parent %v trace %v, want parent %v trace %v", child,
				c.Parent.SpanID(), c.SpanContext.TraceID(), r.SpanContext.SpanID(), r.SpanContext.TraceID())
		}
	}
	if got := byName[SpanUpstream].Status; got.Code != codes.Error || got.Description != "backend said 502" {
		t.Errorf("upstream status = %+v, want Error with the message", got)
	}
	if got := r.Attributes; len(got) != 1 || got[0] != attribute.String("mcpgw.backend", "employees") {
		t.Errorf("request span attributes = %v", got)
	}

	up := byName[SpanUpstream].SpanContext
	want := fmt.Sprintf("00-%s-%s-01", up.TraceID(), up.SpanID())
	if got := h.Get("traceparent"); got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
	// The backend side reads back the same span context.
	back := trace.SpanContextFromContext(Extract(context.Background(), h))
	if back.TraceID() != up.TraceID() || back.SpanID() != up.SpanID() || !back.IsRemote() {
		t.Errorf("Extract = %v, want remote %v", back, up)
	}

	res := map[attribute.Key]string{}
	for _, kv := range r.Resource.Attributes() {
		res[kv.Key] = kv.Value.String()
	}
	if res["service.name"] != ServiceName || res["service.version"] != "v-test" {
		t.Errorf("resource service = %q %q", res["service.name"], res["service.version"])
	}
}

func TestBaggagePropagates(t *testing.T) {
	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	Inject(baggage.ContextWithBaggage(t.Context(), bag), h)
	if got := h.Get("baggage"); got != "tenant=acme" {
		t.Errorf("baggage header = %q", got)
	}
	if got := baggage.FromContext(Extract(t.Context(), h)).Member("tenant").Value(); got != "acme" {
		t.Errorf("extracted baggage tenant = %q", got)
	}
}

func TestSampler(t *testing.T) {
	const sampledParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tests := []struct {
		name        string
		ratio       float64
		traceparent string
		want        bool
	}{
		{"ratio 1 samples new traces", 1, "", true},
		{"ratio 0 samples nothing new", 0, "", false},
		// A client cannot make the gateway record by sending a sampled flag.
		{"ratio 0 overrides a client's sampled flag", 0, sampledParent, false},
		{"ratio 1 keeps the client's trace", 1, sampledParent, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exp, tracer := newInMemoryTracing(t, tc.ratio)
			ctx := t.Context()
			if tc.traceparent != "" {
				ctx = Extract(ctx, http.Header{"Traceparent": {tc.traceparent}})
			}
			ctx, root := StartSpan(ctx, tracer, SpanRequest)
			_, child := StartSpan(ctx, tracer, SpanPolicy)
			if got := root.SpanContext().IsSampled(); got != tc.want {
				t.Errorf("root sampled = %v, want %v", got, tc.want)
			}
			if child.SpanContext().IsSampled() != root.SpanContext().IsSampled() {
				t.Error("child did not follow its local parent's sampling")
			}
			if tc.traceparent != "" && !strings.Contains(tc.traceparent, root.SpanContext().TraceID().String()) {
				t.Errorf("trace id %v not continued from %s", root.SpanContext().TraceID(), tc.traceparent)
			}
			child.End()
			root.End()
			if n := len(exp.GetSpans()); (n == 2) != tc.want {
				t.Errorf("%d spans exported", n)
			}
		})
	}
}

func TestSetupTracingDisabled(t *testing.T) {
	tp, shutdown, err := SetupTracing(t.Context(), config.Telemetry{SampleRatio: 1}, "v1")
	if err != nil {
		t.Fatalf("SetupTracing: %v", err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	ctx, span := StartSpan(t.Context(), tp.Tracer(TracerName), SpanRequest)
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("disabled tracing produced a real span")
	}
	h := http.Header{}
	Inject(ctx, h)
	if len(h) != 0 {
		t.Errorf("Inject wrote %v without a span context", h)
	}
	// An incoming context still reaches the backend.
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx = Extract(t.Context(), http.Header{"Traceparent": {parent}})
	ctx, span = StartSpan(ctx, tp.Tracer(TracerName), SpanRequest)
	Inject(ctx, h)
	span.End()
	if got := h.Get("traceparent"); got != parent {
		t.Errorf("traceparent = %q, want the client's %q", got, parent)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// otlpReceiver is a loopback OTLP/HTTP endpoint that keeps what it receives.
type otlpReceiver struct {
	mu    sync.Mutex
	paths []string
	reqs  []*collectortrace.ExportTraceServiceRequest
	errs  []error
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := &collectortrace.ExportTraceServiceRequest{}
	if err == nil {
		err = proto.Unmarshal(body, req)
	}
	o.mu.Lock()
	o.paths = append(o.paths, r.URL.Path)
	if err != nil {
		o.errs = append(o.errs, err)
	} else {
		o.reqs = append(o.reqs, req)
	}
	o.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func TestSetupTracingExportsOverOTLP(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		wantPath string
	}{
		{"base URL gets the traces path", "", "/v1/traces"},
		{"full URL is kept", "/custom/v1/traces", "/custom/v1/traces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rcv := &otlpReceiver{}
			srv := httptest.NewServer(rcv)
			t.Cleanup(srv.Close)

			tp, shutdown, err := SetupTracing(t.Context(), config.Telemetry{OTLPEndpoint: srv.URL + tc.path, SampleRatio: 1}, "v1.2.3")
			if err != nil {
				t.Fatalf("SetupTracing: %v", err)
			}
			tracer := tp.Tracer(TracerName)
			ctx, root := StartSpan(t.Context(), tracer, SpanRequest)
			_, child := StartSpan(ctx, tracer, SpanPolicy)
			child.End()
			root.End()
			if err := shutdown(t.Context()); err != nil { // flushes the batch
				t.Fatalf("shutdown: %v", err)
			}

			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if len(rcv.errs) != 0 {
				t.Fatalf("receiver errors: %v", rcv.errs)
			}
			names := map[string][]byte{} // span name -> parent span id
			var service, version string
			for i, req := range rcv.reqs {
				if rcv.paths[i] != tc.wantPath {
					t.Errorf("export posted to %s, want %s", rcv.paths[i], tc.wantPath)
				}
				for _, rs := range req.GetResourceSpans() {
					for _, kv := range rs.GetResource().GetAttributes() {
						switch kv.GetKey() {
						case "service.name":
							service = kv.GetValue().GetStringValue()
						case "service.version":
							version = kv.GetValue().GetStringValue()
						}
					}
					for _, ss := range rs.GetScopeSpans() {
						for _, s := range ss.GetSpans() {
							names[s.GetName()] = s.GetParentSpanId()
						}
					}
				}
			}
			if service != ServiceName || version != "v1.2.3" {
				t.Errorf("resource = %q %q", service, version)
			}
			if len(names) != 2 {
				t.Fatalf("received spans %v, want %s and %s", names, SpanRequest, SpanPolicy)
			}
			if parent, sid := names[SpanPolicy], root.SpanContext().SpanID(); !bytes.Equal(parent, sid[:]) {
				t.Errorf("policy span parent %x, want %s", parent, root.SpanContext().SpanID())
			}
		})
	}
}

func TestSetupTracingRejectsBadEndpoints(t *testing.T) {
	tests := []struct {
		endpoint string
		want     string
	}{
		{"collector:4318", "scheme"},
		{"ftp://collector:4318", "scheme"},
		{"http://", "no host"},
		{"http://user:hunter2@collector:4318", "credentials"},
		{"http://collector:4318/v1/traces?x=1", "query"},
		{"http://%zz", "not a URL"},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint, func(t *testing.T) {
			_, _, err := SetupTracing(t.Context(), config.Telemetry{OTLPEndpoint: tc.endpoint, SampleRatio: 1}, "v1")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "telemetry.otlp_endpoint") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name the field and %q", msg, tc.want)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q leaks the URL's password", msg)
			}
		})
	}
}

func TestEndSpanRedactsErrors(t *testing.T) {
	exp, tracer := newInMemoryTracing(t, 1)
	_, span := StartSpan(t.Context(), tracer, SpanExchange)
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	EndSpan(span, fmt.Errorf("token endpoint rejected assertion %s", jwt))
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	if d := spans[0].Status.Description; strings.Contains(d, jwt) || !strings.Contains(d, Redacted) {
		t.Errorf("status description %q", d)
	}
	EndSpan(nil, errors.New("no span: no panic"))
}

func TestNilTracerAndHeaders(t *testing.T) {
	ctx, span := StartSpan(t.Context(), nil, SpanRequest)
	if span.IsRecording() {
		t.Error("nil tracer recorded")
	}
	span.End()
	Inject(ctx, nil)
	if got := Extract(ctx, nil); got != ctx {
		t.Error("Extract with nil header changed the context")
	}
}
