package gateway

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/mcp"
)

// The federated endpoint (server.federated_path, issue 19): one MCP
// endpoint that aggregates every backend the caller's agent may reach.
//
// It adds no second model of a request. Each message it needs a backend to
// see goes through that backend's own path, in process: a request to the
// backend's path, with the caller's own Authorization and agent headers,
// answered by handleMCP exactly as if the client had sent it there
// (authentication, rate limits, route, agent boundary, session, the one
// policy decision with that backend in the input, obligations, credential
// injection, relay, list filtering, audit and request log). The federated
// side only rewrites names and merges what those answers say.
//
// What it serves: initialize (a session with every reachable backend,
// opened at initialize), notifications/initialized (forwarded to each),
// ping (answered here), tools/list (merged, names prefixed
// <backend>__<tool>), tools/call (routed to the owning backend with the
// original name), DELETE (each backend session ended). Everything else is
// refused by name: other requests with -32601, batches, client responses
// and GET streams (405).

// federatedSeparator joins a backend's name and its tool's name.
const federatedSeparator = "__"

// maxFederatedPages bounds the pages of one backend's tools/list the
// gateway follows (nextCursor) for one federated tools/list.
const maxFederatedPages = 10

// federatedSessionPrefix marks the sealed session of the federated
// endpoint: ":" is never in a backend name, so such a session never opens
// on a backend's path, nor a backend's here.
const federatedSessionPrefix = "federated:"

// federatedSession is what a federated Mcp-Session-Id carries (sealed as
// upstream.Session.Upstream): for each backend that joined at initialize,
// the gateway's own sealed session id on that backend's path ("" for a
// backend that keeps no session). Any replica with the key serves it.
type federatedSession map[string]string

// fedCall is one request to the federated endpoint after it was admitted.
type fedCall struct {
	principal *identity.Principal
	agent     config.Agent
	requestID string
	sessions  federatedSession
	// from is what each backend-path request copies of the client's:
	// read once, since those requests run at once and a Fiber context is
	// not safe for concurrent reads (fasthttp's header lookups write).
	from requestOrigin
}

// requestOrigin is the client request as backend-path requests need it.
type requestOrigin struct {
	ctx           context.Context
	host          string
	headers       [][2]string // federatedHeaders the client sent
	local, remote net.Addr
}

func originOf(c *fiber.Ctx) requestOrigin {
	o := requestOrigin{ctx: c.UserContext(), host: string(c.Request().Host()),
		local: c.Context().LocalAddr(), remote: c.Context().RemoteAddr()}
	for _, h := range federatedHeaders {
		if v := c.Get(h); v != "" {
			o.headers = append(o.headers, [2]string{h, strings.Clone(v)})
		}
	}
	return o
}

func (g *Gateway) handleFederated(c *fiber.Ctx) error {
	rec := newRequestRecord(c)
	panicked := true
	var err error
	defer func() { g.answered(c, rec, err, panicked) }()
	err = g.serveFederated(c, rec)
	panicked = false
	return err
}

// serveFederated admits the request as admit does for a backend's path, up
// to what needs a backend: same site, the caller, the caller's budget, the
// agent (enabled), the federated session. The backends' own boundaries
// (enabled, backend_access, a gateway token's audience) are checked again
// by each backend's path.
func (g *Gateway) serveFederated(c *fiber.Ctx, rec *requestRecord) error {
	if r := g.sameSite(c); r != nil {
		return g.reject(c, r)
	}
	if g.corsMCP(c) {
		return nil
	}
	p, _, r := g.authenticate(c)
	if r != nil {
		return g.reject(c, r)
	}
	rec.principal = p
	if r := g.chargeRequest(c, p, rec.requestID); r != nil {
		return g.reject(c, r)
	}
	agentID, header, err := agentHeader(c)
	rec.agent = truncate(agentID, maxLoggedName)
	if err != nil {
		return g.reject(c, oauthRefusal(fiber.StatusBadRequest, "invalid_request", err.Error()))
	}
	agent, err := g.topo.Load().agentFor(agentID, header, p)
	if err != nil {
		return g.reject(c, oauthRefusal(fiber.StatusForbidden, "access_denied", err.Error()))
	}
	rec.agent = agent.ID()
	if !agent.IsEnabled() {
		return g.reject(c, oauthRefusal(fiber.StatusForbidden, "access_denied", fmt.Sprintf("agent %q is disabled", agent.ID())))
	}
	fc := &fedCall{principal: p, agent: agent, requestID: rec.requestID, from: originOf(c)}
	if id := c.Get(mcpgo.HeaderSessionID); id != "" {
		if !g.joinFederated(fc, id) {
			return g.reject(c, rpcRefusal(fiber.StatusNotFound, nil, mcpgo.INVALID_REQUEST, "unknown or expired session (Mcp-Session-Id): start a new one with initialize"))
		}
	}
	switch c.Method() {
	case fiber.MethodPost:
		return g.federatedPost(c, fc, rec)
	case fiber.MethodDelete:
		return g.federatedDelete(c, fc)
	}
	return g.reject(c, &rejection{form: formRPC, status: fiber.StatusMethodNotAllowed, rpc: mcpgo.INVALID_REQUEST,
		msg: "the federated endpoint does not serve GET streams yet (no server notifications or server requests): use POST, or DELETE to end the session", headers: map[string]string{fiber.HeaderAllow: "POST, DELETE"}})
}

// joinFederated opens the federated session id: it must belong to this
// subject and agent and be alive, as on a backend's path. Each use of it
// counts as a use of every backend session it holds, so a backend the
// client has not called for a while does not idle out underneath it.
func (g *Gateway) joinFederated(fc *fedCall, id string) bool {
	s, ok := g.openSession(id, federatedSessionPrefix+g.server.FederatedPath, subjectKey(fc.principal), fc.agent.ID())
	if !ok {
		return false
	}
	var sessions federatedSession
	if err := json.Unmarshal([]byte(s.Upstream), &sessions); err != nil {
		return false
	}
	now := g.now()
	for _, sid := range sessions {
		if sid == "" {
			continue
		}
		if bs, err := g.opts.Sealer.Open(sid); err == nil {
			g.idle.Use(bs.ID, now)
		}
	}
	fc.sessions = sessions
	return true
}

func (g *Gateway) federatedPost(c *fiber.Ctx, fc *fedCall, rec *requestRecord) error {
	if mediaType(c.Get(fiber.HeaderContentType)) != fiber.MIMEApplicationJSON {
		return g.reject(c, rpcRefusal(fiber.StatusUnsupportedMediaType, nil, mcpgo.INVALID_REQUEST, "Content-Type must be application/json"))
	}
	if accept := c.Get(fiber.HeaderAccept); !accepts(accept, "application/json") || !accepts(accept, "text/event-stream") {
		return g.reject(c, rpcRefusal(fiber.StatusNotAcceptable, nil, mcpgo.INVALID_REQUEST, "Accept header must list both application/json and text/event-stream"))
	}
	msgs, batch, perr := mcp.ParseBody(c.Body(), g.server.MaxBatchMessages)
	if perr != nil {
		return g.reject(c, rpcRefusal(perr.Status, perr.ID, perr.Code, perr.Message))
	}
	rec.messages(msgs, batch)
	if batch {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, "the federated endpoint takes one message per POST, not JSON-RPC batches"))
	}
	m := &msgs[0]
	if v := c.Get(mcpgo.HeaderProtocolVersion); mcpgo.IsModernProtocol(v) {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, idOf(m), mcpgo.INVALID_REQUEST,
			fmt.Sprintf("the federated endpoint serves protocol revisions up to %s, not %s (it keeps sessions)", mcpgo.LATEST_LEGACY_PROTOCOL_VERSION, truncate(v, maxLoggedName))))
	}
	switch {
	case m.Kind == mcp.KindResponse:
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, "the federated endpoint sends no requests to clients, so it takes no responses"))
	case m.Kind == mcp.KindRequest && m.Method == string(mcpgo.MethodInitialize):
		return g.federatedInitialize(c, fc, m)
	case fc.sessions == nil:
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, idOf(m), mcpgo.INVALID_REQUEST, "Mcp-Session-Id required: the federated session holds one session per backend; start it with initialize"))
	case m.Kind == mcp.KindNotification:
		if m.Method == string(mcpgo.MethodNotificationInitialized) {
			g.fanOut(fc, slices.Sorted(maps.Keys(fc.sessions)), func(string) (string, []byte) { return http.MethodPost, m.Encode() })
		}
		// Other notifications (cancelled, progress, roots changed) name
		// nothing that says which backend they are for: dropped.
		return c.SendStatus(fiber.StatusAccepted)
	}
	switch m.Method {
	case string(mcpgo.MethodPing):
		return sendJSON(c, fiber.StatusOK, resultResponse(m, struct{}{}))
	case string(mcpgo.MethodToolsList):
		return g.federatedToolsList(c, fc, m)
	case string(mcpgo.MethodToolsCall):
		return g.federatedToolsCall(c, fc, m)
	}
	return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.METHOD_NOT_FOUND,
		fmt.Sprintf("method %q is not served by the federated endpoint yet (it serves initialize, ping, tools/list and tools/call): use the backend's own path", truncate(m.Method, maxLoggedName)), nil))
}

// federatedInitialize opens a session with every backend the agent may
// reach, now rather than lazily: the client keeps the Mcp-Session-Id it
// gets here for the whole session, and a stateless gateway has nowhere
// else to keep a backend session opened later. A backend that fails is
// left out of the session (logged); its tools are not listed and calls to
// them are refused as naming no backend of the session.
//
// Each backend gets the client's initialize with empty capabilities: the
// federated endpoint relays no server requests (sampling, elicitation,
// roots), so a backend must not expect answers to them (and the confirm
// obligation, which asks through elicitation, is refused as on a backend
// path whose client did not declare it).
func (g *Gateway) federatedInitialize(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	params := map[string]json.RawMessage{}
	if err := json.Unmarshal(m.ParamsJSON(), &params); err != nil {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS, "invalid params: "+err.Error(), nil))
	}
	params["capabilities"] = json.RawMessage(`{}`)
	// Revisions from 2026-07-28 are stateless and want hint headers the
	// backend requests do not carry: the backends are offered the latest
	// revision with sessions instead, as a server may answer.
	var asked string
	if json.Unmarshal(params["protocolVersion"], &asked) == nil && mcpgo.IsModernProtocol(asked) {
		params["protocolVersion"], _ = json.Marshal(mcpgo.LATEST_LEGACY_PROTOCOL_VERSION)
	}
	body := requestBody(m.ID, m.Method, params)
	reachable := g.reachable(fc.agent)
	if len(reachable) == 0 {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcp.CodeForbidden, fmt.Sprintf("agent %q may reach no enabled backend (backend_access)", fc.agent.ID()), nil))
	}
	answers := g.fanOut(fc, reachable, func(string) (string, []byte) { return http.MethodPost, body })
	sessions := federatedSession{}
	var versions []string
	tools := false
	for _, a := range answers {
		var res struct {
			ProtocolVersion string                     `json:"protocolVersion"`
			Capabilities    map[string]json.RawMessage `json:"capabilities"`
		}
		if err := a.result(m.IDKey, &res); err != nil {
			g.log.Warn("federated initialize: backend left out of the session", "request_id", fc.requestID, "backend", a.backend, "err", err)
			continue
		}
		sessions[a.backend] = a.sessionID
		if res.ProtocolVersion != "" {
			versions = append(versions, res.ProtocolVersion)
		}
		_, has := res.Capabilities["tools"]
		tools = tools || has
	}
	if len(versions) == 0 {
		// A backend that named no revision agreed to the one offered.
		var offered string
		_ = json.Unmarshal(params["protocolVersion"], &offered)
		versions = append(versions, offered)
	}
	if len(sessions) == 0 {
		return sendJSON(c, fiber.StatusBadGateway, mcp.ErrorResponse(m.ID, mcp.CodeBackend, "no backend the agent may reach answered initialize", nil))
	}
	state, err := json.Marshal(sessions)
	if err != nil {
		return err
	}
	sealed, err := g.sealSession(federatedSessionPrefix+g.server.FederatedPath, subjectKey(fc.principal), fc.agent.ID(), string(state), false)
	if err != nil {
		return fmt.Errorf("seal federated session: %w", err)
	}
	caps := map[string]any{}
	if tools {
		// No listChanged: the federated endpoint has no GET stream yet.
		caps["tools"] = map[string]any{}
	}
	c.Set(mcpgo.HeaderSessionID, sealed)
	return sendJSON(c, fiber.StatusOK, resultResponse(m, map[string]any{
		// The oldest revision any backend agreed to: each backend was
		// offered the client's, and answers with it or an older one.
		"protocolVersion": slices.Min(versions),
		"capabilities":    caps,
		"serverInfo":      map[string]any{"name": "mcpgw", "title": "mcpgw federated endpoint", "version": "1"},
	}))
}

// reachable are the backends agent may reach, by name: enabled and in its
// backend_access (the hard boundary, checked again on each backend path).
func (g *Gateway) reachable(agent config.Agent) []string {
	topo := g.topo.Load()
	var out []string
	for _, name := range agent.BackendAccess {
		if r, ok := topo.backends[name]; ok && r.backend.IsEnabled() && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// federatedToolsList merges each session backend's tools/list, as the
// backend's path answers it to this caller (filtered there by the policy),
// names prefixed. A backend's nextCursor is followed here, up to
// maxFederatedPages pages; the merged list is one page. A backend that
// fails is left out, with a warning logged, not the list failed.
func (g *Gateway) federatedToolsList(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	var params struct {
		Cursor *string `json:"cursor"`
	}
	_ = json.Unmarshal(m.ParamsJSON(), &params)
	if params.Cursor != nil {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS, "invalid params: the federated tools/list answers with every tool in one page and takes no cursor", nil))
	}
	names := slices.Sorted(maps.Keys(fc.sessions))
	lists := make([][]json.RawMessage, len(names))
	var wg sync.WaitGroup
	for i, b := range names {
		wg.Go(func() {
			tools, err := g.backendTools(fc, b, m)
			if err != nil {
				g.log.Warn("federated tools/list: backend left out of the list", "request_id", fc.requestID, "backend", b, "err", err)
			}
			lists[i] = tools
		})
	}
	wg.Wait()
	merged := []json.RawMessage{}
	seen := map[string]bool{}
	for i, b := range names {
		for _, raw := range lists[i] {
			var tool map[string]json.RawMessage
			var name string
			if json.Unmarshal(raw, &tool) != nil || json.Unmarshal(tool["name"], &name) != nil {
				continue
			}
			prefixed := b + federatedSeparator + name
			if seen[prefixed] {
				// Names with "_" can meet ("a" + "__" + "_x", "a_" + "__" + "x"):
				// only the first is listed, and calls route to the longest
				// backend name (splitTool).
				g.log.Warn("federated tools/list: duplicate prefixed name left out", "request_id", fc.requestID, "backend", b, "tool", prefixed)
				continue
			}
			seen[prefixed] = true
			tool["name"], _ = json.Marshal(prefixed)
			enc, err := json.Marshal(tool)
			if err != nil {
				continue
			}
			merged = append(merged, enc)
		}
	}
	return sendJSON(c, fiber.StatusOK, resultResponse(m, map[string]any{"tools": merged}))
}

// backendTools is backend b's tools/list through its own path, its pages
// followed up to maxFederatedPages.
func (g *Gateway) backendTools(fc *fedCall, b string, m *mcp.Message) ([]json.RawMessage, error) {
	var out []json.RawMessage
	var cursor string
	for range maxFederatedPages {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		a := g.viaBackend(fc, b, http.MethodPost, requestBody(m.ID, m.Method, params))
		var res struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := a.result(m.IDKey, &res); err != nil {
			return out, err
		}
		out = append(out, res.Tools...)
		if res.NextCursor == "" {
			return out, nil
		}
		cursor = res.NextCursor
	}
	return out, fmt.Errorf("more than %d pages of tools: the rest are left out", maxFederatedPages)
}

// federatedToolsCall routes <backend>__<tool> to backend's path with the
// tool's own name, and answers with what that path answered: its status,
// its JSON or SSE body (a denial's -32003 with its decision id, a rate
// limit's 429, the result redacted), buffered whole.
func (g *Gateway) federatedToolsCall(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	backend, tool, ok := fc.splitTool(m.Target())
	if !ok {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS,
			fmt.Sprintf("invalid params: tool %q names no backend of this session (<backend>%s<tool>)", truncate(m.Target(), maxLoggedName), federatedSeparator), nil))
	}
	if g.topo.Load().backends[backend] == nil {
		return sendJSON(c, fiber.StatusBadGateway, mcp.ErrorResponse(m.ID, mcp.CodeBackend, fmt.Sprintf("backend %s is no longer configured", backend), nil))
	}
	params := map[string]json.RawMessage{}
	if err := json.Unmarshal(m.ParamsJSON(), &params); err != nil {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS, "invalid params: "+err.Error(), nil))
	}
	params["name"], _ = json.Marshal(tool)
	a := g.viaBackend(fc, backend, http.MethodPost, requestBody(m.ID, m.Method, params))
	for _, h := range []string{fiber.HeaderWWWAuthenticate, fiber.HeaderRetryAfter} {
		if v := a.header.Get(h); v != "" {
			c.Set(h, v)
		}
	}
	if a.contentType != "" {
		c.Set(fiber.HeaderContentType, a.contentType)
	}
	return c.Status(a.status).Send(a.body)
}

// splitTool finds the backend of the session a prefixed name belongs to:
// the longest backend name that, with the separator, begins it.
func (fc *fedCall) splitTool(name string) (backend, tool string, ok bool) {
	for b := range fc.sessions {
		if t, found := strings.CutPrefix(name, b+federatedSeparator); found && t != "" && len(b) > len(backend) {
			backend, tool, ok = b, t, true
		}
	}
	return backend, tool, ok
}

// federatedDelete ends each backend session (each DELETE decided on the
// backend's path as kind close) and answers 204; a backend that fails to
// end its session is logged.
func (g *Gateway) federatedDelete(c *fiber.Ctx, fc *fedCall) error {
	if fc.sessions == nil {
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, nil, mcpgo.INVALID_REQUEST, "Mcp-Session-Id required: DELETE ends a session"))
	}
	var names []string
	for b, sid := range fc.sessions {
		if sid != "" {
			names = append(names, b)
		}
	}
	slices.Sort(names)
	for _, a := range g.fanOut(fc, names, func(string) (string, []byte) { return http.MethodDelete, nil }) {
		if a.status >= 300 {
			g.log.Warn("federated DELETE: backend did not end its session", "request_id", fc.requestID, "backend", a.backend, "status", a.status)
		}
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// fanOut sends one request to each backend's path at once; answers are in
// the order of backends.
func (g *Gateway) fanOut(fc *fedCall, backends []string, req func(backend string) (method string, body []byte)) []subAnswer {
	out := make([]subAnswer, len(backends))
	var wg sync.WaitGroup
	for i, b := range backends {
		method, body := req(b)
		wg.Go(func() { out[i] = g.viaBackend(fc, b, method, body) })
	}
	wg.Wait()
	return out
}

// subAnswer is what a backend's path answered to one request of the
// federated endpoint.
type subAnswer struct {
	backend     string
	status      int
	contentType string
	header      http.Header
	body        []byte
	// sessionID is the Mcp-Session-Id the backend's path handed out (the
	// gateway's sealed id for that backend).
	sessionID string
}

// federatedHeaders are the client headers a backend's path gets from a
// federated request: who calls, through which agent, from where, in which
// revision and trace. Never the client's Mcp-Session-Id (the backend's own
// goes instead) nor its hint headers (they name the prefixed tool).
var federatedHeaders = []string{
	fiber.HeaderAuthorization, "X-Agent-ID", "X-MCP-Agent", fiber.HeaderOrigin, fiber.HeaderUserAgent,
	mcpgo.HeaderProtocolVersion, "Traceparent", "Tracestate", "Baggage",
}

// viaBackend sends one request to backend's own path in process and
// returns its answer: handleMCP serves it as it serves a client there.
func (g *Gateway) viaBackend(fc *fedCall, backend, method string, body []byte) subAnswer {
	a := subAnswer{backend: backend}
	r := g.topo.Load().backends[backend]
	if r == nil {
		a.status, a.contentType = fiber.StatusNotFound, fiber.MIMEApplicationJSON
		a.body = mcp.ErrorResponse(mcpgo.NewRequestId(nil), mcp.CodeBackend, "backend "+backend+" no longer exists", nil)
		return a
	}
	fctx := &fasthttp.RequestCtx{}
	fctx.Init2(&subConn{local: fc.from.local, remote: fc.from.remote}, quietFasthttp{}, false)
	req := &fctx.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(r.prefix)
	req.Header.SetHost(fc.from.host)
	for _, h := range fc.from.headers {
		req.Header.Set(h[0], h[1])
	}
	req.Header.Set(fiber.HeaderAccept, "application/json, text/event-stream")
	if body != nil {
		req.Header.SetContentType(fiber.MIMEApplicationJSON)
		req.SetBody(body)
	}
	if sid := fc.sessions[backend]; sid != "" {
		req.Header.Set(mcpgo.HeaderSessionID, sid)
	}
	// The backend request's log line and audit records name the federated
	// request they were made for, when the id still fits.
	req.Header.Set(fiber.HeaderXRequestID, fc.requestID+":"+backend)
	sub := g.app.AcquireCtx(fctx)
	defer g.app.ReleaseCtx(sub)
	sub.SetUserContext(fc.from.ctx)
	setRequestID(sub)
	if err := g.handleMCP(sub); err != nil {
		_ = g.errorHandler(sub, err)
	}
	resp := &fctx.Response
	// Body reads a streamed answer (SSE) to its end.
	a.body = bytes.Clone(resp.Body())
	a.status = resp.StatusCode()
	a.contentType = string(resp.Header.ContentType())
	a.header = http.Header{}
	for _, h := range []string{fiber.HeaderWWWAuthenticate, fiber.HeaderRetryAfter} {
		if v := resp.Header.Peek(h); len(v) > 0 {
			a.header.Set(h, string(v))
		}
	}
	a.sessionID = string(resp.Header.Peek(mcpgo.HeaderSessionID))
	return a
}

// result decodes the result of the response to the request idKey, or says
// why there is none (the backend's error, a refusal, no such response).
func (a subAnswer) result(idKey string, into any) error {
	msgs, err := a.messages()
	if err != nil {
		return fmt.Errorf("HTTP %d: %w", a.status, err)
	}
	for i := range msgs {
		if msgs[i].Kind != mcp.KindResponse || msgs[i].IDKey != idKey {
			continue
		}
		var reply struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msgs[i].Encode(), &reply); err != nil {
			return err
		}
		if reply.Error != nil {
			return fmt.Errorf("HTTP %d: JSON-RPC error %d: %s", a.status, reply.Error.Code, reply.Error.Message)
		}
		return json.Unmarshal(reply.Result, into)
	}
	return fmt.Errorf("HTTP %d: no response to the request (%s)", a.status, excerpt(a.body))
}

// messages reads the answer's JSON-RPC messages: the body, or the data of
// each SSE event.
func (a subAnswer) messages() ([]mcp.Message, error) {
	if mediaType(a.contentType) != "text/event-stream" {
		msgs, _, err := mcp.ParseReply(a.body)
		return msgs, err
	}
	var out []mcp.Message
	er := mcp.NewEventReader(bytes.NewReader(a.body))
	for {
		ev, err := er.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if !ev.HasData || len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		msgs, _, err := mcp.ParseReply(ev.Data)
		if err != nil {
			return out, err
		}
		out = append(out, msgs...)
	}
}

// requestBody is a JSON-RPC request's encoding.
func requestBody(id mcpgo.RequestId, method string, params any) []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return b
}

// resultResponse is the response to m with result.
func resultResponse(m *mcp.Message, result any) []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": result})
	return b
}

func idOf(m *mcp.Message) *mcpgo.RequestId {
	if m.Kind == mcp.KindRequest {
		return &m.ID
	}
	return nil
}

// federatedProblems says how server.federated_path collides with the
// gateway's own routes or with a backend's path, for every routing table
// built (start, reload, admin write).
func (g *Gateway) federatedProblems(backends map[string]config.Backend) []string {
	fp := g.server.FederatedPath
	if fp == "" {
		return nil
	}
	var out []string
	if reserved, ok := reservedRoute(canonicalPath(fp)); ok {
		out = append(out, fmt.Sprintf("server.federated_path: %q is the gateway's own route %s", fp, reserved))
	}
	for _, name := range slices.Sorted(maps.Keys(backends)) {
		paths := backends[name].Paths
		if len(paths) == 0 {
			paths = []string{"/" + name}
		}
		for i, p := range paths {
			if config.PathsCollide(fp, p) {
				out = append(out, fmt.Sprintf("backends.%s.paths[%d]: %q collides with server.federated_path %q", name, i, p, fp))
			}
		}
	}
	return out
}

// subConn stands in for the client's connection in a backend-path request
// made in process: it carries the client's addresses, and a write deadline
// (stream.go sets one per chunk) has nothing to bound.
type subConn struct{ local, remote net.Addr }

func (s *subConn) Read([]byte) (int, error) { return 0, io.EOF }
func (s *subConn) Write([]byte) (int, error) {
	return 0, errors.New("in-process request: no connection")
}
func (s *subConn) Close() error                     { return nil }
func (s *subConn) LocalAddr() net.Addr              { return cmp.Or[net.Addr](s.local, &net.TCPAddr{}) }
func (s *subConn) RemoteAddr() net.Addr             { return cmp.Or[net.Addr](s.remote, &net.TCPAddr{}) }
func (s *subConn) SetDeadline(time.Time) error      { return nil }
func (s *subConn) SetReadDeadline(time.Time) error  { return nil }
func (s *subConn) SetWriteDeadline(time.Time) error { return nil }

type quietFasthttp struct{}

func (quietFasthttp) Printf(string, ...any) {}
