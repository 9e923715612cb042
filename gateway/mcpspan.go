package gateway

import (
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/telemetry"
)

// annotateSpan gives a request's span the name and attributes of the
// OpenTelemetry semantic conventions for MCP (semantic-conventions-genai
// v0.1.0, docs/gen-ai/mcp.md, status Development): the span of a server
// receiving one MCP message is named "{mcp.method.name} {target}" and
// carries mcp.method.name, jsonrpc.request.id, gen_ai.tool.name,
// mcp.session.id and error.type. A batch or a GET/DELETE has no one method,
// so its span keeps the gateway's own name. mcp.session.id is the hash the
// request log shows: the gateway's sealed session id is a credential, and
// a trace backend is not where credentials belong.
func (r *requestRecord) annotateSpan(span trace.Span, status int) {
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		attribute.String("network.transport", "tcp"),
		attribute.String("network.protocol.name", "http"),
	}
	if r.read && !r.batch && r.kind != mcp.KindResponse {
		name := r.method
		attrs = append(attrs, attribute.String("mcp.method.name", r.method))
		switch {
		case r.tool != "":
			name += " " + r.tool
			attrs = append(attrs, attribute.String("gen_ai.tool.name", r.tool), attribute.String("gen_ai.operation.name", "execute_tool"))
		case r.method == string(mcpgo.MethodPromptsGet) && r.target != "":
			name += " " + r.target
			attrs = append(attrs, attribute.String("gen_ai.prompt.name", r.target))
		case r.method == string(mcpgo.MethodResourcesRead) && r.target != "":
			// Not in the name: URIs are high-cardinality (the conventions say so too).
			attrs = append(attrs, attribute.String("mcp.resource.uri", r.target))
		}
		if r.rpcID != "" {
			attrs = append(attrs, attribute.String("jsonrpc.request.id", r.rpcID))
		}
		if r.protocolVersion != "" {
			attrs = append(attrs, attribute.String("mcp.protocol.version", r.protocolVersion))
		}
		span.SetName(name)
	}
	if r.sessionHash != "" {
		attrs = append(attrs, attribute.String("mcp.session.id", r.sessionHash))
	}
	if outcome := r.outcomeOf(status); outcome != telemetry.OutcomeOK {
		attrs = append(attrs, attribute.String("error.type", outcome))
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attrs...)
}
