package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

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
// opened at initialize, capabilities merged), ping (answered here),
// tools/list, prompts/list, resources/list and resources/templates/list
// (paged across backends, names prefixed, URIs rewritten:
// federated_names.go, federated_lists.go), tools/call, prompts/get,
// resources/read, resources/(un)subscribe and completion/complete (routed
// to the owning backend with the original name or URI, the answer
// streamed), logging/setLevel (sent to each), DELETE (each backend session
// ended); and, in federated_stream.go, client notifications and responses
// (routed back to the backend that asked) and GET (every backend's stream
// merged). Everything else is refused by name: other requests with -32601,
// batches.

// federatedSeparator ends a backend's default name prefix (<backend>__).
const federatedSeparator = "__"

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
	// prefixes are the session backends' federated name prefixes, read
	// from the topology once per request (federatedPrefixes).
	prefixes map[string]string
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
	case fiber.MethodGet:
		return g.federatedGet(c, fc)
	}
	return g.reject(c, &rejection{form: formRPC, status: fiber.StatusMethodNotAllowed, rpc: mcpgo.INVALID_REQUEST,
		msg: "method not allowed: use POST, GET or DELETE", headers: map[string]string{fiber.HeaderAllow: "GET, POST, DELETE"}})
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
	case m.Kind == mcp.KindRequest && m.Method == string(mcpgo.MethodInitialize):
		// One session against sessions_per_minute, however many backend
		// sessions it opens: those requests are not charged (subRequestKey).
		if r := g.charge(c, fc.principal, fc.requestID, &m.ID, 0, 1); r != nil {
			return g.reject(c, r)
		}
		return g.federatedInitialize(c, fc, m)
	case fc.sessions == nil:
		return g.reject(c, rpcRefusal(fiber.StatusBadRequest, idOf(m), mcpgo.INVALID_REQUEST, "Mcp-Session-Id required: the federated session holds one session per backend; start it with initialize"))
	case m.Kind == mcp.KindResponse:
		return g.federatedResponse(c, fc, m)
	case m.Kind == mcp.KindNotification:
		return g.federatedNotification(c, fc, m)
	}
	if m.Method == string(mcpgo.MethodPing) {
		return sendJSON(c, fiber.StatusOK, resultResponse(m, struct{}{}))
	}
	// Lists and requests routed by name or URI (federated_lists.go).
	return g.federatedRequest(c, fc, m)
}

// federatedInitialize opens a session with every backend the agent may
// reach, now rather than lazily: the client keeps the Mcp-Session-Id it
// gets here for the whole session, and a stateless gateway has nowhere
// else to keep a backend session opened later. A backend that fails is
// left out of the session (logged); its tools are not listed and calls to
// them are refused as naming no backend of the session.
//
// Each backend gets the client's initialize, capabilities included: the
// federated endpoint relays server requests (sampling, elicitation, roots,
// the confirm obligation's question) with ids naming the backend
// (federated_stream.go), so a backend may ask what the client declared.
func (g *Gateway) federatedInitialize(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	params := map[string]json.RawMessage{}
	if err := json.Unmarshal(m.ParamsJSON(), &params); err != nil {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS, "invalid params: "+err.Error(), nil))
	}
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
	var caps fedCapabilities
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
		caps.add(res.Capabilities)
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
	c.Set(mcpgo.HeaderSessionID, sealed)
	return sendJSON(c, fiber.StatusOK, resultResponse(m, map[string]any{
		// The oldest revision any backend agreed to: each backend was
		// offered the client's, and answers with it or an older one.
		"protocolVersion": slices.Min(versions),
		"capabilities":    caps.merged(),
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
	for _, err := range config.FederatedPrefixProblems(backends) {
		out = append(out, err.Error())
	}
	return out
}
