package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/telemetry"
)

// Bounds on what one request log line carries: a batch may hold
// server.max_batch_messages members, and names are the caller's text.
const (
	maxLoggedNames     = 8
	maxLoggedDecisions = 16
	maxLoggedName      = 128
	maxLoggedReason    = 256
)

// requestRecord is what the steps of one MCP request learn about it, for the
// request log line and mcpgw_requests_total. handleMCP makes it and writes
// both when the request is answered, whichever step answered: refusals are
// not logged where they happen, so none can be missed.
type requestRecord struct {
	start      time.Time
	requestID  string
	httpMethod string
	path       string
	// sessionHash names the client's Mcp-Session-Id without showing it: the
	// sealed id is a credential the client presents.
	sessionHash string

	principal *identity.Principal
	agent     string
	backend   string

	// What the body held: one message's method and tools/call tool, or a
	// batch's size and its distinct methods and tools.
	read   bool
	batch  bool
	kind   mcp.Kind
	method string
	tool   string
	// target is params.name of prompts/get or params.uri of resources/read,
	// and rpcID the request's id: for the span's MCP attributes only.
	target          string
	rpcID           string
	protocolVersion string
	size            int
	methods         []string
	tools           []string
	moreTools       int

	decisions []string
	decided   int
	denied    int
	refused   int

	// outcome is set by the relay, which alone knows what the backend did;
	// other outcomes follow from the status and the counts above.
	outcome string
	stream  bool
	// reason overrides the one read from the answer (a backend's page,
	// which the client never sees).
	reason string
	// records are the decisions' records the policy engine left to the
	// gateway (policy.Options.CallerRecordsDecisions): written when the
	// request is answered, with its latency and outcome.
	records []*policy.Record
}

// answeredKey marks a request whose log line is written (c.Locals).
const answeredKey = "mcpgw.answered"

func newRequestRecord(c *fiber.Ctx) *requestRecord {
	// The server's clock for the request: it starts when the request was
	// read, before any middleware (unset for requests Fiber refuses itself).
	start := c.Context().Time()
	if start.IsZero() {
		start = time.Now()
	}
	r := &requestRecord{start: start, requestID: requestID(c), httpMethod: strings.Clone(c.Method()), path: string(c.Request().URI().PathOriginal())}
	if sid := c.Get(mcpgo.HeaderSessionID); sid != "" {
		sum := sha256.Sum256([]byte(sid))
		r.sessionHash = hex.EncodeToString(sum[:8])
	}
	return r
}

// messages notes what a POST's body held once it was read.
func (r *requestRecord) messages(msgs []mcp.Message, batch bool) {
	r.read, r.batch, r.size = true, batch, len(msgs)
	if !batch {
		m := &msgs[0]
		r.kind, r.method = m.Kind, truncate(m.Method, maxLoggedName)
		switch m.Method {
		case string(mcpgo.MethodToolsCall):
			r.tool = truncate(m.Target(), maxLoggedName)
		case string(mcpgo.MethodPromptsGet), string(mcpgo.MethodResourcesRead):
			r.target = truncate(m.Target(), maxLoggedName)
		}
		if m.Kind == mcp.KindRequest {
			r.rpcID = truncate(fmt.Sprint(m.ID.Value()), maxLoggedName)
		}
		return
	}
	for i := range msgs {
		if name := truncate(msgs[i].Method, maxLoggedName); name != "" && !slices.Contains(r.methods, name) && len(r.methods) < maxLoggedNames {
			r.methods = append(r.methods, name)
		}
		if msgs[i].Method != string(mcpgo.MethodToolsCall) {
			continue
		}
		switch tool := truncate(msgs[i].Target(), maxLoggedName); {
		case slices.Contains(r.tools, tool):
		case len(r.tools) < maxLoggedNames:
			r.tools = append(r.tools, tool)
		default:
			r.moreTools++
		}
	}
}

// decision notes one policy decision about the request.
func (r *requestRecord) decision(d policy.Decision) {
	if d.Record != nil {
		r.records = append(r.records, d.Record)
	}
	r.decided++
	if len(r.decisions) < maxLoggedDecisions {
		r.decisions = append(r.decisions, d.ID)
	}
	if !d.Allow {
		r.denied++
	}
}

// refusal notes a message refused before the policy, audited under
// decisionID.
func (r *requestRecord) refusal(decisionID string) {
	r.refused++
	r.decided++
	if len(r.decisions) < maxLoggedDecisions {
		r.decisions = append(r.decisions, decisionID)
	}
}

// methodLabel is the request's method label of mcpgw_requests_total.
func (r *requestRecord) methodLabel() string {
	switch {
	case r.httpMethod == fiber.MethodGet:
		return telemetry.MethodGET
	case r.httpMethod == fiber.MethodDelete:
		return telemetry.MethodDELETE
	case !r.read:
		return ""
	case r.batch:
		return telemetry.MethodBatch
	case r.kind == mcp.KindResponse:
		return telemetry.MethodResponse
	case telemetry.KnownMCPMethod(r.method):
		return r.method
	}
	return "other"
}

// outcomeOf says how a request that the relay did not settle ended.
func (r *requestRecord) outcomeOf(status int) string {
	switch {
	case r.outcome != "":
		return r.outcome
	case status == fiber.StatusUnauthorized:
		return telemetry.OutcomeUnauthenticated
	case status == fiber.StatusTooManyRequests:
		return telemetry.OutcomeRateLimited
	case status == fiber.StatusServiceUnavailable:
		return telemetry.OutcomeUnavailable
	case status == fiber.StatusBadGateway || status == fiber.StatusGatewayTimeout:
		return telemetry.OutcomeBackendError
	case status >= 500:
		return telemetry.OutcomeError
	case status == fiber.StatusNotFound:
		return telemetry.OutcomeNotFound
	case r.denied > 0:
		return telemetry.OutcomeDenied
	case status == fiber.StatusForbidden:
		return telemetry.OutcomeForbidden
	case status >= 400 || r.refused > 0:
		return telemetry.OutcomeInvalid
	}
	return telemetry.OutcomeOK
}

// answered writes the request log line and counts the request; status and
// elapsed are the answer's, err what the handler returned (the error
// handler then answers 500, or a fiber.Error's code).
func (g *Gateway) answered(c *fiber.Ctx, r *requestRecord, err error, panicked bool) {
	c.Locals(answeredKey, true)
	elapsed := time.Since(r.start)
	status := c.Response().StatusCode()
	var fe *fiber.Error
	switch {
	case panicked:
		status = fiber.StatusInternalServerError
	case errors.As(err, &fe):
		status = fe.Code
	case err != nil:
		status = fiber.StatusInternalServerError
	}
	if r.backend == "" {
		// Refused before routing (401, 429, a bad path): the backend the
		// path names, when one does, so that refusals are counted per
		// backend too.
		r.backend = g.backendOf(r.path)
	}
	outcome := r.outcomeOf(status)
	if g.opts.Observer != nil {
		g.opts.Observer.Request(r.backend, r.methodLabel(), outcome, elapsed)
	}
	g.recordDecisions(c, r, elapsed, outcome)
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs, slog.String("request_id", r.requestID), slog.String("http_method", r.httpMethod),
		slog.Int("status", status), slog.String("outcome", outcome), slog.Duration("duration", elapsed))
	if p := r.principal; p != nil {
		attrs = append(attrs, slog.String("subject", p.Subject), slog.String("issuer", p.Issuer))
	}
	attrs = appendNonEmpty(attrs, "agent", r.agent)
	attrs = appendNonEmpty(attrs, "backend", r.backend)
	if r.read {
		if r.batch {
			attrs = append(attrs, slog.String("mcp_method", telemetry.MethodBatch), slog.Int("batch_size", r.size), slog.Any("mcp_methods", r.methods))
			if len(r.tools) > 0 {
				attrs = append(attrs, slog.Any("tools", r.tools))
			}
			if r.moreTools > 0 {
				attrs = append(attrs, slog.Int("tools_not_logged", r.moreTools))
			}
		} else {
			method := r.method
			if r.kind == mcp.KindResponse {
				method = "(response)"
			}
			attrs = append(attrs, slog.String("mcp_method", method))
			attrs = appendNonEmpty(attrs, "tool", r.tool)
		}
	}
	if len(r.decisions) > 0 {
		attrs = append(attrs, slog.Any("decision_ids", r.decisions))
	}
	if n := r.decided - len(r.decisions); n > 0 {
		attrs = append(attrs, slog.Int("decision_ids_not_logged", n))
	}
	if r.denied > 0 {
		attrs = append(attrs, slog.Int("denied", r.denied))
	}
	attrs = appendNonEmpty(attrs, "session_hash", r.sessionHash)
	if r.stream {
		attrs = append(attrs, slog.Bool("stream", true))
	}
	reason := r.reason
	if reason == "" && !c.Response().IsBodyStream() && (status >= 400 || r.denied > 0 || r.refused > 0) {
		reason = answerReason(c.Response().Body())
	}
	attrs = appendNonEmpty(attrs, "reason", truncate(reason, maxLoggedReason))
	g.log.LogAttrs(c.UserContext(), slog.LevelInfo, "mcp request", attrs...)
}

// backendOf is the backend whose path prefix path falls under, or "".
func (g *Gateway) backendOf(path string) string {
	if rt, _ := g.topo.Load().match(path); rt != nil {
		return rt.backend.Name
	}
	return ""
}

// answeredByFiber logs and counts a request on a backend's path that Fiber
// refused before any handler ran (an oversized body): call it deferred from
// the error handler, once the answer is written.
func (g *Gateway) answeredByFiber(c *fiber.Ctx) {
	if c.Locals(answeredKey) != nil || g.backendOf(string(c.Request().URI().PathOriginal())) == "" {
		return
	}
	setRequestID(c)
	g.answered(c, newRequestRecord(c), nil, false)
}

// decisionRecorder is the policy engine's side of CallerRecordsDecisions.
type decisionRecorder interface {
	Record(ctx context.Context, r policy.Record)
}

// recordDecisions writes the request's decision records now that its
// latency and outcome are known: every decision is recorded, whichever
// step answered.
func (g *Gateway) recordDecisions(c *fiber.Ctx, r *requestRecord, elapsed time.Duration, outcome string) {
	if len(r.records) == 0 {
		return
	}
	rec, ok := g.opts.Authorizer.(decisionRecorder)
	if !ok {
		g.log.Error("the authorizer returned decision records but cannot record them; they are lost", "request_id", r.requestID, "records", len(r.records))
		return
	}
	ctx := context.WithoutCancel(c.UserContext())
	for _, d := range r.records {
		d.Latency, d.Outcome = elapsed, outcome
		rec.Record(ctx, *d)
	}
	r.records = nil
}

func appendNonEmpty(attrs []slog.Attr, key, value string) []slog.Attr {
	if value == "" {
		return attrs
	}
	return append(attrs, slog.String(key, value))
}

// maxReasonBody bounds the answer read for its reason: the gateway's own
// refusals are small, and a large body is a backend's result.
const maxReasonBody = 64 << 10

// answerReason is what an answer the client got says went wrong: an OAuth
// error's description, or the first JSON-RPC error's message.
func answerReason(body []byte) string {
	if len(body) == 0 || len(body) > maxReasonBody {
		return ""
	}
	type answer struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
	}
	var answers []answer
	if body[0] == '[' {
		if json.Unmarshal(body, &answers) != nil {
			return ""
		}
	} else {
		var one answer
		if json.Unmarshal(body, &one) != nil {
			return ""
		}
		answers = []answer{one}
	}
	for _, a := range answers {
		if a.Description != "" {
			return a.Description
		}
		var rpc struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(a.Error, &rpc) == nil && rpc.Message != "" {
			return rpc.Message
		}
	}
	return ""
}
