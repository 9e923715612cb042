package gateway

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/telemetry"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// traceHeaders reads the W3C trace context a client sent; nil when it sent
// none (telemetry.Extract then leaves the context as it is, as the
// propagators do with an empty carrier).
func traceHeaders(c *fiber.Ctx) http.Header {
	var h http.Header
	for _, name := range [...]string{"Traceparent", "Tracestate", "Baggage"} {
		if v := c.Get(name); v != "" {
			if h == nil {
				h = make(http.Header, 3)
			}
			// Copied: the span context keeps tracestate and baggage.
			h[name] = []string{strings.Clone(v)}
		}
	}
	return h
}

// call is one MCP HTTP request after the transport checks passed.
type call struct {
	route      *route
	rest       string
	agent      config.Agent
	principal  *identity.Principal
	token      string
	session    upstream.Session
	hasSession bool
	sessionID  string
	requestID  string
	// oauth, when the caller's token is the gateway's own, finds the IdP's
	// ID token of the login for Cross App Access.
	oauth OAuthFacade
	// elicits: the initialize this request carries declares the
	// elicitation capability (sealed into the session it opens).
	elicits bool
	// rec collects what the request log line and the request metric say.
	rec *requestRecord
	// hints are the Mcp-Method/Mcp-Name/Mcp-Param-* headers the backend
	// gets: derived from the one message forwarded (hints.go), never the
	// client's own.
	hints http.Header
	// base is the policy input common to every message of the request.
	base policy.Input
}

func (cl *call) caller() upstream.Caller {
	c := upstream.Caller{Principal: cl.principal, Token: cl.token, Agent: cl.agent, Backend: cl.route.backend}
	if cl.principal.Via != "" && cl.oauth != nil {
		o, p := cl.oauth, cl.principal
		c.IDToken = func(ctx context.Context) (string, error) { return o.LoginIDToken(ctx, p) }
	}
	return c
}

// subjectKey names the caller across issuers, for session binding.
func subjectKey(p *identity.Principal) string { return p.Issuer + " " + p.Subject }

// handleMCP is where every MCP request is answered, whichever step answers
// it: each is logged and counted here, once, with what the steps recorded.
func (g *Gateway) handleMCP(c *fiber.Ctx) error {
	rec := newRequestRecord(c)
	panicked := true
	var err error
	defer func() { g.answered(c, rec, err, panicked) }()
	err = g.serveMCP(c, rec)
	panicked = false
	return err
}

// serveMCP is the request path of ARCHITECTURE.md: admit the request,
// then, by method, read and decide its messages (post) or decide the stream
// or close (get, delete), obtain the backend's credential and relay. Every
// refusal is a rejection answered by reject; handleMCP records the outcome.
func (g *Gateway) serveMCP(c *fiber.Ctx, rec *requestRecord) error {
	if served, err := g.oauthMetadata(c); served {
		return err
	}
	if r := g.sameSite(c); r != nil {
		return g.reject(c, r)
	}
	if g.corsMCP(c) {
		return nil
	}
	// Fiber's strings point into buffers the next request reuses (the
	// pooled Ctx, fasthttp's header buffer). What outlives the handler (span
	// attributes exported later, the call an SSE writer reads, the policy
	// input OPA's decision log encodes later) is copied here and in the
	// steps, where it is read: never a Fiber string itself.
	method := strings.Clone(c.Method())
	ctx, span := telemetry.StartSpan(telemetry.Extract(c.UserContext(), traceHeaders(c)), g.opts.Tracer, telemetry.SpanRequest,
		attribute.String("http.request.method", method), attribute.String("url.path", strings.Clone(c.Path())))
	defer func() {
		rec.annotateSpan(span, c.Response().StatusCode())
		span.End()
	}()
	c.SetUserContext(ctx)
	cl, r := g.admit(c, rec, method, span)
	if r != nil {
		return g.reject(c, r)
	}
	switch method {
	case fiber.MethodPost:
		return g.post(c, cl)
	case fiber.MethodGet:
		return g.get(c, cl)
	case fiber.MethodDelete:
		return g.delete(c, cl)
	}
	return g.reject(c, &rejection{form: formRPC, status: fiber.StatusMethodNotAllowed, rpc: mcpgo.INVALID_REQUEST,
		msg: "method not allowed: use POST, GET or DELETE", headers: map[string]string{fiber.HeaderAllow: "GET, POST, DELETE"}})
}

// admit is the first step of every MCP request, in this order: who calls
// (identity), within which budget (rate limits, before any other work),
// to which backend (the raw path, then the route; a gateway token only at
// its own resource), through which agent and within its hard boundary
// (enabled flags, backend_access), in which session. It returns the call
// with the policy input every message shares, or the refusal.
func (g *Gateway) admit(c *fiber.Ctx, rec *requestRecord, method string, span trace.Span) (*call, *rejection) {
	p, token, r := g.authenticate(c)
	if r != nil {
		return nil, r
	}
	rec.principal = p
	span.SetAttributes(attribute.String("enduser.id", p.Subject))
	if r := g.chargeRequest(c, p, rec.requestID); r != nil {
		return nil, r
	}
	path := string(c.Request().URI().PathOriginal())
	route, rest, r := g.routeFor(c, rec, p, method, path)
	if r != nil {
		return nil, r
	}
	topo := g.topo.Load()
	agent, r := g.agentWithin(c, rec, topo, route, p)
	if r != nil {
		return nil, r
	}
	span.SetAttributes(attribute.String("mcpgw.backend", route.backend.Name), attribute.String("mcpgw.agent", agent.ID()))
	cl := &call{route: route, rest: rest, agent: agent, principal: p, token: token, requestID: rec.requestID, rec: rec, oauth: g.oauth}
	if r := g.joinSession(c, cl); r != nil {
		return nil, r
	}
	cl.base = policy.Input{
		Version: policy.InputVersion,
		Token: policy.TokenInput{
			Sub: p.Subject, Iss: p.Issuer, Aud: p.Audience, ClientID: p.ClientID,
			Scopes: p.Scopes, Groups: p.Groups, Claims: p.Claims, Via: p.Via,
		},
		Agent: policy.AgentInput{
			ID: agent.ID(), ClientID: agent.ClientID, Enabled: agent.IsEnabled(),
			Issuer: topo.agentIssuer(agent), AllowClientlessTokens: agent.AllowClientlessTokens,
			Scopes: agent.Scopes, BackendAccess: agent.BackendAccess,
		},
		Backend: policy.BackendInput{Name: route.backend.Name, AuthType: route.backend.AuthMethod, Labels: route.backend.Labels, ToolIntegrity: route.backend.IntegrityMode()},
		HTTP:    policy.HTTPInput{Method: method, Path: path, RemoteAddr: strings.Clone(c.IP())},
	}
	return cl, nil
}

// routeFor checks the raw path (a refusal is audited) and finds its
// backend: the longest configured prefix, a path below it only with
// forward_subpaths. A token of the gateway's own authorization server is
// taken only at the resource it was issued for.
func (g *Gateway) routeFor(c *fiber.Ctx, rec *requestRecord, p *identity.Principal, method, path string) (*route, string, *rejection) {
	if err := checkRequestPath(path); err != nil {
		g.recordRefusal(c.UserContext(), refusal{rec: rec, principal: p, requestID: rec.requestID, method: method, reason: err.Error()})
		return nil, "", oauthRefusal(fiber.StatusBadRequest, "invalid_request", err.Error())
	}
	r, rest := g.topo.Load().match(path)
	if r == nil {
		return nil, "", oauthRefusal(fiber.StatusNotFound, "not_found", "no backend serves path "+path)
	}
	rec.backend = r.backend.Name
	if !g.gatewayTokenAudience(p, r) {
		return nil, "", challengeRefusal(g.resourceMetadataURL(path), "the token was issued for another resource of this gateway (aud)")
	}
	if rest != "" && rest != "/" && !r.backend.ForwardSubpaths {
		return nil, "", oauthRefusal(fiber.StatusNotFound, "not_found", fmt.Sprintf("backend %s serves %s only, not paths below it (backends.%s.forward_subpaths)", r.backend.Name, r.prefix, r.backend.Name))
	}
	if !r.backend.ForwardSubpaths {
		rest = ""
	}
	return r, rest, nil
}

// agentWithin resolves the calling agent (agentheader.go, topology.go) and
// holds it to the hard boundary the policy cannot widen: the agent and the
// backend enabled, the backend in the agent's backend_access.
func (g *Gateway) agentWithin(c *fiber.Ctx, rec *requestRecord, topo *topology, r *route, p *identity.Principal) (config.Agent, *rejection) {
	agentID, header, err := agentHeader(c)
	// The agent asked for, until the one that takes the token is known.
	rec.agent = truncate(agentID, maxLoggedName)
	if err != nil {
		return config.Agent{}, oauthRefusal(fiber.StatusBadRequest, "invalid_request", err.Error())
	}
	agent, err := topo.agentFor(agentID, header, p)
	if err != nil {
		return config.Agent{}, oauthRefusal(fiber.StatusForbidden, "access_denied", err.Error())
	}
	rec.agent = agent.ID()
	switch {
	case !agent.IsEnabled():
		return agent, oauthRefusal(fiber.StatusForbidden, "access_denied", fmt.Sprintf("agent %q is disabled", agent.ID()))
	case !r.backend.IsEnabled():
		return agent, scopeRefusal("", fmt.Sprintf("backend %s is disabled", r.backend.Name), "")
	case !hasAccess(agent, r.backend.Name):
		return agent, scopeRefusal("", fmt.Sprintf("agent %q has no access to backend %s (backend_access)", agent.ID(), r.backend.Name), "")
	}
	return agent, nil
}

// joinSession opens the request's sealed Mcp-Session-Id, if it has one: it
// must belong to this subject, agent and backend and be alive (session.go).
func (g *Gateway) joinSession(c *fiber.Ctx, cl *call) *rejection {
	id := c.Get(mcpgo.HeaderSessionID)
	if id == "" {
		return nil
	}
	s, ok := g.openSession(id, cl.route.backend.Name, subjectKey(cl.principal), cl.agent.ID())
	if !ok {
		return rpcRefusal(fiber.StatusNotFound, nil, mcpgo.INVALID_REQUEST, "unknown or expired session (Mcp-Session-Id): start a new one with initialize")
	}
	cl.session, cl.hasSession, cl.sessionID = s, true, strings.Clone(id)
	return nil
}

func mediaType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// accepts reports whether an Accept header admits mediaType: the most
// specific range that names it (type/subtype, then type/*, then */*)
// decides, and q=0 there says the client cannot take it (RFC 9110
// §12.4.2). Other q-values are not weighed: this refuses clients that
// cannot read the answer; it is not content negotiation.
func accepts(header, mediaType string) bool {
	major, _, _ := strings.Cut(mediaType, "/")
	best, accepted := 0, false
	for _, part := range strings.Split(header, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		rank := 0
		switch mt {
		case mediaType:
			rank = 3
		case major + "/*":
			rank = 2
		case "*/*":
			rank = 1
		}
		if rank > best {
			best, accepted = rank, !zeroQuality(params)
		}
	}
	return accepted
}

// zeroQuality reports a media range's parameters saying q=0.
func zeroQuality(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
				return true
			}
		}
	}
	return false
}

// input is the policy input for one message: everything in it is read from
// the message exactly as it will be forwarded.
func (g *Gateway) input(cl *call, m *mcp.Message, version string) policy.Input {
	in := cl.base
	in.MCP = policy.MCPInput{Kind: m.Kind.String(), Method: m.Method, Tool: m.Target(), Arguments: m.Arguments(), ProtocolVersion: version}
	return in
}

// sessionInput is the policy input of a GET stream or a DELETE, which carry
// no JSON-RPC message but reach the backend all the same.
func (g *Gateway) sessionInput(cl *call, kind, method string) policy.Input {
	in := cl.base
	in.MCP = policy.MCPInput{Kind: kind, Method: method}
	return in
}

// checkCall reads what a tools/call needs besides the policy: the called
// tool's catalog entry (its definition and, with tool integrity on, its
// classification go into the input; its input schema is returned for the
// Mcp-Param-* headers) and, against its input schema,
// argument names a case-insensitive server would read as another property.
// A refusal is returned as a JSON-RPC error; tool is nil for other methods.
func (g *Gateway) checkCall(ctx context.Context, cl *call, m *mcp.Message, in *policy.Input) (tool *mcpgo.Tool, rerr *mcp.Error) {
	if m.Method == string(mcpgo.MethodPromptsGet) {
		if p := g.promptIntegrity(ctx, cl, m.Target()); p != nil {
			in.Prompts = []policy.Prompt{*p}
		}
		return nil, nil
	}
	if m.Method != string(mcpgo.MethodToolsCall) {
		return nil, nil
	}
	name := m.Target()
	entry, err := g.toolFor(ctx, cl, name)
	if errors.Is(err, errToolNotListed) {
		return nil, &mcp.Error{Code: mcpgo.INVALID_PARAMS, Message: "invalid params: " + err.Error(), Status: fiber.StatusOK}
	}
	if err != nil {
		g.log.Warn("could not list the backend's tools to decide a call", "request_id", cl.requestID, "backend", cl.route.backend.Name, "err", secrets.Error(err))
		return nil, &mcp.Error{Code: mcp.CodeBackend, Message: fmt.Sprintf("backend %s: could not read its tool list to decide the call", cl.route.backend.Name), Status: fiber.StatusBadGateway}
	}
	if args, ok := m.ArgumentsValue(); ok {
		if err := checkArgumentNames(entry.schema, args, "arguments"); err != nil {
			return nil, &mcp.Error{Code: mcpgo.INVALID_PARAMS, Message: "invalid params: " + err.Error(), Status: fiber.StatusOK}
		}
	}
	var integ *policy.Integrity
	if r := g.classify(ctx, cl, mcp.ListTools, []mcp.ListItem{entry.item}); r != nil {
		integ = integrityInput(r[0])
	}
	in.Tools = []policy.Tool{entry.input(integ)}
	return hintTool(m, entry), nil
}

func (g *Gateway) post(c *fiber.Ctx, cl *call) error {
	if mediaType(c.Get(fiber.HeaderContentType)) != fiber.MIMEApplicationJSON {
		return g.reject(c, rpcRefusal(fiber.StatusUnsupportedMediaType, nil, mcpgo.INVALID_REQUEST, "Content-Type must be application/json"))
	}
	if accept := c.Get(fiber.HeaderAccept); !accepts(accept, "application/json") || !accepts(accept, "text/event-stream") {
		return g.reject(c, rpcRefusal(fiber.StatusNotAcceptable, nil, mcpgo.INVALID_REQUEST, "Accept header must list both application/json and text/event-stream"))
	}
	ctx := c.UserContext()
	msgs, batch, perr := mcp.ParseBody(c.Body(), g.server.MaxBatchMessages)
	if perr != nil {
		g.recordRefusal(ctx, cl.refusal(fiber.MethodPost, "", perr.Message))
		return g.reject(c, rpcRefusal(perr.Status, perr.ID, perr.Code, perr.Message))
	}
	cl.rec.messages(msgs, batch)
	// Answers to the gateway's own questions (confirm obligations) end
	// here: they are the person's, not the backend's to see.
	if cl.hasSession {
		if msgs = g.takeConfirmAnswers(ctx, cl, msgs); len(msgs) == 0 {
			return c.SendStatus(fiber.StatusAccepted)
		}
	}
	if !batch && msgs[0].Kind == mcp.KindRequest {
		cl.elicits = msgs[0].DeclaresCapability("elicitation")
	}
	// Trace context goes into params._meta now, before anything is decided,
	// so the reading the policy sees is the one the backend gets.
	if carrier := telemetry.TraceCarrier(ctx); carrier != nil {
		for i := range msgs {
			msgs[i].SetTraceMeta(carrier)
		}
	}
	// Each batch member counts as a request, each initialize as a session.
	if r := g.chargeMessages(c, cl, msgs, batch); r != nil {
		return g.reject(c, r)
	}
	// Copied: it goes into the policy input and the request record.
	version := strings.Clone(c.Get(mcpgo.HeaderProtocolVersion))
	if version != "" && !mcpgo.IsValidProtocolVersion(version) {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, fmt.Sprintf("unsupported MCP-Protocol-Version %q", version)))
	}
	if batch && version != "" && version != mcpgo.ProtocolVersion20250326 {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, "JSON-RPC batches are only allowed in protocol revision 2025-03-26"))
	}
	effective := version
	if effective == "" {
		// The spec: without the header, assume 2025-03-26 (initialize names its own).
		effective = mcpgo.ProtocolVersion20250326
		if !batch && msgs[0].Method == string(mcpgo.MethodInitialize) {
			effective = msgs[0].ProtocolVersion()
		}
	}
	cl.rec.protocolVersion = truncate(effective, maxLoggedName)
	// Hint headers are checked whatever the revision (hints.go).
	hints := readHints(c)
	if err := hints.check(version, batch, &msgs[0]); err != nil {
		var id *mcpgo.RequestId
		if !batch {
			id = &msgs[0].ID
		}
		g.recordRefusal(ctx, cl.refusal(msgs[0].Method, msgs[0].Target(), err.Error()))
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, id, mcpgo.INVALID_REQUEST, err.Error()))
	}

	ctx, policySpan := telemetry.StartSpan(ctx, g.opts.Tracer, telemetry.SpanPolicy)
	pending := requests{}
	var denied [][]byte
	forward := make([][]byte, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		in := g.input(cl, m, effective)
		tool, rerr := g.checkCall(ctx, cl, m, &in)
		if rerr == nil && tool != nil {
			// Batches carry no hints (refused above): only a lone tools/call
			// gets here with any.
			if err := hints.checkParams(version, m, tool); err != nil {
				g.recordRefusal(ctx, cl.refusal(m.Method, m.Target(), err.Error()))
				policySpan.End()
				return g.reject(c, rpcRefusal(fiber.StatusBadRequest, &m.ID, mcpgo.INVALID_REQUEST, err.Error()))
			}
		}
		if !batch {
			cl.hints = derivedHints(version, m, tool)
		}
		if rerr != nil {
			g.recordRefusal(ctx, cl.refusal(m.Method, m.Target(), rerr.Message))
			if !batch && rerr.Status != fiber.StatusOK {
				policySpan.End()
				return g.reject(c, rpcRefusal(rerr.Status, &m.ID, rerr.Code, rerr.Message))
			}
			if m.Kind == mcp.KindRequest {
				denied = append(denied, mcp.ErrorResponse(m.ID, rerr.Code, rerr.Message, nil))
			}
			continue
		}
		d := g.decide(ctx, cl, &in)
		if !d.Allow {
			reasons := strings.Join(d.Reasons, "; ")
			if d.Status == fiber.StatusForbidden {
				policySpan.End()
				return g.reject(c, scopeRefusal(d.Scope, reasons, d.ID))
			}
			if m.Kind == mcp.KindRequest {
				denied = append(denied, mcp.ErrorResponse(m.ID, mcp.CodeForbidden, "forbidden by policy: "+reasons,
					map[string]any{"decision_id": d.ID, "reasons": d.Reasons}))
			}
			continue
		}
		// The policy's rate limit counts the call now; a call over it is
		// answered like a denial, the others go on.
		if r := g.obligedRateLimit(ctx, cl, m, d); r != nil {
			if !batch {
				policySpan.End()
				return g.reject(c, r)
			}
			if m.Kind == mcp.KindRequest {
				denied = append(denied, mcp.ErrorResponse(m.ID, r.rpc, r.msg, r.data))
			}
			continue
		}
		if d.Obligations != nil && d.Obligations.Confirm != nil {
			if r := g.confirmable(cl, m, batch); r != nil {
				if !batch {
					policySpan.End()
					return g.reject(c, r)
				}
				if m.Kind == mcp.KindRequest {
					denied = append(denied, mcp.ErrorResponse(m.ID, r.rpc, r.msg, r.data))
				}
				continue
			}
			policySpan.End()
			pending[m.IDKey] = request{method: m.Method, id: m.ID, redact: d.Obligations.Redaction()}
			return g.confirmThenRelay(c, cl, m, d, m.Encode(), pending)
		}
		if m.Kind == mcp.KindRequest {
			pending[m.IDKey] = request{method: m.Method, id: m.ID, redact: d.Obligations.Redaction()}
		}
		// What is forwarded is the encoding of what was decided, never the
		// bytes that came in.
		forward = append(forward, m.Encode())
	}
	policySpan.End()
	if len(forward) == 0 {
		if len(denied) == 0 {
			return c.SendStatus(fiber.StatusAccepted)
		}
		return sendJSON(c, fiber.StatusOK, mcp.EncodeMessages(denied, batch))
	}
	// A lone survivor of a batch goes alone: backends of later revisions
	// reject arrays, and the reply is re-wrapped with the denials anyway.
	body := mcp.EncodeMessages(forward, batch && (len(forward) > 1 || len(forward) == len(msgs)))
	return g.relay(c, cl, &forwarded{method: http.MethodPost, body: body, pending: pending, denied: denied, batch: batch})
}

func sendJSON(c *fiber.Ctx, status int, body []byte) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(status).Send(body)
}

func (g *Gateway) get(c *fiber.Ctx, cl *call) error {
	if !accepts(c.Get(fiber.HeaderAccept), "text/event-stream") {
		return g.reject(c, rpcRefusal(fiber.StatusNotAcceptable, nil, mcpgo.INVALID_REQUEST, "Accept header must list text/event-stream"))
	}
	if allowed, err := g.decideSession(c, cl, policy.KindStream, fiber.MethodGet); !allowed {
		return err
	}
	return g.relay(c, cl, &forwarded{method: http.MethodGet})
}

func (g *Gateway) delete(c *fiber.Ctx, cl *call) error {
	if allowed, err := g.decideSession(c, cl, policy.KindClose, fiber.MethodDelete); !allowed {
		return err
	}
	return g.relay(c, cl, &forwarded{method: http.MethodDelete})
}

// decideSession asks the policy about a GET stream or a DELETE and answers
// 403 when it denies.
func (g *Gateway) decideSession(c *fiber.Ctx, cl *call, kind, method string) (bool, error) {
	in := g.sessionInput(cl, kind, method)
	ctx, span := telemetry.StartSpan(c.UserContext(), g.opts.Tracer, telemetry.SpanPolicy)
	d := g.decide(ctx, cl, &in)
	span.End()
	if d.Allow {
		return true, nil
	}
	reasons := strings.Join(d.Reasons, "; ")
	if d.Status == fiber.StatusForbidden && d.Scope != "" {
		return false, g.reject(c, scopeRefusal(d.Scope, reasons, d.ID))
	}
	r := oauthRefusal(fiber.StatusForbidden, "access_denied", "forbidden by policy: "+reasons)
	r.decisionID = d.ID
	return false, g.reject(c, r)
}

// decide asks the policy about one message, GET or DELETE of cl.
func (g *Gateway) decide(ctx context.Context, cl *call, in *policy.Input) policy.Decision {
	d := g.opts.Authorizer.Decide(ctx, in)
	cl.rec.decision(d)
	return d
}

// forwardedHeaders are the client headers a backend may see. Authorization
// is never among them: MCP forbids passing the client's token through. Nor
// are the client's Mcp-Method, Mcp-Name and Mcp-Param-* hints: the backend
// gets cl.hints, derived from what was decided (hints.go).
var forwardedHeaders = [...]string{
	fiber.HeaderContentType, fiber.HeaderAccept, fiber.HeaderUserAgent,
	mcpgo.HeaderProtocolVersion, mcpgo.HeaderLastEventID,
}

// forwardedKeys are forwardedHeaders in canonical form, as http.Header.Set
// would store them.
var forwardedKeys = func() []string {
	keys := make([]string, len(forwardedHeaders))
	for i, name := range forwardedHeaders {
		keys[i] = textproto.CanonicalMIMEHeaderKey(name)
	}
	return keys
}()

var (
	sessionIDKey = textproto.CanonicalMIMEHeaderKey(mcpgo.HeaderSessionID)
	requestIDKey = textproto.CanonicalMIMEHeaderKey(fiber.HeaderXRequestID)
)

func (g *Gateway) upstreamHeaders(c *fiber.Ctx, cl *call) http.Header {
	// What http.Header.Set would build, in fewer allocations: the values
	// share one backing array (each capped, so an append copies), and the
	// client's values are copied into one string.
	h := make(http.Header, len(forwardedKeys)+len(cl.hints)+4)
	values := make([]string, 0, len(forwardedKeys)+2)
	set := func(key, v string) {
		values = append(values, v)
		n := len(values)
		h[key] = values[n-1 : n : n]
	}
	var vals [len(forwardedHeaders)]string
	size := 0
	for i, name := range forwardedHeaders {
		vals[i] = c.Get(name)
		size += len(vals[i])
	}
	// Copied: the upstream request outlives the handler when the answer
	// streams, and fasthttp reuses the request's buffers.
	buf := make([]byte, 0, size)
	for i := range forwardedHeaders {
		buf = append(buf, vals[i]...)
	}
	copied := string(buf)
	for i, key := range forwardedKeys {
		if n := len(vals[i]); n > 0 {
			set(key, copied[:n])
			copied = copied[n:]
		}
	}
	for name, values := range cl.hints {
		h[name] = values
	}
	if cl.hasSession {
		set(sessionIDKey, cl.session.Upstream)
	}
	set(requestIDKey, cl.requestID)
	return h
}

// forwarded is what one request sends to its backend, and what the answer
// must account for.
type forwarded struct {
	method string // HTTP: POST, GET or DELETE
	body   []byte // the canonical encoding of the allowed messages (POST)
	// pending are the forwarded requests awaiting an answer, by id key.
	pending requests
	// denied are the errors of batch members the gateway refused itself:
	// they join whatever the backend answers.
	denied [][]byte
	batch  bool // the client sent a batch: the answer is an array
}

// relay sends the request on and hands the response back: JSON whole, SSE
// event by event, both with list results filtered.
func (g *Gateway) relay(c *fiber.Ctx, cl *call, fw *forwarded) error {
	start := time.Now()
	r := cl.route
	// fasthttp does not cancel a request's context when the client leaves,
	// so the relay owns its context and cancels it when writing fails; it
	// keeps only the trace of the request's.
	ctx, cancel := context.WithCancel(trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(c.UserContext())))
	streaming := false
	defer func() {
		if !streaming {
			cancel()
		}
	}()
	upCtx, upSpan := telemetry.StartSpan(ctx, g.opts.Tracer, telemetry.SpanUpstream, attribute.String("mcpgw.backend", r.backend.Name))
	header := g.upstreamHeaders(c, cl)
	telemetry.Inject(upCtx, header)
	resp, err := g.client.Send(upCtx, r.injector, cl.caller(), upstream.Request{
		Method: fw.method, URL: r.forwardURL(cl.rest), Header: header, Body: fw.body, Timeout: r.backend.Timeout(),
	})
	telemetry.EndSpan(upSpan, err)
	if g.opts.Observer != nil {
		g.opts.Observer.Upstream(r.backend.Name, time.Since(start))
	}
	if err != nil {
		return g.backendFailure(c, cl, err, fw)
	}
	if sid := resp.Header.Get(mcpgo.HeaderSessionID); sid != "" {
		if cl.hasSession && sid == cl.session.Upstream {
			c.Set(mcpgo.HeaderSessionID, cl.sessionID)
		} else {
			sealed, err := g.sealSession(r.backend.Name, subjectKey(cl.principal), cl.agent.ID(), sid, cl.elicits)
			if err != nil {
				resp.Body.Close()
				return fmt.Errorf("seal session for backend %s: %w", r.backend.Name, err)
			}
			c.Set(mcpgo.HeaderSessionID, sealed)
		}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		resp.Body.Close()
		cl.rec.outcome = telemetry.OutcomeBackendRefused
		msg := fmt.Sprintf("backend %s refused the gateway's credential (HTTP %d)", r.backend.Name, resp.StatusCode)
		return g.failRequests(c, fiber.StatusBadGateway, fw, mcp.CodeCredential, msg)
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent:
		resp.Body.Close()
		cl.rec.outcome = telemetry.OutcomeOK
		if len(fw.denied) > 0 {
			return sendJSON(c, fiber.StatusOK, mcp.EncodeMessages(fw.denied, fw.batch))
		}
		return c.SendStatus(resp.StatusCode)
	case mediaType(resp.Header.Get("Content-Type")) == "text/event-stream":
		streaming = true
		cl.rec.outcome, cl.rec.stream = outcome(resp.StatusCode), true
		return g.stream(ctx, cancel, c, cl, resp, fw)
	}
	payload, err := readBody(resp)
	if err != nil {
		cl.rec.outcome = telemetry.OutcomeBackendError
		if upstream.TimedOut(resp) {
			return g.backendFailure(c, cl, &upstream.BackendError{Backend: r.backend.Name, Timeout: true, Err: err}, fw)
		}
		return g.backendFailure(c, cl, &upstream.BackendError{Backend: r.backend.Name, Err: err}, fw)
	}
	ct := resp.Header.Get("Content-Type")
	// Whatever the status and media type, a reply that is JSON is read and
	// its lists filtered: clients read JSON under other labels too
	// (application/json-seq), and error statuses can carry results.
	out, isJSON, err := g.filterReply(ctx, cl, payload, ct, fw)
	if err != nil {
		g.log.Warn("backend reply refused", "request_id", cl.requestID, "backend", r.backend.Name, "err", secrets.Error(err))
		cl.rec.outcome = telemetry.OutcomeBackendError
		return g.failRequests(c, fiber.StatusBadGateway, fw, mcp.CodeBackend,
			fmt.Sprintf("backend %s sent a reply the gateway cannot read unambiguously", r.backend.Name))
	}
	cl.rec.outcome = outcome(resp.StatusCode)
	if !isJSON && resp.StatusCode >= 400 {
		return g.backendErrorPage(c, cl, resp, payload, fw)
	}
	switch {
	case isJSON:
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	case ct != "":
		c.Set(fiber.HeaderContentType, ct)
	}
	return c.Status(resp.StatusCode).Send(out)
}

// maxJSONResponse bounds a non-streamed backend reply held in memory.
const maxJSONResponse = 64 << 20

// maxSizedReply is the largest declared Content-Length read into a buffer
// of that size at once: a backend's declaration costs no more memory than
// this before its bytes arrive.
const maxSizedReply = 64 << 10

func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b []byte
	var err error
	if n := resp.ContentLength; n >= 0 && n <= maxSizedReply {
		b, err = readAllSized(resp.Body, maxJSONResponse, int(n))
	} else {
		b, err = readAllLimit(resp.Body, maxJSONResponse)
	}
	if err != nil {
		return nil, fmt.Errorf("read backend reply: %w", err)
	}
	return b, nil
}

// outcome is a relayed request's outcome by the backend's status.
func outcome(status int) string {
	switch {
	case status < 300:
		return telemetry.OutcomeOK
	case status < 500:
		return telemetry.OutcomeBackendClientError
	}
	return telemetry.OutcomeBackendError
}

// backendFailure answers every request of the message with a JSON-RPC error
// naming the backend: 504 for a timeout, 502 otherwise.
func (g *Gateway) backendFailure(c *fiber.Ctx, cl *call, err error, fw *forwarded) error {
	var be *upstream.BackendError
	var ce *upstream.CredentialError
	switch {
	case errors.As(err, &ce):
		cl.rec.outcome = telemetry.OutcomeCredentialError
		// The causes print URLs (a token endpoint's, the backend's) with
		// their query and userinfo: redacted in the log and in the 502
		// body any caller reads.
		g.log.Warn("backend credential failed", "request_id", cl.requestID, "backend", ce.Backend, "oauth_error", ce.Code, "err", secrets.Error(ce.Err))
		return g.failRequests(c, fiber.StatusBadGateway, fw, mcp.CodeCredential, secrets.Text(ce.Error()))
	case errors.As(err, &be):
		cl.rec.outcome = telemetry.OutcomeBackendError
		g.log.Warn("backend failed", "request_id", cl.requestID, "backend", be.Backend, "timeout", be.Timeout, "err", secrets.Error(be.Err))
		status := fiber.StatusBadGateway
		if be.Timeout {
			status = fiber.StatusGatewayTimeout
		}
		return g.failRequests(c, status, fw, mcp.CodeBackend, secrets.Text(be.Error()))
	}
	cl.rec.outcome = telemetry.OutcomeBackendError
	g.log.Error("relay failed", "request_id", cl.requestID, "backend", cl.route.backend.Name, "err", secrets.Error(err))
	return g.failRequests(c, fiber.StatusBadGateway, fw, mcp.CodeBackend, fmt.Sprintf("backend %s failed", cl.route.backend.Name))
}

// backendErrorPage answers a backend's error that is not JSON-RPC (the
// TypeScript SDK's plain-text "Invalid session ID", a proxy's HTML 502) as
// a JSON-RPC error with the request's id: a client reads every answer of
// the gateway as JSON-RPC, its own session errors included. A 4xx keeps its
// status (a client starts a new session on 404); a 5xx is the backend
// failing, 502. The client learns only the status: the body is the
// backend's, and may echo what the backend was sent (its credential). The
// operator gets a short excerpt as the request log line's reason.
func (g *Gateway) backendErrorPage(c *fiber.Ctx, cl *call, resp *http.Response, payload []byte, fw *forwarded) error {
	name := cl.route.backend.Name
	cl.rec.reason = fmt.Sprintf("backend answered HTTP %d (%s), not JSON-RPC: %s",
		resp.StatusCode, truncate(resp.Header.Get("Content-Type"), 64), excerpt(payload))
	status := resp.StatusCode
	if status >= 500 {
		status = fiber.StatusBadGateway
	}
	msg := fmt.Sprintf("backend %s answered HTTP %d %s", name, resp.StatusCode, http.StatusText(resp.StatusCode))
	return g.failRequests(c, status, fw, mcp.CodeBackend, strings.TrimSpace(msg))
}

// maxExcerpt bounds what an operator sees of a backend's error page.
const maxExcerpt = 120

// excerpt is the start of a body as one line of printable text, for a log
// line: control characters and markup spacing collapse to single spaces.
func excerpt(b []byte) string {
	if len(b) > 4*maxExcerpt {
		b = b[:4*maxExcerpt]
	}
	s := strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, string(b))), " ")
	return truncate(s, maxExcerpt)
}

// failRequests answers every pending request with one JSON-RPC error, and
// the batch members the gateway denied with their own: a backend failing
// does not excuse the gateway from answering what it refused itself.
func (g *Gateway) failRequests(c *fiber.Ctx, status int, fw *forwarded, code int, msg string) error {
	if len(fw.pending) == 0 && len(fw.denied) == 0 {
		return g.reject(c, rpcRefusal(status, nil, code, msg))
	}
	return sendJSON(c, status, mcp.EncodeMessages(append(fw.pending.errors(code, msg), fw.denied...), fw.batch))
}
