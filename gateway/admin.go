package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/oauthserver"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/store"
	"github.com/mcpgw/mcpgw/internal/telemetry"
)

// The admin API manages agents and backends while the gateway runs and pages
// through the audit trail:
//
//	GET    /admin/v1/agents            GET    /admin/v1/backends
//	GET    /admin/v1/agents/{name}     GET    /admin/v1/backends/{name}
//	PUT    /admin/v1/agents/{name}     PUT    /admin/v1/backends/{name}
//	PATCH  /admin/v1/agents/{name}     PATCH  /admin/v1/backends/{name}
//	DELETE /admin/v1/agents/{name}     DELETE /admin/v1/backends/{name}
//	GET    /admin/v1/audit?kind=&subject=&agent=&backend=&decision=&since=&until=&limit=&cursor=&include=input
//	POST   /admin/v1/policy/replay?since=&until=&backend=&agent=&subject=&tool=&baseline=active (body: candidate bundle)
//
// {name} is the entry's key in config.yaml's agents: or backends: map
// (letters, digits, '.', '_', '-', starting with a letter or digit). An
// agent's agent_id, the X-Agent-ID value, is a field of the body and
// defaults to the name. A PUT body is the entry as config.yaml writes it
// (url, paths, auth_method, ...; agent_id, client_id, scopes, ...); it may
// repeat the name as "name", which must then match the URL.
//
// Every call carries the same bearer token as MCP calls and is decided by
// data.mcp.admin.allow; there is no other credential. Writes are validated
// like the config file, stored with their audit record, and applied to the
// routing table before the response is sent.

const adminPrefix = "/admin/v1"

// maxObjectName is the longest agent or backend name the store accepts.
const maxObjectName = 200

// Admin actions, as data.mcp.admin.allow sees them. A PUT is "write"
// whether it creates or updates: the decision is made before the store is
// read, so a caller who may not write learns nothing about which names
// exist. The change record still says create or update.
const (
	actionList   = "list"
	actionGet    = "get"
	actionWrite  = "write"
	actionDelete = "delete"
	// actionRevoke ends an OAuth grant (adminoauth.go).
	actionRevoke = "revoke"
)

type adminAPI struct {
	s   *Server
	log *slog.Logger
	// oauth is the authorization server whose state /oauth shows; nil
	// when oauth is off.
	oauth *oauthserver.Server
	// mu makes each write of this process one step: read the store,
	// validate the whole candidate topology, write, reload. Without it two
	// concurrent writes could each pass validation and together break the
	// topology (an agent granted a backend that is being deleted). The
	// store's admin lock extends this to writers in other replicas.
	mu sync.Mutex
}

// resource is one collection of the admin API: the store calls and config
// rules in which agents and backends differ.
type resource[T any] struct {
	api *adminAPI
	// plural is the URL segment, the policy's admin.kind and the config
	// key: "agents" or "backends".
	plural string
	name   func(T) string
	list   func(context.Context) ([]store.Entry[T], error)
	get    func(context.Context, string) (store.Entry[T], error)
	put    func(context.Context, T, store.ChangeMeta) (store.Change[T], error)
	remove func(context.Context, string, store.ChangeMeta) (store.Change[T], error)
	redact func(T) T
	// merge completes a decoded body with the stored secrets it keeps and
	// refuses secret references; old is nil on create.
	merge func(path string, sent map[string]json.RawMessage, v, old *T) []string
	// guard, when set, refuses an update v of old that would silently drop
	// what the entry is bound by (an agent's client_id); unbind is the
	// caller's explicit consent (?unbind=true).
	guard func(path string, sent map[string]json.RawMessage, v, old *T, unbind bool) []string
	// target, when set, reads where a PUT body points, for the policy
	// (input.admin.target).
	target func(ctx context.Context, body []byte) *policy.AdminTarget
	// entries is this collection in a candidate config (cand.Agents or
	// cand.Backends), read again after validation normalizes it.
	entries func(cand *config.Config) map[string]T
	// conflicts lists how entry name of a normalized candidate clashes
	// with the others (or, deleted, who still depends on it): 409.
	conflicts func(cand *config.Config, name string) []string
}

// lockWrites makes one admin write a single step across this process and
// every replica on the same database. Another replica may have written
// while we waited, so the topology is reloaded first: validation then sees
// what the store holds now.
func (a *adminAPI) lockWrites(ctx context.Context) (unlock func(), err error) {
	a.mu.Lock()
	release, err := a.s.Store.LockAdmin(ctx)
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	if err := a.s.Reload(ctx); err != nil {
		a.log.Warn("admin: apply store changes before a write", "err", err)
	}
	return func() {
		release()
		a.mu.Unlock()
	}, nil
}

func (s *Server) mountAdmin(log *slog.Logger) {
	a := &adminAPI{s: s, log: log.With("component", "admin")}
	agents := &resource[config.Agent]{
		api: a, plural: "agents",
		name:      func(v config.Agent) string { return v.Name },
		list:      s.Store.ListAgents,
		get:       s.Store.GetAgent,
		put:       s.Store.PutAgent,
		remove:    s.Store.DeleteAgent,
		redact:    config.Agent.Redacted,
		merge:     mergeAgent,
		guard:     guardAgent,
		entries:   func(cand *config.Config) map[string]config.Agent { return cand.Agents },
		conflicts: agentConflicts,
	}
	backends := &resource[config.Backend]{
		api: a, plural: "backends",
		name:      func(v config.Backend) string { return v.Name },
		list:      s.Store.ListBackends,
		get:       s.Store.GetBackend,
		put:       s.Store.PutBackend,
		remove:    s.Store.DeleteBackend,
		redact:    config.Backend.Redacted,
		merge:     mergeBackend,
		target:    backendTarget,
		entries:   func(cand *config.Config) map[string]config.Backend { return cand.Backends },
		conflicts: backendConflicts,
	}
	r := s.Gateway.App().Group(adminPrefix)
	mountResource(r, agents)
	mountResource(r, backends)
	r.Get("/audit", a.handleAudit)
	r.All("/audit", a.methodNotAllowed("GET"))
	r.Post("/policy/replay", a.handleReplay)
	r.All("/policy/replay", a.methodNotAllowed("POST"))
	a.mountIntegrity(r)
	a.mountOAuth(r, s.OAuth)
	// Without these, unknown admin paths would fall through to the MCP
	// route and be answered as backend paths.
	r.All("/", a.notFound)
	r.All("/*", a.notFound)

	compat := s.Gateway.App().Group(compatAdminPrefix)
	mountCompatResource(compat, agents)
	mountCompatResource(compat, backends)
	compat.All("/", a.compatNotFound)
	compat.All("/*", a.compatNotFound)
}

// mimeMergePatch is the media type of an RFC 7396 JSON merge patch.
const mimeMergePatch = "application/merge-patch+json"

// destinationKey matches the auth_config keys that say where requests (and
// with them secrets) go: URLs, endpoints, servers, issuers, hosts and the
// cross-app mode, which moves the token endpoint to one the backend names.
var destinationKey = regexp.MustCompile(`(?i)(^|_)(url|uri|endpoint|server|issuer|host|hostname|domain|address|port)$|^id_jag_mode$`)

// authenticate verifies the bearer token as the MCP route does. The
// challenge points at the gateway's own protected resource metadata: admin
// paths belong to no backend.
func (a *adminAPI) authenticate(c *fiber.Ctx) (*identity.Principal, bool) {
	g := a.s.Gateway
	if r := g.sameSite(c); r != nil {
		_ = g.reject(c, r)
		return nil, false
	}
	// The IdPs' verifier only: a client's token of the gateway's own
	// authorization server opens the backends it was issued for, never
	// the administration.
	p, _, r := g.bearer(c, a.s.Verifier, strings.TrimRight(g.server.PublicURL, "/")+"/.well-known/oauth-protected-resource")
	if r != nil {
		_ = g.reject(c, r)
		return nil, false
	}
	return p, true
}

// authorize asks data.mcp.admin.allow; a denial answers 403 with the
// decision id, which the audit trail's decision record carries too.
func (a *adminAPI) authorize(c *fiber.Ctx, p *identity.Principal, action, kind, name string, target *policy.AdminTarget) (policy.Decision, bool) {
	ctx, span := telemetry.StartSpan(c.UserContext(), a.s.Gateway.opts.Tracer, telemetry.SpanPolicy)
	defer telemetry.EndSpan(span, nil)
	d := a.s.Engine.DecideAdmin(ctx, &policy.AdminInput{
		Version: policy.InputVersion,
		Token: policy.TokenInput{
			Sub: p.Subject, Iss: p.Issuer, Aud: p.Audience, ClientID: p.ClientID,
			Scopes: p.Scopes, Groups: p.Groups, Claims: p.Claims, Via: p.Via,
		},
		// Cloned: the engine's decision record outlives the request buffers.
		HTTP:  policy.HTTPInput{Method: strings.Clone(c.Method()), Path: strings.Clone(c.Path()), RemoteAddr: strings.Clone(c.IP())},
		Admin: policy.AdminRequest{Action: action, Kind: kind, Name: name, Target: target},
	})
	if d.Allow {
		return d, true
	}
	desc := fmt.Sprintf("admin action %s on %s denied by policy", action, adminTarget(kind, name))
	if len(d.Reasons) > 0 {
		desc += ": " + strings.Join(d.Reasons, "; ")
	}
	_ = adminJSON(c, fiber.StatusForbidden, fiber.Map{
		"error": "access_denied", "error_description": desc, "decision_id": d.ID, "reasons": d.Reasons,
	})
	return d, false
}

func adminTarget(kind, name string) string {
	if name == "" {
		return kind
	}
	return kind + "/" + name
}

// changeMeta names who made a change and on what authority. The agent is the
// one the token's client is registered as, when the topology knows it.
func (a *adminAPI) changeMeta(c *fiber.Ctx, p *identity.Principal, d policy.Decision) store.ChangeMeta {
	meta := store.ChangeMeta{Subject: p.Subject, Issuer: p.Issuer, DecisionID: d.ID, Revision: d.Revision, RequestID: requestID(c)}
	if id, header, err := agentHeader(c); err == nil {
		if agent, err := a.s.Gateway.topo.Load().agentFor(id, header, p); err == nil {
			meta.Agent = agent.ID()
		}
	}
	return meta
}

// apply hands a stored change's audit record to the audit sinks and swaps the
// routing table. The store already holds the record (written with the
// change); s.Audit also writes to the store, where a record whose id is
// stored is skipped, so the extra sinks (stdout, HTTP collector) get it
// once and the store does not get it twice. false: the table could not be
// swapped and the request has been answered with 500.
func (a *adminAPI) apply(c *fiber.Ctx, rec audit.Record) bool {
	a.s.Audit.Write(context.WithoutCancel(c.UserContext()), rec)
	a.log.Info("admin change", "action", rec.Action, "kind", rec.ObjectKind, "name", rec.ObjectName,
		"subject", rec.Subject, "decision_id", rec.DecisionID, "request_id", rec.RequestID)
	if err := a.s.Reload(c.UserContext()); err != nil {
		a.log.Error("admin change stored but not applied", "request_id", rec.RequestID, "err", err)
		_ = adminError(c, fiber.StatusInternalServerError, "server_error",
			"the change was stored but this gateway could not apply it yet; it retries when it next polls the store (request id "+rec.RequestID+")", nil)
		return false
	}
	return true
}

func (a *adminAPI) methodNotAllowed(allow string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, ok := a.authenticate(c); !ok {
			return nil
		}
		c.Set(fiber.HeaderAllow, allow)
		return adminError(c, fiber.StatusMethodNotAllowed, "invalid_request", "method not allowed: use "+allow, nil)
	}
}

func (a *adminAPI) notFound(c *fiber.Ctx) error {
	if _, ok := a.authenticate(c); !ok {
		return nil
	}
	return adminError(c, fiber.StatusNotFound, "not_found", "no admin API route "+c.Method()+" "+c.Path()+
		"; see /admin/v1/agents, /admin/v1/backends, /admin/v1/audit and /admin/v1/tool-integrity/{backend}/pending", nil)
}

// internal logs an unexpected failure and answers 500 without its detail,
// which may name database internals.
func (a *adminAPI) internal(c *fiber.Ctx, what string, err error) error {
	rid := requestID(c)
	a.log.Error("admin api: "+what, "request_id", rid, "err", err)
	return adminError(c, fiber.StatusInternalServerError, "server_error", "internal error (request id "+rid+")", nil)
}

func invalid(c *fiber.Ctx, problems []string) error {
	return adminError(c, fiber.StatusBadRequest, "invalid_request", strings.Join(problems, "; "), problems)
}

func adminError(c *fiber.Ctx, status int, code, desc string, details []string) error {
	body := fiber.Map{"error": code, "error_description": desc}
	if len(details) > 0 {
		body["details"] = details
	}
	return adminJSON(c, status, body)
}

// adminJSON answers with v as JSON. Unlike c.JSON it leaves <, > and & as
// they are: messages such as "must be >= 0" stay readable with curl, and
// these are API responses that no browser renders (see setSecurityHeaders).
func adminJSON(c *fiber.Ctx, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode admin response: %w", err)
	}
	return sendJSON(c, status, buf.Bytes())
}

func requestID(c *fiber.Ctx) string {
	if id, ok := c.Locals("requestid").(string); ok {
		return strings.Clone(id)
	}
	return ""
}
