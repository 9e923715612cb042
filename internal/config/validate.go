package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Backend auth methods. The credentials package gives each its meaning;
// here they are only names to check.
const (
	AuthOktaCrossApp      = "okta-cross-app"
	AuthTokenExchange     = "token-exchange"
	AuthClientCredentials = "client-credentials"
	AuthPreSharedKey      = "pre-shared-key"
	AuthServiceAccount    = "service-account"
	AuthNone              = "none"
	// authStaticKey is the adapter's other name for pre-shared-key.
	authStaticKey = "static-key"
)

var knownAuthMethods = []string{
	AuthOktaCrossApp, AuthTokenExchange, AuthClientCredentials,
	AuthPreSharedKey, authStaticKey, AuthServiceAccount, AuthNone,
}

// validName keeps backend and agent names usable as a URL path segment
// (the default route) and in MCPGW_* variable names.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Validate checks the whole configuration and returns every problem at once
// (errors.Join), each prefixed with its key path, such as
// "backends.hr-system.paths[0]: must start with "/"".
//
// It first normalises what can be derived, so a Config built in code is
// treated as a loaded one: Backend.Name and Agent.Name are set from their
// map keys; a backend without paths is routed at "/<name>"; a trailing "/"
// is dropped from paths and server.public_url; auth_method "static-key"
// becomes "pre-shared-key"; tool_integrity, log.level and log.format are lower-cased
// ("warning" is "warn"); an issuer's groups_claim defaults to "groups".
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("config: nil configuration")
	}
	return errors.Join(c.validate()...)
}

func (c *Config) validate() []error {
	c.normalize()
	var v validator
	c.validateServer(&v)
	c.validateIdentity(&v)
	c.validateBackends(&v)
	c.validateFederated(&v)
	c.validateAgents(&v)
	c.validatePolicy(&v)
	c.validateOperations(&v)
	c.validateLimits(&v)
	c.validateOAuth(&v)
	return v.errs
}

type validator struct{ errs []error }

func (v *validator) addf(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (c *Config) normalize() {
	c.Server.PublicURL = strings.TrimRight(c.Server.PublicURL, "/")
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	// Python's level names, as the Okta MCP adapter's LOG_LEVEL takes them.
	switch c.Log.Level {
	case "warning":
		c.Log.Level = "warn"
	case "critical":
		c.Log.Level = "error"
	}
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))
	for i := range c.Identity.Issuers {
		if c.Identity.Issuers[i].GroupsClaim == "" {
			c.Identity.Issuers[i].GroupsClaim = "groups"
		}
	}
	for name, b := range c.Backends {
		b.Name = name
		b.AuthMethod = strings.ToLower(strings.TrimSpace(b.AuthMethod))
		b.ToolIntegrity = strings.ToLower(strings.TrimSpace(b.ToolIntegrity))
		if b.AuthMethod == authStaticKey {
			b.AuthMethod = AuthPreSharedKey
		}
		if len(b.Paths) == 0 {
			b.Paths = []string{"/" + name}
		} else {
			b.Paths = slices.Clone(b.Paths)
			for i, p := range b.Paths {
				if len(p) > 1 {
					b.Paths[i] = strings.TrimRight(p, "/")
				}
			}
		}
		c.Backends[name] = b
	}
	for name, a := range c.Agents {
		a.Name = name
		c.Agents[name] = a
	}
}

func (c *Config) validateServer(v *validator) {
	s := c.Server
	checkListen(v, "server.listen", s.Listen, true)
	checkListen(v, "server.metrics_listen", s.MetricsListen, false)
	if s.MetricsPprof && s.MetricsListen == "" {
		v.addf("server.metrics_pprof", "needs server.metrics_listen: profiles are served only there, never on the main port")
	}
	if !isHTTPURL(s.PublicURL) {
		v.addf("server.public_url", "must be an absolute http(s) URL")
	} else if u, _ := url.Parse(s.PublicURL); u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		v.addf("server.public_url", "must not contain credentials, a query or a fragment")
	}
	if s.MaxBodyBytes <= 0 {
		v.addf("server.max_body_bytes", "must be > 0")
	}
	if s.MaxBatchMessages < 0 || s.MaxBatchMessages > 10000 {
		v.addf("server.max_batch_messages", "must be between 1 and 10000 (0 means the default, 100)")
	}
	if n := s.MaxHeaderBytes; n != 0 && (n < minHeaderBytes || n > maxHeaderBytes) {
		v.addf("server.max_header_bytes", "must be between %d and %d (0 means the default, %d)", minHeaderBytes, maxHeaderBytes, DefaultMaxHeaderBytes)
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"server.read_timeout", s.ReadTimeout},
		{"server.idle_timeout", s.IdleTimeout},
		{"server.shutdown_timeout", s.ShutdownTimeout},
	} {
		if d.val <= 0 {
			v.addf(d.key, "must be > 0")
		}
	}
	// Zero is the default (a Config built in code leaves them unset), so an
	// explicit 0 cannot switch the limits off.
	if s.SessionMaxAge < 0 {
		v.addf("server.session_max_age", "must be > 0 (0 means the default, %s)", DefaultSessionMaxAge)
	}
	if s.SessionIdleTimeout < 0 {
		v.addf("server.session_idle_timeout", "must be > 0 (0 means the default, %s)", DefaultSessionIdleTimeout)
	}
	if s.SessionKey != "" && s.SessionKeyFile != "" {
		v.addf("server.session_key", "set session_key or session_key_file, not both")
	}
	for i, o := range s.AllowedOrigins {
		if o != "*" && !isOrigin(o) {
			v.addf(fmt.Sprintf("server.allowed_origins[%d]", i), `must be "*" or an origin such as "https://app.example.com"`)
		}
	}
}

func checkListen(v *validator, key, addr string, required bool) {
	if addr == "" {
		if required {
			v.addf(key, "required (host:port)")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(key, "must be host:port")
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.addf(key, "port must be a number between 0 and 65535")
	}
}

func (c *Config) validateIdentity(v *validator) {
	id := c.Identity
	seen := map[string]int{}
	for i, iss := range id.Issuers {
		p := fmt.Sprintf("identity.issuers[%d]", i)
		if u, err := url.Parse(iss.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
			v.addf(p+".issuer", "must be an absolute URL")
		} else if j, dup := seen[iss.Issuer]; dup {
			v.addf(p+".issuer", "%q is already identity.issuers[%d]", iss.Issuer, j)
		} else {
			seen[iss.Issuer] = i
		}
		if len(iss.Audiences) == 0 && !iss.AgentAudiences {
			v.addf(p+".audiences", "at least one required (or agent_audiences: true)")
		}
		for j, a := range iss.Audiences {
			if strings.TrimSpace(a) == "" {
				v.addf(fmt.Sprintf("%s.audiences[%d]", p, j), "must not be empty")
			}
		}
		if iss.JWKSURL != "" && !isHTTPURL(iss.JWKSURL) {
			v.addf(p+".jwks_url", "must be an absolute http(s) URL")
		}
		for j, t := range iss.TokenTypes {
			if err := CheckTokenType(t); err != nil {
				v.addf(fmt.Sprintf("%s.token_types[%d]", p, j), "%v", err)
			}
		}
	}
	if id.ClockSkew < 0 {
		v.addf("identity.clock_skew", "must be >= 0")
	}
	if id.JWKSRefreshInterval <= 0 {
		v.addf("identity.jwks_refresh_interval", "must be > 0")
	}
	if id.ClaimsCacheMaxCost <= 0 {
		v.addf("identity.claims_cache_max_cost", "must be > 0")
	}
}

func (c *Config) validateBackends(v *validator) {
	routedBy := map[string]string{} // path -> backend name
	for _, name := range sortedKeys(c.Backends) {
		b := c.Backends[name]
		p := "backends." + name
		if !validName.MatchString(name) {
			v.addf(p, "name must be letters, digits, '.', '_' or '-', starting with a letter or digit")
		}
		if !isHTTPURL(b.URL) {
			v.addf(p+".url", "must be an absolute http(s) URL")
		} else if u, _ := url.Parse(b.URL); u.User != nil {
			v.addf(p+".url", "must not contain credentials (put them in auth_config)")
		}
		for i, route := range b.Paths {
			rp := fmt.Sprintf("%s.paths[%d]", p, i)
			switch {
			case !strings.HasPrefix(route, "/"):
				v.addf(rp, `must start with "/"`)
				continue
			case strings.ContainsAny(route, "?# \t\r\n") || path.Clean(route) != route:
				v.addf(rp, "must be a clean URL path (no //, . or .. segments, query, fragment or spaces)")
				continue
			}
			if owner, taken := routedBy[route]; taken {
				if owner == name {
					v.addf(rp, "%q is listed twice", route)
				} else {
					v.addf(rp, "%q is already routed to backends.%s", route, owner)
				}
				continue
			}
			routedBy[route] = name
		}
		if b.TimeoutSeconds < 0 {
			v.addf(p+".timeout_seconds", "must be >= 0 (0 means 30)")
		}
		validateAuth(v, p, b)
		validateIntegrity(v, p, b)
	}
}

// validateAuth checks only that each method's required keys are present
// (as the value or its *_file); the credentials package parses the rest.
func validateAuth(v *validator, p string, b Backend) {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if s, ok := b.AuthConfig[k].(string); ok && s != "" {
				return true
			}
			if s, ok := b.AuthConfig[k+"_file"].(string); ok && s != "" {
				return true
			}
		}
		return false
	}
	switch b.AuthMethod {
	case "":
		v.addf(p+".auth_method", "required (want %s)", strings.Join(knownAuthMethods, ", "))
	case AuthPreSharedKey:
		if !has("api_key", "key") {
			v.addf(p+".auth_config", "pre-shared-key needs api_key (or key, or api_key_file)")
		}
	case AuthServiceAccount:
		if !has("username") {
			v.addf(p+".auth_config.username", "required for service-account")
		}
		if !has("password") {
			v.addf(p+".auth_config.password", "required for service-account (or password_file)")
		}
	case AuthOktaCrossApp:
		mode, _ := b.AuthConfig["id_jag_mode"].(string)
		switch mode {
		case "", "static":
			if !has("target_audience", "target_authorization_server") {
				v.addf(p+".auth_config", "okta-cross-app needs target_audience or target_authorization_server (or id_jag_mode: dynamic)")
			}
		case "dynamic":
		default:
			v.addf(p+".auth_config.id_jag_mode", "unknown %q (want static or dynamic)", mode)
		}
	case AuthTokenExchange, AuthClientCredentials, AuthNone:
	default:
		v.addf(p+".auth_method", "unknown %q (want %s)", b.AuthMethod, strings.Join(knownAuthMethods, ", "))
	}
}

func (c *Config) validateAgents(v *validator) {
	idOwner := map[string]string{}
	for _, name := range sortedKeys(c.Agents) {
		a := c.Agents[name]
		p := "agents." + name
		if !validName.MatchString(name) {
			v.addf(p, "name must be letters, digits, '.', '_' or '-', starting with a letter or digit")
		}
		if owner, dup := idOwner[a.ID()]; dup {
			v.addf(p+".agent_id", "%q is already the id of agents.%s", a.ID(), owner)
		} else {
			idOwner[a.ID()] = name
		}
		for i, backend := range a.BackendAccess {
			if _, ok := c.Backends[backend]; !ok {
				v.addf(fmt.Sprintf("%s.backend_access[%d]", p, i), "unknown backend %q", backend)
			}
		}
		for i, s := range a.Scopes {
			if strings.TrimSpace(s) == "" {
				v.addf(fmt.Sprintf("%s.scopes[%d]", p, i), "must not be empty")
			}
		}
		if a.ClientSecret != "" && a.ClientSecretFile != "" {
			v.addf(p+".client_secret", "set client_secret or client_secret_file, not both")
		}
		if a.PrivateKey != "" && a.PrivateKeyFile != "" {
			v.addf(p+".private_key", "set private_key or private_key_file, not both")
		}
		c.validateAgentBinding(v, p, a)
	}
}

// validateAgentBinding checks whose tokens may use agent a. Without
// identity.issuers (an admin API candidate built from agents and backends
// only) the issuer checks cannot be made here; the gateway makes them.
func (c *Config) validateAgentBinding(v *validator, p string, a Agent) {
	if a.AllowClientlessTokens && a.ClientID != "" {
		v.addf(p+".allow_clientless_tokens", "only for an agent without client_id: a token that proves no client cannot prove client %q", a.ClientID)
	}
	issuers := c.Identity.Issuers
	if len(issuers) == 0 {
		return
	}
	if a.Issuer != "" {
		if !slices.ContainsFunc(issuers, func(i Issuer) bool { return i.Issuer == a.Issuer }) {
			v.addf(p+".issuer", "%q is not one of identity.issuers", a.Issuer)
		}
		return
	}
	if a.ClientID != "" && len(issuers) > 1 {
		v.addf(p+".issuer", "required with client_id when several identity.issuers are configured: client %q must be the client of one issuer, or another issuer could mint tokens naming it", a.ClientID)
	}
}

// CheckTokenType accepts a JOSE typ value for identity.issuers[].token_types:
// a media type without parameters (at+jwt, application/at+jwt, JWT), or ""
// for a token without typ.
func CheckTokenType(t string) error {
	if t != strings.TrimSpace(t) || strings.ContainsAny(t, " \t;,\"") {
		return fmt.Errorf("%q is not a media type such as at+jwt or JWT (\"\" accepts a token without typ)", t)
	}
	if strings.Count(t, "/") > 1 || strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") {
		return fmt.Errorf("%q is not a media type such as at+jwt or JWT", t)
	}
	return nil
}

func (c *Config) validatePolicy(v *validator) {
	if c.Policy.Bundle == "" {
		v.addf("policy.bundle", "required")
	}
	if c.Policy.Timeout <= 0 {
		v.addf("policy.timeout", "must be > 0")
	}
	if c.Policy.PollInterval < 0 {
		v.addf("policy.poll_interval", "must not be negative")
	}
	if c.Policy.DecisionCacheSize < -1 {
		v.addf("policy.decision_cache_size", "must be -1 (off), 0 (default) or a size")
	}
	// There is no "no limit": 0 (as in a Config built in code) takes the
	// engine's default, and only a negative value is refused.
	for _, l := range []struct {
		path  string
		value int64
	}{
		{"policy.max_bundle_bytes", c.Policy.MaxBundleBytes},
		{"policy.max_bundle_uncompressed_bytes", c.Policy.MaxBundleUncompressedBytes},
		{"policy.max_bundle_files", int64(c.Policy.MaxBundleFiles)},
		{"policy.max_bundle_file_bytes", c.Policy.MaxBundleFileBytes},
	} {
		if l.value < 0 {
			v.addf(l.path, "must not be negative (0: the default)")
		}
	}
	for _, d := range []struct {
		path  string
		value time.Duration
	}{{"exchange.cache_max_ttl", c.Exchange.CacheMaxTTL}, {"exchange.failure_ttl", c.Exchange.FailureTTL}, {"exchange.timeout", c.Exchange.Timeout}} {
		if d.value < 0 {
			v.addf(d.path, "must not be negative")
		}
	}
	if c.Exchange.CacheMaxBytes < 0 {
		v.addf("exchange.cache_max_bytes", "must not be negative")
	}
}

func (c *Config) validateOperations(v *validator) {
	if c.Store.DSN == "" {
		v.addf("store.dsn", "required")
	}
	if c.Store.PollInterval <= 0 {
		v.addf("store.poll_interval", "must be > 0")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.addf("log.level", "unknown %q (want debug, info, warn or error)", c.Log.Level)
	}
	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		v.addf("log.format", "unknown %q (want json or text)", c.Log.Format)
	}
	if r := c.Telemetry.SampleRatio; !(r >= 0 && r <= 1) {
		v.addf("telemetry.sample_ratio", "must be between 0 and 1")
	}
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
