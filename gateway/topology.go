package gateway

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/mcpgw/mcpgw/internal/config"
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
}

type route struct {
	backend  config.Backend
	target   string
	prefix   string
	injector upstream.Injector
}

type prefix struct {
	path  string
	route *route
}

func buildTopology(backends map[string]config.Backend, agents map[string]config.Agent, factories map[string]upstream.InjectorFactory) (*topology, error) {
	t := &topology{
		backends: make(map[string]*route, len(backends)),
		agents:   make(map[string]config.Agent, len(agents)),
		byClient: map[string][]config.Agent{},
	}
	seen := map[string]string{}
	for name, b := range backends {
		b.Name = name
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("backends.%s.url: must be an absolute http(s) URL", name)
		}
		factory, ok := factories[b.AuthMethod]
		if !ok {
			return nil, fmt.Errorf("backends.%s.auth_method: %q is not available in this build", name, b.AuthMethod)
		}
		inj, err := factory(b)
		if err != nil {
			return nil, fmt.Errorf("backends.%s: %w", name, err)
		}
		paths := b.Paths
		if len(paths) == 0 {
			paths = []string{"/" + name}
		}
		r := &route{backend: b, target: strings.TrimRight(b.URL, "/"), prefix: canonicalPath(paths[0]), injector: inj}
		t.backends[name] = r
		for i, p := range paths {
			cp := canonicalPath(p)
			if reserved, ok := reservedRoute(cp); ok {
				return nil, fmt.Errorf("backends.%s.paths[%d]: %q is the gateway's own route %s", name, i, p, reserved)
			}
			if other, dup := seen[cp]; dup {
				return nil, fmt.Errorf("backends.%s.paths[%d]: %q is also a path of backend %s", name, i, p, other)
			}
			seen[cp] = name
			t.prefixes = append(t.prefixes, prefix{path: cp, route: r})
		}
	}
	sort.Slice(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].path) > len(t.prefixes[j].path) })
	for name, a := range agents {
		a.Name = name
		id := a.ID()
		if _, dup := t.agents[id]; dup {
			return nil, fmt.Errorf("agents.%s.agent_id: %q is used by another agent", name, id)
		}
		for i, bn := range a.BackendAccess {
			if _, ok := backends[bn]; !ok {
				return nil, fmt.Errorf("agents.%s.backend_access[%d]: unknown backend %q", name, i, bn)
			}
		}
		t.agents[id] = a
		if a.ClientID != "" {
			t.byClient[a.ClientID] = append(t.byClient[a.ClientID], a)
		}
	}
	return t, nil
}

// reservedPaths are the gateway's own routes; a backend routed at or below
// one would be shadowed by it.
var reservedPaths = []string{adminPrefix, "/.well-known", "/healthz", "/readyz", "/metrics"}

func reservedRoute(cp string) (string, bool) {
	for _, r := range reservedPaths {
		if cp == r || strings.HasPrefix(cp, r+"/") {
			return r, true
		}
	}
	return "", false
}

// forwardURL is where a request goes: the backend's URL as configured, or a
// sub-path below it for backends with forward_subpaths.
func (r *route) forwardURL(rest string) string {
	if rest == "" {
		return r.backend.URL
	}
	return r.target + rest
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

// agentFor resolves the calling agent: X-Agent-ID when sent, else the one
// agent registered for the token's client. An agent id is not a password:
// when both sides name a client, they must agree.
func (t *topology) agentFor(header string, p *identity.Principal) (config.Agent, error) {
	if header == "" {
		candidates := t.byClient[p.ClientID]
		if p.ClientID == "" || len(candidates) != 1 {
			return config.Agent{}, fmt.Errorf("missing X-Agent-ID header")
		}
		return candidates[0], nil
	}
	a, ok := t.agents[header]
	if !ok {
		return config.Agent{}, fmt.Errorf("unknown agent %q in X-Agent-ID header", header)
	}
	if a.ClientID != "" && p.ClientID != "" && a.ClientID != p.ClientID {
		return config.Agent{}, fmt.Errorf("agent %q is bound to another OAuth client than the token's", header)
	}
	return a, nil
}

func hasAccess(a config.Agent, backend string) bool {
	return slices.Contains(a.BackendAccess, backend)
}
