package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// TracerName names the gateway's tracer: tp.Tracer(TracerName).
const TracerName = "github.com/mcpgw/mcpgw"

// ServiceName is the service.name of every exported span unless
// OTEL_SERVICE_NAME says otherwise.
const ServiceName = "mcpgw"

// Span names of the request path: one SpanRequest per request with the
// others as its children.
const (
	SpanRequest  = "mcpgw.request"
	SpanIdentity = "mcpgw.identity"
	SpanPolicy   = "mcpgw.policy"
	SpanExchange = "mcpgw.exchange"
	SpanUpstream = "mcpgw.upstream"
)

// otlpTracesPath is where OTLP/HTTP receivers take traces.
const otlpTracesPath = "/v1/traces"

// SetupTracing returns the gateway's tracer provider and the function that
// flushes and stops it. Without cfg.OTLPEndpoint it is a no-op provider:
// spans cost nothing and incoming trace context still passes through. With
// it, spans are batched to that OTLP/HTTP endpoint; an endpoint without a
// path gets /v1/traces, as OTEL_EXPORTER_OTLP_ENDPOINT does. The exporter
// also honours the OTEL_EXPORTER_OTLP_* variables the endpoint does not set
// (e.g. OTEL_EXPORTER_OTLP_HEADERS for a collector's credentials).
//
// No otel global is set: propagate with Inject and Extract.
func SetupTracing(ctx context.Context, cfg config.Telemetry, serviceVersion string) (trace.TracerProvider, func(context.Context) error, error) {
	if strings.TrimSpace(cfg.OTLPEndpoint) == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	endpoint, err := otlpTracesURL(cfg.OTLPEndpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry.otlp_endpoint: %w", err)
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("create OTLP trace exporter for %s: %w", endpoint, err)
	}
	tp, err := newTracerProvider(ctx, sdktrace.WithBatcher(exporter), cfg.SampleRatio, serviceVersion)
	if err != nil {
		return nil, nil, errors.Join(err, exporter.Shutdown(ctx))
	}
	return tp, tp.Shutdown, nil
}

// otlpTracesURL checks the configured endpoint and returns the URL to post
// to. It never echoes the endpoint: it may carry credentials.
func otlpTracesURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("has no host")
	}
	// The exporter would silently drop these: say so instead.
	if u.User != nil {
		return "", errors.New("credentials in the URL are not sent; set OTEL_EXPORTER_OTLP_HEADERS")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("query and fragment are not supported")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = otlpTracesPath
	}
	return u.String(), nil
}

// newTracerProvider builds the SDK provider around a span processor option
// (a batcher in production, a syncer in tests).
func newTracerProvider(ctx context.Context, processor sdktrace.TracerProviderOption, ratio float64, serviceVersion string) (*sdktrace.TracerProvider, error) {
	// Attributes first so that OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override them.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName), semconv.ServiceVersion(serviceVersion)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("build trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(processor, sdktrace.WithResource(res), sdktrace.WithSampler(newSampler(ratio))), nil
}

// newSampler samples new traces at ratio and follows a parent span of this
// process. A remote parent's sampled flag comes from the client, which is
// not trusted to decide how much the gateway records: the ratio applies to
// it too, on the client's trace id, so the trace stays connected.
func newSampler(ratio float64) sdktrace.Sampler {
	root := sdktrace.TraceIDRatioBased(ratio)
	return sdktrace.ParentBased(root,
		sdktrace.WithRemoteParentSampled(root),
		sdktrace.WithRemoteParentNotSampled(root),
	)
}

// Propagator is the W3C trace-context and baggage propagator the gateway
// uses towards clients and backends.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Inject writes ctx's span context (traceparent, tracestate) and baggage
// into h, e.g. the headers of a request to a backend. It sets nothing when
// ctx holds no valid span context.
func Inject(ctx context.Context, h http.Header) {
	if h == nil {
		return
	}
	Propagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns ctx with the remote span context and baggage that h
// carries, e.g. from a client's request; invalid headers are ignored.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h == nil {
		return ctx
	}
	return Propagator().Extract(ctx, propagation.HeaderCarrier(h))
}

// TraceCarrier is ctx's trace context as W3C keys (traceparent,
// tracestate, baggage), for MCP's params._meta; nil when ctx carries no
// valid span (tracing off), so nothing is written into messages then.
func TraceCarrier(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	carrier := propagation.MapCarrier{}
	Propagator().Inject(ctx, carrier)
	return carrier
}

// StartSpan starts a span named name as a child of ctx's span. A nil tracer
// starts a non-recording span.
func StartSpan(ctx context.Context, tracer trace.Tracer, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer(TracerName)
	}
	return tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// EndSpan ends span, marking it failed with err's text when err is not nil.
// The text passes the log redactor first: spans leave the process too.
func EndSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, secrets.Scrub(err.Error()))
	}
	span.End()
}
