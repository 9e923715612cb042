package gateway

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// topology is the routing table: which backend serves which path, which
// agents exist and what config allows each. It is immutable once built and
// swapped whole, so in-flight requests finish on the table they started with.
type topology struct {
	backends map[string]*route
	// prefixes is sorted longest first, so the first match is the longest.
	prefixes []prefix
	agents   map[string]config.Agent
	byClient map[string][]config.Agent
	// issuers are identity.issuers' issuer URLs: an agent's client_id
	// belongs to its issuer, or to the only one configured.
	issuers []string
}

type route struct {
	backend config.Backend
	// target is the backend's URL, parsed: sub-paths are joined to its
	// path, keeping its query (an api_key=…) after the joined path.
	target   *url.URL
	prefix   string
	injector upstream.Injector
}

type prefix struct {
	path  string
	route *route
}

// buildTopology builds the routing table, and with it everything a call
// will need that can be checked now: each backend's URL and credential
// injector (its auth_config parsed) and each agent's private key. It runs
// at start, at every admin write and at every reload, so a key or
// credential that cannot work is refused there, named by its key path,
// rather than at the first call. Every problem is returned (errors.Join),
// in name order.
func buildTopology(backends map[string]config.Backend, agents map[string]config.Agent, factories map[string]upstream.InjectorFactory) (*topology, error) {
	t := &topology{
		backends: make(map[string]*route, len(backends)),
		agents:   make(map[string]config.Agent, len(agents)),
		byClient: map[string][]config.Agent{},
	}
	var errs []error
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(backends)) {
		b := backends[name]
		b.Name = name
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("backends.%s.url: must be an absolute http(s) URL", name))
			continue
		}
		factory, ok := factories[b.AuthMethod]
		if !ok {
			errs = append(errs, fmt.Errorf("backends.%s.auth_method: %q is not available in this build", name, b.AuthMethod))
			continue
		}
		inj, err := factory(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("backends.%s: %w", name, err))
			continue
		}
		paths := b.Paths
		if len(paths) == 0 {
			paths = []string{"/" + name}
		}
		r := &route{backend: b, target: u, prefix: canonicalPath(paths[0]), injector: inj}
		t.backends[name] = r
		for i, p := range paths {
			cp := canonicalPath(p)
			if reserved, ok := reservedRoute(cp); ok {
				errs = append(errs, fmt.Errorf("backends.%s.paths[%d]: %q is the gateway's own route %s", name, i, p, reserved))
				continue
			}
			if other, dup := seen[cp]; dup {
				errs = append(errs, fmt.Errorf("backends.%s.paths[%d]: %q is also a path of backend %s", name, i, p, other))
				continue
			}
			seen[cp] = name
			t.prefixes = append(t.prefixes, prefix{path: cp, route: r})
		}
	}
	sort.Slice(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].path) > len(t.prefixes[j].path) })
	for _, name := range slices.Sorted(maps.Keys(agents)) {
		a := agents[name]
		a.Name = name
		id := a.ID()
		if _, dup := t.agents[id]; dup {
			errs = append(errs, fmt.Errorf("agents.%s.agent_id: %q is used by another agent", name, id))
			continue
		}
		errs = append(errs, agentProblems(a, backends)...)
		t.agents[id] = a
		if a.ClientID != "" {
			t.byClient[a.ClientID] = append(t.byClient[a.ClientID], a)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// agentProblems checks what agent a's calls will need: the backends it is
// granted exist, its private key parses, and an agent reaching an
// okta-cross-app backend has the client_id and private key its exchange is
// made with (private_key_jwt as the agent's client).
func agentProblems(a config.Agent, backends map[string]config.Backend) []error {
	var errs []error
	if err := exchange.CheckAgentKey(a); err != nil {
		errs = append(errs, err)
	}
	hasKey := a.PrivateKey != "" || a.PrivateKeyFile != ""
	for i, bn := range a.BackendAccess {
		b, ok := backends[bn]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("agents.%s.backend_access[%d]: unknown backend %q", a.Name, i, bn))
		case b.AuthMethod != config.AuthOktaCrossApp:
		case a.ClientID == "":
			errs = append(errs, fmt.Errorf("agents.%s.client_id: required: the agent may reach backends.%s, whose okta-cross-app exchange is made as the agent's OAuth client", a.Name, bn))
		case !hasKey:
			errs = append(errs, fmt.Errorf("agents.%s.private_key: required: the agent may reach backends.%s, whose okta-cross-app exchange the agent signs with it (private_key_jwt)", a.Name, bn))
		}
	}
	return errs
}

// agentClients lists, per issuer, the client_ids of the agents bound to it:
// what an agent_audiences issuer's tokens must name.
func (t *topology) agentClients() map[string][]string {
	out := map[string][]string{}
	for _, a := range t.agents {
		if iss := t.agentIssuer(a); iss != "" && a.ClientID != "" {
			out[iss] = append(out[iss], a.ClientID)
		}
	}
	return out
}

// reservedPaths are the gateway's own routes; a backend routed at or below
// one would be shadowed by it.
var reservedPaths = []string{adminPrefix, compatAdminPrefix, "/.well-known", "/healthz", "/readyz", "/metrics"}

func reservedRoute(cp string) (string, bool) {
	for _, r := range reservedPaths {
		if cp == r || strings.HasPrefix(cp, r+"/") {
			return r, true
		}
	}
	return "", false
}

// forwardURL is where a request goes: the backend's URL as configured, or a
// sub-path below it for backends with forward_subpaths. rest is the raw
// request path below the backend's prefix, already checked by
// checkRequestPath (well-formed escapes, no encoded slash, backslash, dot
// or percent). It is joined to the URL's path with net/url, so a query in
// the backend's URL (/mcp?api_key=K) stays after the joined path
// (/mcp/sub?api_key=K) instead of swallowing it (/mcp?api_key=K/sub).
func (r *route) forwardURL(rest string) string {
	if rest == "" {
		return r.backend.URL
	}
	u := *r.target
	raw := strings.TrimRight(u.EscapedPath(), "/") + rest
	p, err := url.PathUnescape(raw)
	if err != nil {
		// checkRequestPath refuses malformed escapes; should one get here,
		// the path is sent with its "%" escaped rather than decoded.
		p, raw = raw, ""
	}
	u.Path, u.RawPath = p, raw
	return u.String()
}

func canonicalPath(p string) string {
	p = "/" + strings.Trim(p, "/")
	return p
}

// match finds the backend whose path is the longest prefix of path, at a
// segment boundary (/hr matches /hr and /hr/x, not /hrx).
func (t *topology) match(path string) (*route, string) {
	for _, p := range t.prefixes {
		if p.path == "/" {
			return p.route, path
		}
		if path == p.path || strings.HasPrefix(path, p.path+"/") {
			return p.route, strings.TrimPrefix(path, p.path)
		}
	}
	return nil, ""
}

// agentFor resolves the calling agent: the one the agent header names
// (id, sent in header: X-Agent-ID or X-MCP-Agent), else the one agent
// registered for the token's client (the Okta MCP adapter's fallback: its
// cid, or for an org server's ID token its aud). An agent id is not a
// password: the token must be one the agent takes (bindingError). This is
// the hard boundary; the shipped policy's caller rules say the same, so a
// decision record never shows an agent the gateway would not have let
// through.
func (t *topology) agentFor(id, header string, p *identity.Principal) (config.Agent, error) {
	if p.Via != "" {
		// A token of the gateway's authorization server names the agent its
		// client was bound to at registration; that binding wins over
		// any header.
		a, ok := t.agents[p.Agent]
		if !ok {
			return config.Agent{}, fmt.Errorf("the token's agent %q no longer exists", p.Agent)
		}
		return a, nil
	}
	if id == "" {
		if p.ClientID == "" {
			return config.Agent{}, fmt.Errorf("missing X-Agent-ID (or X-MCP-Agent) header, and the token proves no OAuth client to find the agent by")
		}
		var candidates []config.Agent
		for _, a := range t.byClient[p.ClientID] {
			if t.bindingError(a, p) == nil {
				candidates = append(candidates, a)
			}
		}
		if len(candidates) != 1 {
			return config.Agent{}, fmt.Errorf("missing X-Agent-ID (or X-MCP-Agent) header, and the token's client is registered for %d agents it may use, not one", len(candidates))
		}
		return candidates[0], nil
	}
	a, ok := t.agents[id]
	if !ok {
		return config.Agent{}, fmt.Errorf("unknown agent %q in %s header", id, header)
	}
	if err := t.bindingError(a, p); err != nil {
		return config.Agent{}, err
	}
	return a, nil
}

// bindingError says why the token of p may not act as agent a, or nil.
//
//   - An agent bound to an issuer takes only that issuer's tokens: a client
//     id is an issuer's registration, and another issuer can mint tokens
//     naming any client id it likes.
//   - An agent with a client_id takes only tokens that prove that client
//     (cid, azp, client_id or appid); a token proving no client proves
//     nothing about which application holds it.
//   - An agent without a client_id takes tokens proving no client only when
//     configured to (allow_clientless_tokens).
func (t *topology) bindingError(a config.Agent, p *identity.Principal) error {
	id := a.ID()
	if a.ClientID != "" && a.Issuer == "" && len(t.issuers) > 1 {
		// Validation refuses this; an entry stored by an older release
		// may still hold it. Fail closed rather than guess the issuer.
		return fmt.Errorf("agent %q has a client_id but names no issuer while several are trusted (agents.%s.issuer)", id, a.Name)
	}
	if iss := t.agentIssuer(a); iss != "" && iss != p.Issuer {
		return fmt.Errorf("agent %q is bound to another issuer than the token's iss (agents.%s.issuer)", id, a.Name)
	}
	switch {
	case a.ClientID != "" && p.ClientID == "":
		return fmt.Errorf("agent %q is bound to an OAuth client, and the token proves none (cid, azp, client_id or appid)", id)
	case a.ClientID != "" && p.ClientID != a.ClientID:
		return fmt.Errorf("agent %q is bound to another OAuth client than the token's", id)
	case a.ClientID == "" && p.ClientID == "" && !a.AllowClientlessTokens:
		return fmt.Errorf("the token proves no OAuth client (cid, azp, client_id or appid), and agent %q does not take such tokens (agents.%s.allow_clientless_tokens)", id, a.Name)
	}
	return nil
}

// agentIssuer is the issuer whose tokens agent a takes: its issuer, else,
// for an agent with a client_id, the only configured issuer; "" when any
// trusted issuer's tokens may use it.
func (t *topology) agentIssuer(a config.Agent) string {
	if a.Issuer != "" {
		return a.Issuer
	}
	if a.ClientID != "" && len(t.issuers) == 1 {
		return t.issuers[0]
	}
	return ""
}

func hasAccess(a config.Agent, backend string) bool {
	return slices.Contains(a.BackendAccess, backend)
}
